"""Per-rank peak memory of a ``parallel3d`` plan, from :mod:`simulator.memory`.

Every rank of pipeline device ``k`` holds the model states of the layers of its chunks (its
tensor-parallel share, plus the copy of tied word embeddings on the last stage, partitioned over
the data-parallel group by ZeRO) and the activations of the microbatches its schedule keeps in
flight (:func:`simulator.memory.in_flight_microbatches`: ``m`` for GPipe, ``p - k`` for 1F1B,
more for the interleaved schedule), with the recomputation and sequence-parallel policy of the
strategy.
"""
from __future__ import annotations

import pandas as pd

from simulator.memory.states import local_params


def memory_table_3d(workload, cluster, nodes, s, graph, units, stage_units, programs, m, *,
                    extra_params: dict[int, float]) -> pd.DataFrame:
    """The memory table (:func:`simulator.memory.memory_table`) of every rank."""
    from simulator.memory import in_flight_microbatches, memory_table, training_memory

    per_stage = []
    for k in range(s.pp):
        layers = [graph.layers[i] for c in range(s.chunks)
                  for u in stage_units[c * s.pp + k] for i in units[u].layers]
        params = local_params(layers, tp=s.tp)
        params += extra_params.get(k, 0.0)
        in_flight = in_flight_microbatches(s.schedule, s.pp, k, m, s.chunks)
        per_stage.append(training_memory(
            layers, dtype=workload.dtype, optimizer=workload.optimizer, params=params,
            zero_stage=s.zero_stage, dp=s.dp, tp=s.tp, sequence_parallel=s.sequence_parallel,
            in_flight_microbatches=in_flight, recompute=s.recompute))
    rows = [(r, node, cluster.device_of(node), per_stage[r // (s.dp * s.tp)])
            for r, node in enumerate(nodes)]
    return memory_table(rows)
