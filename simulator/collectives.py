"""Collective algorithms, expanded into phases of point-to-point flows.

An algorithm turns (collective, group size n, bytes per rank S) into a list of :class:`Phase`:
each phase is a set of concurrent flows between group-local indices; a phase starts when the
previous one has finished. The engine puts every flow on the network, so the rates come from the
topology and from any other traffic (contention), never from a formula.

Bulk-synchronous algorithms whose steps all move the same flows (the ring's 2(n-1) steps, a
pipelined chain or tree) are folded into one phase: each flow carries the bytes of all its steps,
and the phase pays the per-step latency ``steps`` times. On a homogeneous ring this is exact: every
step's flows see the same rates, so the ring takes 2(n-1)/n * S/B + 2(n-1) * alpha (Patarasuk &
Yuan, JPDC 2009). ``ring_steps`` keeps one phase per step, for checking that equivalence.

Sizes: for allreduce, reduce, broadcast and reducescatter, S is the full buffer on each rank; for
allgather, S is the full gathered output; for alltoall, S is what each rank sends in total.
Reduction arithmetic is not charged (NCCL overlaps it with the transfers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from simulator.errors import SpecError, UnknownNameError

Flow = tuple[int, int, float]  # (source index, destination index, bytes)


@dataclass(frozen=True)
class Phase:
    """Concurrent flows; ``steps`` is how many lockstep latencies the phase pays."""

    flows: tuple[Flow, ...]
    steps: int = 1


AlgorithmFn = Callable[..., list[Phase]]
_ALGORITHMS: dict[tuple[str, str], AlgorithmFn] = {}


def algorithm(collective: str, *names: str):
    def deco(fn: AlgorithmFn) -> AlgorithmFn:
        for name in names:
            _ALGORITHMS[(collective, name)] = fn
        return fn
    return deco


def algorithms(collective: str | None = None) -> tuple[str, ...]:
    """Algorithm names, for one collective or for all."""
    return tuple(sorted({a for c, a in _ALGORITHMS if collective in (None, c)}))


def expand(collective: str, name: str, n: int, nbytes: float, *, root: int = 0,
           servers: Sequence[int] | None = None) -> list[Phase]:
    """The phases of ``collective`` by algorithm ``name`` over ``n`` ranks, ``nbytes`` per rank.

    ``servers`` gives each member's server (for hierarchical algorithms).
    """
    fn = _ALGORITHMS.get((collective, name))
    if fn is None:
        raise UnknownNameError(f"{collective} algorithm", name, algorithms(collective))
    if n < 1 or nbytes < 0:
        raise SpecError("a collective needs n >= 1 ranks and non-negative bytes",
                        field="collective", value=(n, nbytes))
    if n == 1 or nbytes == 0:
        return []
    return [p for p in fn(n, float(nbytes), root=root, servers=servers) if p.flows]


def _ring(n: int, per_flow: float, steps: int, order: Sequence[int] | None = None) -> Phase:
    order = list(order) if order is not None else list(range(n))
    m = len(order)
    return Phase(tuple((order[i], order[(i + 1) % m], per_flow) for i in range(m)), steps)


def ring_channels(n: int, servers: Sequence[int] | None) -> list[list[int]]:
    """The rings a ring collective runs, as NCCL builds them on multi-GPU servers.

    With every server holding the same m > 1 members and at least two servers, there are m rings
    (channels), each carrying 1/m of the buffer: ring c visits each server's members rotated by
    c, so it leaves every server from a different GPU (and, where each GPU has its own NIC,
    through a different NIC), and all the servers' NICs carry the inter-server traffic at once.
    Otherwise one ring over the members in order.
    """
    if servers is None:
        return [list(range(n))]
    groups: dict[int, list[int]] = {}
    for i, srv in enumerate(servers):
        groups.setdefault(srv, []).append(i)
    sizes = {len(g) for g in groups.values()}
    if len(groups) < 2 or len(sizes) != 1 or sizes == {1}:
        return [list(range(n))]
    m = sizes.pop()
    members = list(groups.values())
    return [[g[(j + c) % m] for g in members for j in range(m)] for c in range(m)]


def _channel_rings(n: int, s: float, servers, per_rank_factor: float, steps: int) -> list[Phase]:
    rings = ring_channels(n, servers)
    share = per_rank_factor * s / len(rings)
    flows = tuple(f for order in rings for f in _ring(n, share, steps, order).flows)
    return [Phase(flows, steps)]


@algorithm("allreduce", "ring")
def _allreduce_ring(n, s, servers=None, **_):
    """Ring all-reduce (NCCL channels on multi-GPU servers, see :func:`ring_channels`)."""
    return _channel_rings(n, s, servers, 2 * (n - 1) / n, 2 * (n - 1))


@algorithm("allreduce", "ring_steps")
def _allreduce_ring_steps(n, s, **_):
    return [_ring(n, s / n, 1) for _ in range(2 * (n - 1))]


@algorithm("reducescatter", "ring")
def _reducescatter_ring(n, s, servers=None, **_):
    return _channel_rings(n, s, servers, (n - 1) / n, n - 1)


@algorithm("allgather", "ring")
def _allgather_ring(n, s, servers=None, **_):
    return _channel_rings(n, s, servers, (n - 1) / n, n - 1)


def _binomial_reduce(n: int, s: float, root: int) -> list[Phase]:
    """Binomial-tree reduce to ``root``: ceil(log2 n) phases, each receiver gets one flow."""
    phases = []
    for k in range(math.ceil(math.log2(n))):
        bit = 1 << k
        flows = tuple(((i + root) % n, (i - bit + root) % n, s) for i in range(n)
                      if i % (2 * bit) == bit)
        phases.append(Phase(flows))
    return phases


def _reverse(phases: list[Phase]) -> list[Phase]:
    return [Phase(tuple((d, s, b) for s, d, b in p.flows), p.steps) for p in reversed(phases)]


@algorithm("allreduce", "tree")
def _allreduce_tree(n, s, root=0, **_):
    """Binomial reduce then broadcast: 2 ceil(log2 n) (alpha + S/B), Paleo's TreeAllReduce."""
    up = _binomial_reduce(n, s, root)
    return up + _reverse(up)


@algorithm("reduce", "tree")
def _reduce_tree(n, s, root=0, **_):
    return _binomial_reduce(n, s, root)


@algorithm("broadcast", "tree")
def _broadcast_tree(n, s, root=0, **_):
    return _reverse(_binomial_reduce(n, s, root))


@algorithm("broadcast", "ring", "chain")
def _broadcast_chain(n, s, root=0, **_):
    """Pipelined chain from the root: S/B + (n-1) alpha."""
    order = [(root + i) % n for i in range(n)]
    return [Phase(tuple((order[i], order[i + 1], s) for i in range(n - 1)), n - 1)]


@algorithm("reduce", "ring", "chain")
def _reduce_chain(n, s, root=0, **_):
    order = [(root + i) % n for i in range(n)]
    return [Phase(tuple((order[i + 1], order[i], s) for i in range(n - 1)), n - 1)]


def _binary_tree_edges(n: int, shift: int) -> list[tuple[int, int]]:
    """(child, parent) edges of a balanced binary tree over ranks 0..n-1 in in-order layout,
    relabelled by ``shift``; the shifted tree's leaves are the first tree's inner nodes."""
    edges = []

    def build(lo: int, hi: int, parent: int | None) -> None:
        if lo > hi:
            return
        mid = (lo + hi) // 2
        if parent is not None:
            edges.append(((mid + shift) % n, (parent + shift) % n))
        build(lo, mid - 1, mid)
        build(mid + 1, hi, mid)

    build(0, n - 1, None)
    return edges


def _tree_depth(n: int) -> int:
    return max(1, math.ceil(math.log2(n + 1)) - 1)


@algorithm("allreduce", "double_binary_tree")
def _allreduce_dbtree(n, s, **_):
    """Two pipelined binary trees, each reducing and broadcasting half the buffer (NCCL 2.4,
    Sanders, Speck & Traeff, Parallel Computing 2009). In steady state every tree edge carries
    its half in both directions at once: one phase, 2 * depth latencies."""
    flows = []
    for shift in (0, 1):
        for child, parent in _binary_tree_edges(n, shift):
            flows.append((child, parent, s / 2))
            flows.append((parent, child, s / 2))
    return [Phase(tuple(flows), 2 * _tree_depth(n))]


@algorithm("allreduce", "halving_doubling", "rabenseifner")
def _allreduce_halving_doubling(n, s, **_):
    """Recursive-halving reduce-scatter then recursive-doubling all-gather (Thakur, Rabenseifner
    & Gropp, IJHPCA 2005). Ranks beyond the largest power of two first fold into a partner."""
    p = 1 << int(math.floor(math.log2(n)))
    extra = n - p
    phases: list[Phase] = []
    if extra:
        phases.append(Phase(tuple((p + i, i, s) for i in range(extra))))
    half = []
    size = s
    k = p >> 1
    while k >= 1:
        size /= 2
        half.append(Phase(tuple((i, i ^ k, size) for i in range(p))))
        k >>= 1
    phases += half + [Phase(ph.flows, ph.steps) for ph in reversed(half)]
    if extra:
        phases.append(Phase(tuple((i, p + i, s) for i in range(extra))))
    return phases


@algorithm("allreduce", "recursive_doubling", "butterfly")
def _allreduce_recursive_doubling(n, s, **_):
    """Full-buffer exchanges with partner i XOR 2^k: ceil(log2 n) steps of S each, Paleo's
    ButterflyAllReduce. Non-powers of two fold the extra ranks first."""
    p = 1 << int(math.floor(math.log2(n)))
    extra = n - p
    phases = [Phase(tuple((p + i, i, s) for i in range(extra)))] if extra else []
    k = 1
    while k < p:
        phases.append(Phase(tuple((i, i ^ k, s) for i in range(p))))
        k <<= 1
    if extra:
        phases.append(Phase(tuple((i, p + i, s) for i in range(extra))))
    return phases


@algorithm("allreduce", "one_to_all", "parameter_server")
def _allreduce_one_to_all(n, s, root=0, **_):
    """Paleo's OneToAll: every rank sends its buffer to the root, which sends the result back.
    The root's link carries (n-1) S each way, so this takes 2 (n-1) S/B by contention alone."""
    others = [i for i in range(n) if i != root]
    return [Phase(tuple((i, root, s) for i in others)),
            Phase(tuple((root, i, s) for i in others))]


@algorithm("allreduce", "hierarchical")
def _allreduce_hierarchical(n, s, servers=None, **_):
    """Reduce inside each server to a local root, ring all-reduce across the local roots,
    broadcast inside each server (Goyal et al. 2017, section 4; Horovod's hierarchical mode)."""
    if servers is None:
        raise SpecError("the hierarchical algorithm needs each rank's server", field="algorithm",
                        value="hierarchical")
    groups: dict[int, list[int]] = {}
    for i, srv in enumerate(servers):
        groups.setdefault(srv, []).append(i)
    local = [members for members in groups.values()]
    roots = [members[0] for members in local]
    reduce_flows, bcast_flows = [], []
    steps = 1
    for members in local:
        if len(members) > 1:
            chain = list(reversed(members))  # pipelined chain towards the local root
            reduce_flows += [(chain[i], chain[i + 1], s) for i in range(len(chain) - 1)]
            bcast_flows += [(members[i], members[i + 1], s) for i in range(len(members) - 1)]
            steps = max(steps, len(members) - 1)
    phases = []
    if reduce_flows:
        phases.append(Phase(tuple(reduce_flows), steps))
    if len(roots) > 1:
        r = len(roots)
        phases.append(Phase(tuple((roots[i], roots[(i + 1) % r], 2 * (r - 1) / r * s)
                                  for i in range(r)), 2 * (r - 1)))
    if bcast_flows:
        phases.append(Phase(tuple(bcast_flows), steps))
    return phases


@algorithm("alltoall", "direct", "ring")
def _alltoall_direct(n, s, **_):
    """Every rank sends S/n to every other rank at once."""
    return [Phase(tuple((i, j, s / n) for i in range(n) for j in range(n) if i != j))]
