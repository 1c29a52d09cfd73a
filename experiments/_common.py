"""Shared plumbing of the experiment scripts: sweeps in, one tidy table out, CSV and PNG files.

Every experiment script builds sweep specs (:class:`simulator.sweep.SweepSpec`), runs them with
:func:`simulator.sweep.run_sweep`, and turns the sweep tables into one tidy table with a row per
(series, worker count, source, variant):

========================  ======================================================================
``experiment``            the script's name
``series``                one panel of the plot (a net, a batch size, a case study)
``workers``               GPUs (ranks)
``source``                ``simulated`` (paleosim's discrete-event simulator), ``paleo`` (the
                          Paleo-compatible estimator with Paleo's presets), ``published`` (the
                          project's reference table, :mod:`simulator.validation.table`), ``ideal``
                          (linear scaling)
``variant``               which strategy, Paleo scheme or published row variant, when a source has
                          several in one panel
``status``                ``ok``, or why a simulated point did not run (``infeasible``, ``error``)
``iteration_s``           seconds per iteration
``samples_per_s``         training throughput of the whole system
``speedup``               throughput over the experiment's single-GPU baseline (stated per script)
``scaling_efficiency``    speedup / workers
``reference``             the sweep point's id, the Paleo scheme, or the reference row's id
``reason``                why a point was flagged; for a published value its confidence, citation
                          and, for a known miss, the reference table's reason
========================  ======================================================================

Published numbers are read only from the project's reference table (package data of
``simulator.validation``) through :func:`reference_rows`; nothing is read from ``../shared`` at
run time. Files are written atomically; the PNG needs matplotlib (``pip install
'paleosim[plot]'``), the CSV does not.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python3 experiments/x.py` from a clone
    sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from simulator.errors import PaleosimError, SpecError  # noqa: E402

COLUMNS = ["experiment", "series", "workers", "source", "variant", "status", "iteration_s",
           "samples_per_s", "speedup", "scaling_efficiency", "reference", "reason"]
NAN = math.nan
#: Paleo's schemes that the case studies compare (ButterflyMixing is the no-communication bound
#: in disguise, see docs/PALEO_COMPAT.md, so it is left out).
PALEO_SCHEMES = ("OneToAll", "TreeAllReduce", "ButterflyAllReduce")


# ---------------------------------------------------------------------------- running sweeps

def run_specs(specs: Mapping[str, Any], *, executor: str = "process",
              jobs: int | None = None) -> dict[str, pd.DataFrame]:
    """Run each sweep spec (in memory: no journal, nothing written); ``{name: table}``.

    Sweeps of the Paleo engine and sweeps of one or two points run in this process (a process
    pool would cost more than it saves)."""
    from simulator.sweep import plan_sweep, run_sweep
    out = {}
    for name, spec in specs.items():
        small = spec.engine == "paleo" or len(plan_sweep(spec).points) <= 2
        out[name] = run_sweep(spec, executor="serial" if small else executor, jobs=jobs)
    return out


def iterations(n: int | None) -> dict:
    """``{"iterations": n}`` for a strategy section, or nothing: the strategy's default, as
    the reference table's cases leave it (so a script's point and ``paleosim validate``'s
    simulation of the same row are the same configuration)."""
    return {} if n is None else {"iterations": n}


def tidy(records: Iterable[Mapping[str, Any]], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The records as a table with :data:`COLUMNS` (plus ``extra``), in that order."""
    columns = COLUMNS + [c for c in extra if c not in COLUMNS]
    frame = pd.DataFrame.from_records(list(records), columns=columns)
    for column in ("variant", "reference", "reason", "status"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["workers"] = frame["workers"].astype(int)
    return frame


def rate(table: pd.DataFrame) -> float:
    """The ``samples_per_s`` of a one-point sweep that ran ok (a speedup baseline)."""
    if len(table) != 1 or table["status"].iloc[0] != "ok":
        reason = table["reason"].iloc[0] if len(table) else "no point"
        raise SpecError(f"the single-GPU baseline did not run: {reason}", field="baseline")
    return float(table["samples_per_s"].iloc[0])


def simulated(table: pd.DataFrame, *, experiment: str, series: str | Callable,
              variant: str | Callable = "", baseline: float | None = None) -> list[dict]:
    """Tidy records of a ``simulate`` sweep table.

    ``series`` and ``variant`` are strings or functions of a row (a dict); ``baseline`` is the
    single-GPU throughput the speedup is taken against (default: the sweep's own speedup, which
    is against the 1-worker point with the same other inputs)."""
    out = []
    for row in table.to_dict(orient="records"):
        ok = row["status"] == "ok"
        workers = int(row["workers"]) if ok else _workers_of(row)
        sps = float(row["samples_per_s"]) if ok else NAN
        if baseline is not None:
            speedup = sps / baseline if ok else NAN
        else:
            speedup = float(row["speedup"]) if ok else NAN
        out.append({"experiment": experiment, "series": _call(series, row), "workers": workers,
                    "source": "simulated", "variant": _call(variant, row),
                    "status": row["status"], "iteration_s": row.get("iteration_s", NAN)
                    if ok else NAN, "samples_per_s": sps, "speedup": speedup,
                    "scaling_efficiency": speedup / workers if ok else NAN,
                    "reference": row["point_id"], "reason": row["reason"]})
    return out


def _workers_of(row: Mapping[str, Any]) -> int:
    """The worker count of a flagged row, from its grid inputs."""
    import json
    if "strategy.workers" in row:
        return int(row["strategy.workers"])
    if "strategy" in row:
        strategy = json.loads(row["strategy"])
        return case_workers({"strategy": strategy})
    raise SpecError("cannot tell the worker count of a sweep row", field="strategy.workers",
                    value=row.get("point_id"))


def paleo(table: pd.DataFrame, *, experiment: str, series: str | Callable,
          schemes: tuple[str, ...] = PALEO_SCHEMES,
          baseline: Mapping[str, float] | None = None) -> list[dict]:
    """Tidy records of a ``paleo`` sweep table, one per scheme and worker count.

    Paleo's iteration is ``time_comp_s + <scheme>_s`` (docs/PALEO_COMPAT.md) and throughput the
    iteration's images over it. ``baseline`` maps a scheme to the single-worker throughput the
    speedup is taken against; default: each scheme's 1-worker row of the same series (Paleo's
    own speedup)."""
    rows = table.to_dict(orient="records")
    out = []
    for scheme in schemes:
        first: dict[str, float] = {}
        records = []
        for row in rows:
            iteration = float(row["time_comp_s"]) + float(row[f"{scheme}_s"])
            sps = float(row["batch_size"]) / iteration
            name = _call(series, row)
            workers = int(row.get("workers", row.get("result.workers", 0)))
            if workers == 1:
                first[name] = sps
            records.append((name, workers, iteration, sps))
        for name, workers, iteration, sps in records:
            base = baseline[scheme] if baseline is not None else first.get(name, NAN)
            speedup = sps / base
            out.append({"experiment": experiment, "series": name, "workers": workers,
                        "source": "paleo", "variant": scheme, "status": "ok",
                        "iteration_s": iteration, "samples_per_s": sps, "speedup": speedup,
                        "scaling_efficiency": speedup / workers, "reference": scheme,
                        "reason": ""})
    return out


def ideal(workers: Iterable[int], *, experiment: str, series: str,
          samples_per_s: float | None = None) -> list[dict]:
    """Linear scaling: speedup = workers; throughput = workers x ``samples_per_s`` (the
    single-GPU throughput it starts from) when given."""
    out = []
    for n in sorted(set(int(w) for w in workers)):
        sps = n * samples_per_s if samples_per_s is not None else NAN
        out.append({"experiment": experiment, "series": series, "workers": n, "source": "ideal",
                    "variant": "", "status": "ok", "iteration_s": NAN, "samples_per_s": sps,
                    "speedup": float(n), "scaling_efficiency": 1.0, "reference": "",
                    "reason": ""})
    return out


def _call(value, row):
    return value(row) if callable(value) else value


# ---------------------------------------------------------------------------- published values

def reference_rows(pattern: str) -> tuple:
    """The rows of the project's reference table whose id matches the glob ``pattern``
    (comma-separated globs allowed); empty when none does.

    The table is :func:`simulator.validation.table.load_reference` (``reference.json``, with a
    citation per source); this accessor is the scripts' only way to published numbers."""
    from simulator.errors import UnknownNameError
    from simulator.validation.table import load_reference
    try:
        return load_reference().select(pattern)
    except UnknownNameError:
        return ()


def citation(row) -> str:
    """The citation of a reference row's source (its key when the table has no such source)."""
    from simulator.validation.table import load_reference
    source = load_reference().sources.get(row.source)
    return source.citation if source is not None else row.source


def published(rows, *, experiment: str, series: str | Callable, variant: str | Callable = "",
              single_gpu: Mapping[str, float] | None = None) -> list[dict]:
    """Tidy records of reference rows, each metric turned into the table's columns.

    ``speedup_vs_1gpu`` gives the speedup; ``scaling_efficiency`` the efficiency (and the
    speedup, efficiency x workers); ``images_per_s`` the throughput, and the speedup over the
    published single-GPU throughput of the same series when ``single_gpu`` maps the series to
    it; ``iteration_time`` the iteration time, and the throughput from the case's global batch;
    ``tflops_per_gpu`` that column (add it to the table with ``tidy(..., extra=...)``).
    ``series``/``variant`` are strings or functions of the row."""
    out = []
    for row in rows:
        workers = case_workers(row.case)
        name = _call(series, row)
        values = {"iteration_s": NAN, "samples_per_s": NAN, "speedup": NAN,
                  "scaling_efficiency": NAN}
        if row.metric == "speedup_vs_1gpu":
            values["speedup"] = row.published
        elif row.metric == "scaling_efficiency":
            values["speedup"] = row.published * workers
        elif row.metric == "images_per_s":
            values["samples_per_s"] = row.published
            if single_gpu and name in single_gpu:
                values["speedup"] = row.published / single_gpu[name]
        elif row.metric == "iteration_time":
            values["iteration_s"] = row.published
            values["samples_per_s"] = row.case["workload"]["batch"] / row.published
        elif row.metric == "tflops_per_gpu":
            values["tflops_per_gpu"] = row.published
        else:
            raise SpecError("no tidy column for this metric", field=f"rows.{row.id}.metric",
                            value=row.metric)
        if not math.isnan(values["speedup"]):
            values["scaling_efficiency"] = values["speedup"] / workers
        note = f"{row.confidence} confidence; {citation(row)}, {row.reference}"
        if row.status != "active":
            note += f"; {row.status.replace('_', ' ')}: {row.reason}"
        out.append({"experiment": experiment, "series": name, "workers": workers,
                    "source": "published", "variant": _call(variant, row), "status": "ok",
                    **values, "reference": row.id, "reason": note})
    return out


def case_workers(case: Mapping[str, Any]) -> int:
    """The GPU count of a reference row's case: ``strategy.workers``, or ``tp x pp x dp`` for
    a ``parallel3d`` case that gives the degrees instead."""
    strategy = case["strategy"]
    if "workers" in strategy:
        return int(strategy["workers"])
    return int(strategy.get("tp", 1) * strategy.get("pp", 1) * strategy.get("dp", 1))


# ---------------------------------------------------------------------------- command line

def parser(name: str, doc: str, *, max_workers: int | None = None) -> argparse.ArgumentParser:
    """The scripts' common options: ``--out``, ``--jobs``, ``--executor``, ``--max-workers``,
    ``--no-plot``."""
    first, _, rest = doc.partition("\n")
    p = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=first,
                                epilog=rest.strip() or None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", default=str(Path("results") / name),
                   help=f"output folder (default: results/{name}/): {name}.csv and {name}.png")
    p.add_argument("--jobs", "-j", type=_positive, default=None, metavar="N",
                   help="parallel local processes for the simulations (default: every CPU)")
    p.add_argument("--executor", choices=("process", "serial"), default="process",
                   help="process (default): local processes; serial: this process")
    p.add_argument("--max-workers", type=_positive, default=max_workers, metavar="N",
                   help="leave out simulated points above N GPUs, for a quick look (default: "
                        + ("none" if max_workers is None else str(max_workers)) + ")")
    p.add_argument("--no-plot", dest="plot", action="store_false",
                   help="write the CSV only (no matplotlib needed)")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def write_outputs(table: pd.DataFrame, out_dir: str | Path, name: str,
                  figure: Callable[[pd.DataFrame], Any] | None) -> list[Path]:
    """Write ``<out_dir>/<name>.csv`` and, when ``figure`` is given, ``<name>.png`` (both
    atomically). The CSV is written first, so it exists even when the plot cannot be drawn
    (no matplotlib: :class:`SpecError` naming the extra to install)."""
    from simulator.commands._output import write_atomic
    folder = Path(out_dir)
    csv = folder / f"{name}.csv"
    write_atomic(csv, table.to_csv(index=False))
    written = [csv]
    if figure is not None:
        from simulator.plots import save_figure
        png = folder / f"{name}.png"
        save_figure(figure(table), png)
        written.append(png)
    return written


def main_of(name: str, doc: str, build: Callable[..., pd.DataFrame],
            figure: Callable[[pd.DataFrame], Any], summary: Callable[[pd.DataFrame], pd.DataFrame],
            add_options: Callable[[argparse.ArgumentParser], None] | None = None,
            options: Callable[[argparse.Namespace], dict] | None = None,
            max_workers: int | None = None):
    """A script's ``main(argv) -> int``: parse, build the table (``build(executor=, jobs=,
    max_workers=, **options(args))``), write the CSV and PNG, print a summary; a paleosim
    error becomes one line on stderr and exit code 2."""

    def main(argv: list[str] | None = None) -> int:
        p = parser(name, doc, max_workers=max_workers)
        if add_options is not None:
            add_options(p)
        args = p.parse_args(argv)
        started = time.perf_counter()
        try:
            if args.plot:  # fail before the simulations, not after
                from simulator.plots import import_matplotlib
                import_matplotlib()
            extra = options(args) if options is not None else {}
            table = build(executor=args.executor, jobs=args.jobs,
                          max_workers=args.max_workers, **extra)
            files = write_outputs(table, args.out, name, figure if args.plot else None)
        except PaleosimError as exc:
            print(f"{name}: error: {exc}" + ("; --no-plot writes the CSV alone"
                                             if "matplotlib" in str(exc) else ""),
                  file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        from simulator.commands._output import render
        try:
            print(f"# {name}: {len(table)} rows in {time.perf_counter() - started:.1f} s; "
                  "wrote " + ", ".join(str(f) for f in files))
            print(render(summary(table), "table"), end="")
        except BrokenPipeError:  # e.g. `python3 experiments/x.py | head`
            pass
        return 0

    return main
