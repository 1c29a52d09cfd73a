"""Paleo's analytical prediction of a reference row, beside ours.

A row's ``paleo`` mapping says how Paleo's own case-study scripts set the case up
(``shared/docs/PALEO_COST_MODEL.md`` section 4): Paleo's net file, device and network presets,
software stack (its fitted PPP pair), batch and mode. The prediction is computed with paleosim's
Paleo-compatible estimator (:func:`simulator.paleo.estimate`, which reproduces Paleo's published
predictions) on *Paleo's* net files, read from a folder the caller gives (the shared data
folder); without it, no Paleo prediction is made and the caller says so.

Only speedup rows are covered (every Paleo case study is one). Fields:

``mode``
    ``data``: ``net``, ``device``, ``network``, ``software``, ``scaling`` (weak | strong),
    ``batch`` (per worker for weak, global for strong, as in Paleo), ``workers``, optional
    ``baseline_batch`` (the single-worker batch of the published baseline; default ``batch``).
    ``hybrid``: ``net`` (the K-GPU file), ``baseline_net`` (the 1-GPU file), ``device``,
    ``network``, ``software``, ``batch`` (per worker), ``workers`` (K).

Speedup, as the reference set defines it: throughput with N workers over single-worker
throughput, ``(G_N / t_N) / (b_1 / t_1)`` with ``G_N`` the images of one iteration on N workers
(``N * batch`` weak, ``batch`` strong) and ``b_1`` the baseline batch. ``t`` is Paleo's iteration
time: ``time_comp`` plus the scheme's communication in data mode (Paleo prints OneToAll,
TreeAllReduce and ButterflyAllReduce side by side and leaves the choice to the reader), the
``total`` row in hybrid mode. The comparison takes, per row, **the scheme closest to the
published value** (Paleo at its best), so "closer than Paleo" is a conservative claim; every
scheme's value is kept.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simulator.errors import SpecError

DATA_SCHEMES = ("OneToAll", "TreeAllReduce", "ButterflyAllReduce")
DATA_FIELDS = {"mode", "net", "device", "network", "software", "scaling", "batch", "workers",
               "baseline_batch"}
HYBRID_FIELDS = {"mode", "net", "baseline_net", "device", "network", "software", "batch",
                 "workers"}


def check_paleo_spec(row) -> None:
    """Raise :class:`SpecError` unless ``row.paleo`` is a valid Paleo case (or absent)."""
    spec = row.paleo
    if spec is None:
        return
    where = f"rows.{row.id}.paleo"
    if row.metric != "speedup_vs_1gpu":
        raise SpecError("Paleo predictions cover speedup rows only", field=where,
                        value=row.metric)
    mode = spec.get("mode")
    valid = {"data": DATA_FIELDS, "hybrid": HYBRID_FIELDS}.get(mode)
    if valid is None:
        raise SpecError("mode must be 'data' or 'hybrid'", field=f"{where}.mode", value=mode)
    optional = {"baseline_batch"}
    missing = sorted(valid - optional - set(spec))
    extra = sorted(set(spec) - valid)
    if missing or extra:
        raise SpecError(f"fields for mode {mode!r}: {', '.join(sorted(valid))}",
                        field=f"{where}.{(missing or extra)[0]}", value=spec)


class PaleoPredictor:
    """Paleo's speedups for reference rows, with Paleo's nets read from ``nets_dir``.

    Parsed nets are cached per file for the predictor's lifetime (no global state).
    """

    def __init__(self, nets_dir: str | Path) -> None:
        self.nets_dir = Path(nets_dir)
        if not self.nets_dir.is_dir():
            raise SpecError("Paleo's nets folder not found", field="paleo nets",
                            value=str(nets_dir))
        self._nets: dict[str, Any] = {}

    def _net(self, name: str):
        from simulator.paleo import PaleoNet
        if name not in self._nets:
            path = self.nets_dir / name
            if not path.is_file():
                raise SpecError("Paleo net file not found", field="paleo.net", value=str(path))
            self._nets[name] = PaleoNet(str(path))
        return self._nets[name]

    def speedups(self, row) -> dict[str, float] | None:
        """Paleo's speedup per scheme (data mode) or ``{"hybrid": s}``; ``None`` if Paleo does
        not cover the row."""
        check_paleo_spec(row)
        spec = row.paleo
        if spec is None:
            return None
        if spec["mode"] == "hybrid":
            return {"hybrid": self._hybrid(spec)}
        return self._data(spec)

    def _data(self, spec: Mapping[str, Any]) -> dict[str, float]:
        from simulator.paleo import estimate, iteration_ms
        net = self._net(spec["net"])
        n, batch, scaling = spec["workers"], spec["batch"], spec["scaling"]
        common = dict(device=spec["device"], network=spec["network"], software=spec["software"],
                      scaling=scaling)
        at_n = estimate(net, batch=batch, workers=[n], **common)
        base_batch = spec.get("baseline_batch", batch)
        at_1 = estimate(net, batch=base_batch, workers=[1], **common)
        images_n = batch * n if scaling == "weak" else batch
        out = {}
        for scheme in DATA_SCHEMES:
            t_n = float(iteration_ms(at_n, scheme).iloc[0])
            t_1 = float(iteration_ms(at_1, scheme).iloc[0])
            out[scheme] = (images_n / t_n) / (base_batch / t_1)
        return out

    def _hybrid(self, spec: Mapping[str, Any]) -> float:
        from simulator.paleo import estimate
        common = dict(device=spec["device"], network=spec["network"], software=spec["software"],
                      batch=spec["batch"], parallel="hybrid")
        k = spec["workers"]
        t_k = _total_ms(estimate(self._net(spec["net"]), hybrid_workers=k, **common))
        t_1 = _total_ms(estimate(self._net(spec["baseline_net"]), hybrid_workers=1, **common))
        return k * t_1 / t_k


def _total_ms(frame) -> float:
    return float(frame.loc[frame["part"] == "total", "time_ms"].iloc[0])


def best_scheme(speedups: Mapping[str, float], published: float) -> tuple[str, float]:
    """The scheme whose speedup is closest to ``published`` (in ratio) and its value."""
    scheme = min(speedups, key=lambda s: abs(math.log(speedups[s] / published)))
    return scheme, speedups[scheme]
