"""Paleo's model-parallel and hybrid modes (``PALEO_COST_MODEL.md`` sections 2.7 and 3.1).

Model parallelism (``--parallel model``): every layer, every split included, is profiled at the
batch B; remote fetches use the device memory bandwidth. Paleo reports two bounds for forward
and for backward: ``upperbound``, the plain sum over layers, and ``lowerbound``, the sum along
the graph that takes the maximum over parallel branches (:func:`~simulator.paleo.placement.
critical_path`). There is no weight update and no all-reduce, and ``--use_pipeline`` is ignored.

Hybrid parallelism (``--parallel hybrid --hybrid_workers K``; Krizhevsky's "one weird trick"):
layers outside ModelParallel blocks are data-parallel (DP) over K workers, the block copies are
model-parallel (MP) with the K workers' batches passed through them one after another.

- DP part: forward and backward summed over the DP layers at batch B (remote fetches at the
  network's "GB/s"), the update of the DP weights, and ``TreeAllReduce(K)`` of the DP weights.
- MP part: forward and backward lower bounds over the MP layers, the update of all MP weights,
  then Paleo's pipelining correction ``m = (m - t_fetch)*K + t_fetch`` with
  ``t_fetch = E/2^30/(Gbit/s/8)*1e3*(K-1)`` ms, where E is the size of the first MP layer's
  input *in elements* (not bytes) and ``ppp_comm`` is ignored (bug B5, reproduced).

Paleo prints the two parts as two rows and leaves their sum (the time of one iteration of K*B
images) to the reader; :func:`hybrid_parallel` adds it as a third row, ``part = "total"``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from simulator.paleo.comm import comm_times_ms
from simulator.paleo.conv import FLOAT_BYTES
from simulator.paleo.net import PaleoNet
from simulator.paleo.placement import critical_path, fetch_ms
from simulator.paleo.profile import update_time
from simulator.paleo.software import PPP
from simulator.paleo.timing import GIB

MODEL_COLUMNS = ("bound", "batch_size", "time_fwd_ms", "time_bwd_ms", "time_comp_ms")
HYBRID_COLUMNS = ("part", "workers", "batch_size", "per_worker_batch", "time_fwd_ms",
                  "time_bwd_ms", "time_apply_ms", "time_sync_ms", "time_ms")


def model_parallel(net: PaleoNet, *, device, ppp: PPP, batch: int,
                   memory_term: str = "dec2016") -> pd.DataFrame:
    """Paleo's model-parallel bounds: rows ``lowerbound`` and ``upperbound`` (ms).

    ``time_comp_ms`` is forward plus backward (there is no update in this mode).
    """
    prof = net.profile(batch, memory_term)
    graph = net.at_batch(batch)
    fetch = fetch_ms(prof.fetches, len(prof.layer_names), device=device, ppp_comm=ppp.comm,
                     source=net.source)
    m = prof.layer_measures(device, ppp_comp=ppp.comp, fetch=fetch)
    fwd, bwd = m.forward(False), m.backward(False)
    names = prof.layer_names
    lower_f, _ = critical_path(graph, dict(zip(names, fwd)))
    lower_b, _ = critical_path(graph, dict(zip(names, bwd)))
    upper_f, upper_b = math.fsum(fwd), math.fsum(bwd)
    rows = [("lowerbound", batch, lower_f, lower_b, lower_f + lower_b),
            ("upperbound", batch, upper_f, upper_b, upper_f + upper_b)]
    return pd.DataFrame(rows, columns=list(MODEL_COLUMNS))


def pipelining_fetch_ms(net: PaleoNet, batch: int, *, network, hybrid_workers: int) -> float:
    """Paleo's ``t_fetch`` of the hybrid correction (bug B5: elements, not bytes; no PPP)."""
    graph = net.at_batch(batch)
    first = next((layer for layer in graph.layers if layer.split is not None), None)
    if first is None:
        return 0.0
    elems = sum(math.prod(graph[p].output_shape) for p in first.parents)
    return elems / GIB / (network.bandwidth_gbit_per_s / 8.0) * 1e3 * (hybrid_workers - 1)


def hybrid_parallel(net: PaleoNet, *, device, network, ppp: PPP, batch: int,
                    hybrid_workers: int, memory_term: str = "dec2016",
                    use_pipeline: bool = False) -> pd.DataFrame:
    """Paleo's hybrid mode for K = ``hybrid_workers``: rows ``data``, ``model`` and ``total``.

    ``batch_size`` is the K*B images of one iteration; ``time_ms`` sums a row's forward,
    backward, update and synchronisation. ``use_pipeline`` applies to the DP layers and the
    updates; the MP lower bounds always sum compute and memory, as Paleo's summation does.
    """
    k = hybrid_workers
    prof = net.profile(batch, memory_term)
    graph = net.at_batch(batch)
    fetch = fetch_ms(prof.fetches, len(prof.layer_names), device=device, ppp_comm=ppp.comm,
                     network_gbit_per_s=network.bandwidth_gbit_per_s, source=net.source)
    m = prof.layer_measures(device, ppp_comp=ppp.comp, fetch=fetch)
    mp = prof.model_parallel
    dp_fwd = math.fsum(m.forward(use_pipeline)[~mp])
    dp_bwd = math.fsum(m.backward(use_pipeline)[~mp])
    dp_params = int(prof.layer_params[~mp].sum())
    dp_apply = update_time(dp_params, device).time_ms(use_pipeline)
    dp_sync = comm_times_ms(dp_params * FLOAT_BYTES, k, gbit_per_s=network.bandwidth_gbit_per_s,
                            ppp_comm=ppp.comm)["TreeAllReduce"]

    names = np.asarray(prof.layer_names, dtype=object)
    mp_names = list(names[mp])
    mp_fwd, _ = critical_path(graph, dict(zip(mp_names, m.forward(False)[mp])))
    mp_bwd, _ = critical_path(graph, dict(zip(mp_names, m.backward(False)[mp])))
    mp_apply = update_time(int(prof.layer_params[mp].sum()), device).time_ms(use_pipeline)
    if mp_names:
        t_fetch = pipelining_fetch_ms(net, batch, network=network, hybrid_workers=k)
        mp_fwd = (mp_fwd - t_fetch) * k + t_fetch
        mp_bwd = (mp_bwd - t_fetch) * k + t_fetch

    rows = []
    for part, fwd, bwd, apply, sync in (("data", dp_fwd, dp_bwd, dp_apply, dp_sync),
                                        ("model", mp_fwd, mp_bwd, mp_apply, 0.0)):
        rows.append((part, k, k * batch, batch, fwd, bwd, apply, sync, fwd + bwd + apply + sync))
    total = ("total", k, k * batch, batch,
             *(rows[0][i] + rows[1][i] for i in range(4, len(HYBRID_COLUMNS))))
    rows.append(total)
    return pd.DataFrame(rows, columns=list(HYBRID_COLUMNS))
