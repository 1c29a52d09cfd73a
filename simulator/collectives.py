"""Collectives and their algorithms: the names a strategy may give, and what ``S`` means.

A strategy names a collective (allreduce, reducescatter, allgather, broadcast, reduce,
alltoall), its group of ranks, its size ``S`` and an algorithm; the collective planner
(:mod:`simulator.planner`) turns that into flows on the topology. Sizes: for allreduce, reduce,
broadcast and reducescatter, ``S`` is the full buffer on each rank; for allgather, the full
gathered output; for alltoall, what each rank sends in total.

Algorithms (see :mod:`simulator.planner.algorithms` for each schedule and its source):

=================  ====================================================================
allreduce          ring, ring_steps, double_binary_tree, nvls, hierarchical (Horovod),
                   three_phase (Goyal et al.), tree (binomial), halving_doubling
                   (rabenseifner), recursive_doubling (butterfly), one_to_all
                   (parameter_server); the two-level schemes as ``scheme:inter`` with
                   inter one of ring, halving_doubling, recursive_doubling, tree,
                   double_binary_tree (``hierarchical:halving_doubling``)
reducescatter,     ring
allgather
broadcast, reduce  chain (ring), tree
alltoall           direct (ring), pxn
=================  ====================================================================

Every collective also takes ``auto``: the planner picks by message size and hardware
(:mod:`simulator.planner.planner`).
"""
from __future__ import annotations

from simulator.planner.algorithms import names


def algorithms(collective: str | None = None) -> tuple[str, ...]:
    """Algorithm names, for one collective or for all (``auto`` included)."""
    return names(collective)


__all__ = ["algorithms"]
