"""Paleo's four data-parallel communication schemes (``comm.py``; ``PALEO_COST_MODEL.md`` 2.6).

With ``L = |W| / (Gbit/s / 8 * 1e9) * 1e3 / ppp_comm`` ms (one full copy of the parameters over
the link) and ``h = ceil(log2 N)``:

==================  ============  =====================================================
scheme              time (ms)     at N = 1
==================  ============  =====================================================
OneToAll            ``2(N-1)L``   0 (a parameter server bottlenecked by its master)
TreeAllReduce       ``2hL``       0 (reduce up a tree, broadcast down)
ButterflyAllReduce  ``hL``        0
ButterflyMixing     ``L``         L: Paleo charges it even for one worker (a quirk kept)
==================  ============  =====================================================

Pure bandwidth terms: no latency, no overlap with compute, no ring all-reduce.
"""
from __future__ import annotations

from simulator.paleo.timing import network_ms

SCHEMES = ("OneToAll", "TreeAllReduce", "ButterflyAllReduce", "ButterflyMixing")


def tree_height(workers: int) -> int:
    """``ceil(log2 N)``, exact for integers."""
    return (workers - 1).bit_length()


def scheme_factors(workers: int) -> dict[str, int]:
    """How many copies of ``L`` each scheme moves for ``workers`` workers."""
    h = tree_height(workers)
    return {"OneToAll": 2 * (workers - 1), "TreeAllReduce": 2 * h, "ButterflyAllReduce": h,
            "ButterflyMixing": 1}


def comm_times_ms(params_bytes: float, workers: int, *, gbit_per_s: float,
                  ppp_comm: float) -> dict[str, float]:
    """Each scheme's time in ms to synchronise ``params_bytes`` among ``workers`` workers."""
    link = network_ms(params_bytes, gbit_per_s=gbit_per_s, ppp_comm=ppp_comm)
    return {name: factor * link for name, factor in scheme_factors(workers).items()}
