"""Paleo's time primitives, in Paleo's own units (milliseconds, GiB-for-GB device memory).

These are the only place where Paleo's units live. Everything else in :mod:`simulator.paleo`
builds work counts (FLOPs, bytes) and hands them here; the public outputs are ``*_ms`` columns
because that is what Paleo prints, with SI seconds alongside.

Formulas (``PALEO_COST_MODEL.md`` section 2.1, Paleo ``profilers/flops_profiler.py``):

- compute: ``t = max(1 cycle, flops / 1e9 / peak_GFLOPS * 1e3 / ppp_comp)`` ms, and 0 for
  0 FLOPs (the floor is bypassed);
- memory: ``t = max(1 cycle, bytes / 2^30 / bw_label * 1e3 / ppp)`` ms: the "GB/s" label is
  divided against 2^30 (bug B1, so memory behaves as GiB/s); on-device traffic uses ``ppp_comp``;
- network: ``t = bytes / (Gbit/s / 8 * 1e9) * 1e3 / ppp_comm`` ms (decimal, no floor).

Every term goes through its primitive separately, so each gets its own one-cycle floor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GIB = float(2 ** 30)  # Paleo's divisor for device memory bytes (bug B1)


def cycle_ms(clock_mhz: float) -> float:
    """One clock cycle in ms: Paleo's floor for every non-zero compute or memory term."""
    return 1.0 / clock_mhz / 1e3


def comp_ms(flops, *, peak_gflops: float, clock_mhz: float, ppp: float):
    """Paleo compute time in ms of ``flops`` (scalar or numpy array), per term.

    ``max(1 cycle, flops/1e9/peak_GFLOPS*1e3/ppp)``, and exactly 0 where ``flops`` is 0.
    """
    flops = np.asarray(flops, dtype=float)
    raw = flops / 1e9 / peak_gflops * 1e3 / ppp
    out = np.where(flops == 0, 0.0, np.maximum(cycle_ms(clock_mhz), raw))
    return float(out) if out.ndim == 0 else out


def mem_ms(nbytes, *, bandwidth_label: float, clock_mhz: float, ppp: float):
    """Paleo memory-transfer time in ms of ``nbytes`` (scalar or array), per term.

    ``max(1 cycle, bytes/2^30/bandwidth_label*1e3/ppp)``: the label is Paleo's "GB/s" figure,
    used as GiB/s (bug B1). Paleo applies the floor even to an empty transfer.
    """
    nbytes = np.asarray(nbytes, dtype=float)
    raw = nbytes / GIB / bandwidth_label * 1e3 / ppp
    out = np.maximum(cycle_ms(clock_mhz), raw)
    return float(out) if out.ndim == 0 else out


def network_ms(nbytes: float, *, gbit_per_s: float, ppp_comm: float) -> float:
    """Paleo network time in ms of ``nbytes`` over a ``gbit_per_s`` link (decimal), no floor."""
    return nbytes / (gbit_per_s / 8.0 * 1e9) * 1e3 / ppp_comm


@dataclass(frozen=True)
class TimeMeasure:
    """Paleo's per-layer time: compute and memory/fetch ("comm") parts, in ms.

    ``total`` is their sum (Paleo's default); ``lowerbound`` their maximum (``--use_pipeline``).
    """

    comp_ms: float = 0.0
    comm_ms: float = 0.0

    def __add__(self, other: "TimeMeasure") -> "TimeMeasure":
        return TimeMeasure(self.comp_ms + other.comp_ms, self.comm_ms + other.comm_ms)

    @property
    def total_ms(self) -> float:
        return self.comp_ms + self.comm_ms

    @property
    def lowerbound_ms(self) -> float:
        return max(self.comp_ms, self.comm_ms)

    def time_ms(self, use_pipeline: bool) -> float:
        """The layer time Paleo charges: the lowerbound with a pipeline, else the total."""
        return self.lowerbound_ms if use_pipeline else self.total_ms
