"""Paleo's data-parallel mode (``simulate --parallel data``; ``PALEO_COST_MODEL.md`` 3.1).

Each of N workers runs forward and backward on its batch, updates all weights, and the workers
synchronise the weights with one of four schemes (:mod:`simulator.paleo.comm`):

- weak scaling: every worker keeps batch B (global batch N*B), profiled once;
- strong scaling: every worker gets ``ceil(B/N)`` images (global batch B), re-profiled for each
  N; at an N that does not divide B this overstates the work slightly (bug B7, kept).

``time_comp = fwd + bwd + apply``; an iteration with a scheme takes ``time_comp + scheme``, and
the speedup over one worker is ``N*t1/tN`` (weak) or ``t1/tN`` (strong), as Paleo's web demo
computes it. The weight update is not divided among workers and not overlapped.
"""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd

from simulator.paleo.comm import SCHEMES, comm_times_ms
from simulator.paleo.net import PaleoNet
from simulator.paleo.placement import fetch_ms
from simulator.paleo.profile import update_time
from simulator.paleo.software import PPP

SCALINGS = ("weak", "strong")
DATA_COLUMNS = ("workers", "batch_size", "per_worker_batch", "time_fwd_ms", "time_bwd_ms",
                "time_apply_ms", "time_comp_ms", *(f"{s}_ms" for s in SCHEMES),
                *(f"speedup_{s}" for s in SCHEMES))


def per_worker_batch(batch: int, workers: int, scaling: str) -> int:
    """B for weak scaling, ``ceil(B/N)`` for strong scaling (bug B7)."""
    return batch if scaling == "weak" else -(-batch // workers)


def compute_times_ms(net: PaleoNet, batch: int, *, device, ppp: PPP, memory_term: str,
                     use_pipeline: bool) -> tuple[float, float, float, int]:
    """Forward, backward and update ms of one worker at ``batch``, and ``params_in_bytes``.

    Remote fetches (nets with ModelParallel blocks only) use the device memory bandwidth.
    """
    prof = net.profile(batch, memory_term)
    fetch = None
    if prof.fetches:
        fetch = fetch_ms(prof.fetches, len(prof.layer_names), device=device, ppp_comm=ppp.comm,
                         source=net.source)
    measures = prof.layer_measures(device, ppp_comp=ppp.comp, fetch=fetch)
    fwd = math.fsum(measures.forward(use_pipeline))
    bwd = math.fsum(measures.backward(use_pipeline))
    apply = update_time(prof.params, device).time_ms(use_pipeline)
    return fwd, bwd, apply, prof.params_bytes


def data_parallel(net: PaleoNet, *, device, network, ppp: PPP, batch: int, scaling: str,
                  workers: Sequence[int], memory_term: str = "dec2016",
                  use_pipeline: bool = False) -> pd.DataFrame:
    """One row per worker count: Paleo's times in ms and each scheme's speedup over 1 worker."""
    cache: dict[int, tuple[float, float, float, int]] = {}

    def times(b: int):
        if b not in cache:
            cache[b] = compute_times_ms(net, b, device=device, ppp=ppp, memory_term=memory_term,
                                        use_pipeline=use_pipeline)
        return cache[b]

    def iteration(n: int) -> tuple[tuple[float, float, float, int], dict[str, float]]:
        fwd, bwd, apply, nbytes = times(per_worker_batch(batch, n, scaling))
        comm = comm_times_ms(nbytes, n, gbit_per_s=network.bandwidth_gbit_per_s,
                             ppp_comm=ppp.comm)
        return (fwd, bwd, apply, nbytes), comm

    (f1, b1, a1, _), comm1 = iteration(1)
    base = {s: f1 + b1 + a1 + comm1[s] for s in SCHEMES}
    rows = []
    for n in workers:
        (fwd, bwd, apply, _), comm = iteration(n)
        comp = fwd + bwd + apply
        row = {"workers": n, "batch_size": batch * n if scaling == "weak" else batch,
               "per_worker_batch": per_worker_batch(batch, n, scaling), "time_fwd_ms": fwd,
               "time_bwd_ms": bwd, "time_apply_ms": apply, "time_comp_ms": comp}
        for s in SCHEMES:
            row[f"{s}_ms"] = comm[s]
        for s in SCHEMES:
            scale = n if scaling == "weak" else 1
            row[f"speedup_{s}"] = scale * base[s] / (comp + comm[s])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(DATA_COLUMNS))
