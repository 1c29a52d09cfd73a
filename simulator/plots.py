"""Plots of sweep tables and scaling experiments, as matplotlib Figures (never shown).

matplotlib is an optional dependency (``pip install 'paleosim[plot]'``): it is imported only when
a figure is drawn, and :func:`import_matplotlib` turns its absence into one clear
:class:`~simulator.errors.SpecError` naming the extra to install. Figures are built with
``matplotlib.figure.Figure`` directly, not ``pyplot``, so drawing touches no process-global
state and needs no display; :func:`save_figure` writes one atomically (PNG, SVG or PDF by the
file's suffix).

Two figures:

- :func:`sweep_figure`: a ``paleosim sweep`` table, one line per combination of the grid axes
  other than the worker count: throughput and scaling efficiency against workers.
- :func:`scaling_figure`: an experiment's tidy table (``experiments/``): one panel per series,
  the simulated, Paleo-analytical, published and ideal values of one metric against workers.
"""
from __future__ import annotations

import io
import math
import os
from typing import Any, Sequence

import pandas as pd

from simulator.errors import SpecError

#: How each source of an experiment table is drawn: line style, marker, colour, z-order.
SOURCE_STYLE = {
    "ideal": {"linestyle": ":", "marker": "", "color": "0.45", "zorder": 1},
    "paleo": {"linestyle": "--", "marker": "s", "color": "tab:orange", "zorder": 2},
    "simulated": {"linestyle": "-", "marker": "o", "color": "tab:blue", "zorder": 3},
    "published": {"linestyle": "", "marker": "D", "color": "black", "zorder": 4},
}
SOURCES = tuple(SOURCE_STYLE)
#: Extra colours and markers for the second, third... variant of one source.
VARIANT_COLORS = {"simulated": ("tab:blue", "tab:green", "tab:purple", "tab:cyan", "tab:olive",
                                "navy"),
                  "paleo": ("tab:orange", "tab:red", "tab:brown", "tab:pink"),
                  "published": ("black", "black", "0.4", "0.4"),
                  "ideal": ("0.45",)}
VARIANT_MARKERS = {"simulated": ("o", "^", "v", "P", "h", "X"), "paleo": ("s", "x", "+", "*"),
                   "published": ("D", "*", "P", "X"), "ideal": ("",)}
DASHES = {"paleo": ("--", "-.", (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5)))}
SOURCE_LABEL = {"ideal": "ideal (linear)", "paleo": "Paleo (analytical)",
                "simulated": "simulated (paleosim)", "published": "published"}
METRIC_LABEL = {"speedup": "speedup over 1 GPU", "samples_per_s": "throughput (samples/s)",
                "iteration_s": "iteration time (s)", "scaling_efficiency": "scaling efficiency",
                "tflops_per_gpu": "model TFLOP/s per GPU"}
SIMULATE_WORKERS = "strategy.workers"
PALEO_WORKERS = "workers"


def import_matplotlib():
    """The ``matplotlib.figure`` module, or a clear error naming the extra to install."""
    try:
        from matplotlib import figure
    except ImportError:
        raise SpecError("plots need matplotlib, which is not installed: "
                        "pip install 'paleosim[plot]' (or: pip install matplotlib)") from None
    return figure


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 110) -> None:
    """Write ``fig`` to ``path`` atomically; the format follows the suffix (``.png``, ``.svg``,
    ``.pdf``)."""
    from simulator.atomic import write_bytes_atomic
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".") or "png"
    if suffix not in ("png", "svg", "pdf"):
        raise SpecError("a plot is written as .png, .svg or .pdf", field="plot",
                        value=os.fspath(path))
    buffer = io.BytesIO()
    fig.savefig(buffer, format=suffix, dpi=dpi,
                metadata={"Software": "paleosim"} if suffix == "png" else None)
    write_bytes_atomic(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# sweep tables


def sweep_figure(table: pd.DataFrame, axes: Sequence[str], *, x: str | None = None,
                 title: str | None = None):
    """The figure of a sweep table (:func:`simulator.sweep.run_sweep`).

    Parameters
    ----------
    table : DataFrame
        The sweep's table; rows whose ``status`` is not ``ok`` are left out.
    axes : sequence of str
        The table's grid-axis columns (``spec.grid``'s keys).
    x : str, optional
        The axis along the horizontal; default the worker count (``strategy.workers``, or
        ``workers`` for the Paleo engine) when it is an axis, else the first axis.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        With a worker axis: throughput (samples/s, log-log, with each line's linear ideal from
        its 1-worker point) and scaling efficiency against workers, one line per combination
        of the other axes. Otherwise: throughput against ``x``.
    """
    figure = import_matplotlib()
    axes = [a for a in axes if a in table.columns]
    if not axes:
        raise SpecError("a sweep plot needs at least one grid axis", field="plot")
    if x is None:
        x = next((a for a in axes if a in (SIMULATE_WORKERS, PALEO_WORKERS)), axes[0])
    if x not in axes:
        raise SpecError(f"not a grid axis; valid: {', '.join(axes)}", field="plot x", value=x)
    others = [a for a in axes if a != x]
    ok = table[table["status"] == "ok"] if "status" in table.columns else table
    by_workers = x in (SIMULATE_WORKERS, PALEO_WORKERS)
    fig = figure.Figure(figsize=(11, 4.8) if by_workers else (7, 4.8), layout="constrained")
    panels = fig.subplots(1, 2) if by_workers else [fig.subplots(1, 1)]
    numeric_x = all(_is_number(v) for v in ok[x])
    categories = list(dict.fromkeys(ok[x])) if not numeric_x else None
    for i, (key, group) in enumerate(_groups(ok, others)):
        label = _label(others, key)
        xs = list(group[x]) if numeric_x else [categories.index(v) for v in group[x]]
        color = f"C{i % 10}"
        panels[0].plot(xs, group["samples_per_s"], marker="o", color=color, label=label)
        if by_workers:
            base = group[group[x] == 1]["samples_per_s"]
            if len(base):
                ideal = [float(base.iloc[0]) * float(n) for n in group[x]]
                panels[0].plot(xs, ideal, linestyle=":", color=color, linewidth=1)
            panels[1].plot(xs, group["scaling_efficiency"], marker="o", color=color,
                           label=label)
    if by_workers:
        for ax in panels:
            _log2_axis(ax, sorted(set(float(v) for v in ok[x])))
        panels[0].set_yscale("log")
        panels[0].set_ylabel(METRIC_LABEL["samples_per_s"] + "; dotted: linear")
        panels[1].set_ylabel(METRIC_LABEL["scaling_efficiency"])
        panels[1].set_ylim(0, 1.05)
        panels[1].axhline(1.0, color="0.6", linestyle=":", linewidth=1)
        for ax in panels:
            ax.set_xlabel("workers (GPUs)")
    else:
        panels[0].set_ylabel(METRIC_LABEL["samples_per_s"])
        panels[0].set_xlabel(x)
        if categories is not None:
            panels[0].set_xticks(range(len(categories)), [str(c) for c in categories],
                                 rotation=20, ha="right")
    for ax in panels:
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = panels[-1].get_legend_handles_labels()
    if others and handles:
        wide = max(len(label) for label in labels) > 50
        fig.legend(handles, labels, loc="outside lower center",
                   ncol=1 if wide else min(3, len(labels)), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _groups(frame: pd.DataFrame, columns: list[str]):
    if not columns:
        yield (), frame
        return
    keys = list(dict.fromkeys(tuple(_hashable(v) for v in row)
                              for row in frame[columns].itertuples(index=False)))
    for key in keys:
        mask = [tuple(_hashable(v) for v in row) == key
                for row in frame[columns].itertuples(index=False)]
        yield key, frame[mask]


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def _label(columns: list[str], key: tuple) -> str:
    return ", ".join(f"{c.rsplit('.', 1)[-1]}={v}" for c, v in zip(columns, key)) or "all"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


def _log2_axis(ax, values: list[float]) -> None:
    """A base-2 logarithmic axis labelled with the worker counts themselves."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


# --------------------------------------------------------------------------------------------
# experiment tables


def scaling_figure(table: pd.DataFrame, *, metric: str | dict[str, str] = "speedup",
                   title: str | None = None, logx: bool = True, logy: bool | None = None,
                   ncols: int | None = None, xlabel: str = "workers (GPUs)",
                   ylim: tuple | None = None, labels: dict[str, str] | None = None):
    """One panel per ``series`` of an experiment table: ``metric`` against ``workers``.

    Parameters
    ----------
    table : DataFrame
        Tidy rows with columns ``series``, ``workers``, ``source`` (``simulated``, ``paleo``,
        ``published``, ``ideal``), ``variant`` and the metric's column; rows whose value is
        missing (a flagged point, a metric the source does not give) are left out.
    metric : str or dict
        The column to plot, or ``{series: column}`` to plot another per panel.
    title : str, optional
    logx : bool
        Base-2 logarithmic horizontal axis (default), else linear; ticks at the worker counts.
    logy : bool, optional
        Logarithmic vertical axis; default: for speedup and throughput.
    ncols : int, optional
        Panels per row (default: up to 3).
    ylim : tuple, optional
        ``(bottom, top)``; a ``None`` top leaves 8% of room above the highest value.
    labels : dict, optional
        Legend names of sources instead of :data:`SOURCE_LABEL`'s (e.g. the ideal of a weak
        scaling series).

    Returns
    -------
    matplotlib.figure.Figure
        Simulated values are solid lines, Paleo's dashed, published values black markers and
        the linear ideal a dotted grey line; a source's variants (strategies, Paleo's schemes)
        keep one colour and marker across panels; one legend below the panels.
    """
    figure = import_matplotlib()
    series = list(dict.fromkeys(table["series"]))
    if not series:
        raise SpecError("nothing to plot: the table has no rows", field="plot")
    ncols = ncols or min(3, len(series))
    nrows = math.ceil(len(series) / ncols)
    fig = figure.Figure(figsize=(4.6 * ncols, 3.7 * nrows + 0.9), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False)
    legend: dict[str, Any] = {}
    index = {source: {v: i for i, v in enumerate(dict.fromkeys(
        table.loc[table["source"] == source, "variant"].fillna("")))} for source in SOURCES}
    for k, name in enumerate(series):
        ax = grid[k // ncols][k % ncols]
        column = metric.get(name, "speedup") if isinstance(metric, dict) else metric
        rows = table[(table["series"] == name) & table[column].notna()]
        workers = sorted(set(float(w) for w in table.loc[table["series"] == name, "workers"]))
        for source in SOURCES:
            part = rows[rows["source"] == source]
            variants = list(dict.fromkeys(part["variant"].fillna("")))
            for variant in variants:
                line = part[part["variant"].fillna("") == variant].sort_values("workers")
                style = _style(source, index[source][variant])
                label = {**SOURCE_LABEL, **(labels or {})}[source] + (
                    f": {variant}" if variant else "")
                (handle,) = ax.plot(line["workers"], line[column], label=label,
                                    markersize=7 if source == "published" else 5,
                                    linewidth=1.6 if source == "simulated" else 1.3, **style)
                legend.setdefault(label, handle)
        if logx:
            _log2_axis(ax, workers)
        else:
            ax.set_xticks(workers, [f"{w:g}" for w in workers])
        use_log = logy if logy is not None else column in ("speedup", "samples_per_s")
        if use_log:
            ax.set_yscale("log", base=2 if column == "speedup" else 10)
            if column == "speedup":
                from matplotlib.ticker import FuncFormatter
                ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        if ylim is not None:
            bottom, top = ylim
            if top is None:
                highest = rows[column].max() if len(rows) else None
                top = 1.08 * float(highest) if highest is not None and highest > 0 else None
            ax.set_ylim(bottom, top)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(METRIC_LABEL.get(column, column))
        ax.grid(True, which="major", alpha=0.3)
    for k in range(len(series), nrows * ncols):
        grid[k // ncols][k % ncols].set_visible(False)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center",
               ncol=min(4, len(legend)), fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def _style(source: str, index: int) -> dict[str, Any]:
    style = dict(SOURCE_STYLE[source])
    colors, markers = VARIANT_COLORS[source], VARIANT_MARKERS[source]
    style["color"] = colors[index % len(colors)]
    style["marker"] = markers[index % len(markers)]
    if source in DASHES:
        dashes = DASHES[source]
        style["linestyle"] = dashes[index % len(dashes)]
    return style


__all__ = ["import_matplotlib", "save_figure", "scaling_figure", "sweep_figure"]
