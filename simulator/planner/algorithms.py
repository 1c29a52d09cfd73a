"""Collective algorithms: each turns a group's :class:`Layout` into a :class:`Plan`.

Sizes (``S``): for allreduce, reduce, broadcast and reducescatter, S is the full buffer on each
rank; for allgather, S is the full gathered output; for alltoall, S is what each rank sends in
total. ``n`` is the number of members; the root of a rooted collective is member 0. Reduction
arithmetic is not charged (NCCL overlaps it with the transfers).

Which library an algorithm stands for decides how it crosses host memory from a GPU without
GPUDirect RDMA (:data:`~simulator.planner.plan.STAGINGS`): NCCL's algorithms (ring, double
binary tree, NVLS, Horovod's hierarchical, alltoall) pipeline through host bounce buffers; the
MPI-style ones (binomial tree, halving-doubling, recursive doubling, one-to-all, the ring of
separate steps, Goyal's three-phase scheme) copy whole messages, as the frameworks that used
them did. The NCCL algorithms' pipelined steps are coupled groups (they run at their slowest
hop's rate); the MPI-style phases are separate flows per transfer.
"""
from __future__ import annotations

import math
from typing import Callable

from simulator.errors import SpecError
from simulator.planner.layout import Layout
from simulator.planner.plan import Group, Hop, Phase, Plan
from simulator.planner.rings import intra_cycles, intra_path, ring_orders, via_for
from simulator.planner.trees import depth, double_binary_tree

AlgorithmFn = Callable[..., Plan]
_ALGORITHMS: dict[tuple[str, str], AlgorithmFn] = {}
#: Names the planner resolves itself (by the message size and the hardware).
AUTO = "auto"


def algorithm(collective: str, *names: str):
    def deco(fn: AlgorithmFn) -> AlgorithmFn:
        for name in names:
            _ALGORITHMS[(collective, name)] = fn
        return fn
    return deco


def registered(collective: str, name: str) -> AlgorithmFn | None:
    return _ALGORITHMS.get((collective, name))


def names(collective: str | None = None) -> tuple[str, ...]:
    """Algorithm names for one collective or for all (``auto`` included)."""
    found = {a for c, a in _ALGORITHMS if collective in (None, c)}
    return tuple(sorted(found | {AUTO}))


# ------------------------------------------------------------------------------ helpers
def _single_hops(pairs, fraction: float) -> tuple[Group, ...]:
    return tuple(Group((Hop(a, b),), fraction, i) for i, (a, b) in enumerate(pairs))


def _ring(layout: Layout, collective: str, factor: float, steps: int, opts) -> Plan:
    channels = ring_orders(layout, cross_nic=opts.get("cross_nic", "auto"))
    c = len(channels)
    groups = tuple(Group(tuple(hops), factor / c, k) for k, (_, hops) in enumerate(channels))
    return Plan(collective, "ring", (Phase(groups, steps),), channels=c)


def _chain_hops(layout: Layout, order) -> tuple[Hop, ...]:
    return tuple(Hop(a, b, via_for(layout, a, b, None)) for a, b in zip(order, order[1:]))


# ------------------------------------------------------------------------------ rings
@algorithm("allreduce", "ring")
def allreduce_ring(layout: Layout, **opts) -> Plan:
    """Ring all-reduce, one ring per channel (:mod:`simulator.planner.rings`): reduce-scatter
    then all-gather, 2(n-1) pipelined steps, each rank sending 2(n-1)/n S (Patarasuk & Yuan,
    JPDC 2009)."""
    n = len(layout.members)
    return _ring(layout, "allreduce", 2 * (n - 1) / n, 2 * (n - 1), opts)


@algorithm("reducescatter", "ring")
def reducescatter_ring(layout: Layout, **opts) -> Plan:
    n = len(layout.members)
    return _ring(layout, "reducescatter", (n - 1) / n, n - 1, opts)


@algorithm("allgather", "ring")
def allgather_ring(layout: Layout, **opts) -> Plan:
    n = len(layout.members)
    return _ring(layout, "allgather", (n - 1) / n, n - 1, opts)


@algorithm("allreduce", "ring_steps")
def allreduce_ring_steps(layout: Layout, **_) -> Plan:
    """The ring in member order with every one of its 2(n-1) steps a phase of separate flows
    (for checking the pipelined form against)."""
    m = list(layout.members)
    n = len(m)
    pairs = [(m[i], m[(i + 1) % n]) for i in range(n)]
    step = Phase(_single_hops(pairs, 1 / n), 1, "whole")
    return Plan("allreduce", "ring_steps", tuple(step for _ in range(2 * (n - 1))))


@algorithm("broadcast", "ring", "chain")
def broadcast_chain(layout: Layout, **_) -> Plan:
    """Pipelined chain from the root (member 0) in member order: S/B + (n-1) alpha."""
    hops = _chain_hops(layout, layout.members)
    return Plan("broadcast", "chain", (Phase((Group(hops, 1.0),), len(hops)),))


@algorithm("reduce", "ring", "chain")
def reduce_chain(layout: Layout, **_) -> Plan:
    hops = _chain_hops(layout, list(reversed(layout.members)))
    return Plan("reduce", "chain", (Phase((Group(hops, 1.0),), len(hops)),))


# ------------------------------------------------------------------------------ trees
def _binomial(members) -> list[Phase]:
    """Binomial-tree reduce to member 0: ceil(log2 n) phases, each receiver gets one flow."""
    n = len(members)
    phases = []
    for k in range(math.ceil(math.log2(n))):
        bit = 1 << k
        pairs = [(members[i], members[i - bit]) for i in range(n) if i % (2 * bit) == bit]
        phases.append(Phase(_single_hops(pairs, 1.0), 1, "whole"))
    return phases


def _reverse(phases: list[Phase]) -> list[Phase]:
    return [Phase(tuple(Group(tuple(Hop(h.dst, h.src, h.via) for h in g.hops), g.fraction,
                              g.channel) for g in p.groups), p.steps, p.staging)
            for p in reversed(phases)]


@algorithm("allreduce", "tree")
def allreduce_tree(layout: Layout, **_) -> Plan:
    """Binomial reduce then broadcast: 2 ceil(log2 n) (alpha + S/B), Paleo's TreeAllReduce."""
    up = _binomial(layout.members)
    return Plan("allreduce", "tree", tuple(up + _reverse(up)))


@algorithm("reduce", "tree")
def reduce_tree(layout: Layout, **_) -> Plan:
    return Plan("reduce", "tree", tuple(_binomial(layout.members)))


@algorithm("broadcast", "tree")
def broadcast_tree(layout: Layout, **_) -> Plan:
    return Plan("broadcast", "tree", tuple(_reverse(_binomial(layout.members))))


def _tree_edges(parents: list[int], nodes: list) -> list[tuple]:
    return [(nodes[v], nodes[p]) for v, p in enumerate(parents) if p >= 0]


@algorithm("allreduce", "double_binary_tree")
def allreduce_dbtree(layout: Layout, **opts) -> Plan:
    """NCCL's double binary tree (:mod:`simulator.planner.trees`): half the buffer reduced up
    and broadcast down each of two trees, pipelined, so every tree edge carries S/2 each way.

    Over several servers of ``m`` members each, the trees span the servers and each server's
    members form a chain (NCCL: trees between nodes, chains inside): one pair of trees per rail,
    each server's chain starting at the member bound to that rail's NIC, which sends to the
    parent server and receives from the children through that NIC.
    """
    servers = layout.servers
    m = layout.per_server
    topo = layout.topo
    rails = None
    if len(servers) > 1 and m is not None and m > 1:
        sets = {tuple(sorted({topo.rail(n) for n in layout.by_server[s]})) for s in servers}
        if len(sets) == 1 and None not in next(iter(sets)):
            rails = list(next(iter(sets)))
    if rails is None:
        nodes = list(layout.members)
        a, b = double_binary_tree(len(nodes))
        groups = []
        for t, parents in enumerate((a, b)):
            hops = []
            for child, parent in _tree_edges(parents, nodes):
                hops += [Hop(child, parent, via_for(layout, child, parent, None)),
                         Hop(parent, child, via_for(layout, parent, child, None))]
            groups.append(Group(tuple(hops), 0.5, t))
        steps = 2 * max(depth(a), depth(b), 1)
        return Plan("allreduce", "double_binary_tree", (Phase(tuple(groups), steps),),
                    channels=1)
    a, b = double_binary_tree(len(servers))
    groups = []
    chain_len = 0
    for c, rail in enumerate(rails):
        heads, chains = [], []
        for s in servers:
            members = list(layout.by_server[s])
            head = next(n for n in members if topo.rail(n) == rail)
            chain = intra_path(layout, members, head, None, {})
            heads.append(head)
            chains.append(chain)
            chain_len = max(chain_len, len(chain) - 1)
        for t, parents in enumerate((a, b)):
            hops = []
            for k, p in enumerate(parents):
                if p < 0:
                    continue
                nics = (topo.rail_nic(servers[k], rail), topo.rail_nic(servers[p], rail))
                up, down = heads[k], heads[p]
                hops += [Hop(up, down, via_for(layout, up, down, nics)),
                         Hop(down, up, via_for(layout, down, up, nics[::-1]))]
            for chain in chains:
                for u, v in zip(chain, chain[1:]):
                    hops += [Hop(u, v), Hop(v, u)]
            groups.append(Group(tuple(hops), 0.5 / len(rails), 2 * c + t))
    steps = 2 * (max(depth(a), depth(b), 1) + chain_len)
    return Plan("allreduce", "double_binary_tree", (Phase(tuple(groups), steps),),
                channels=len(rails))


# ------------------------------------------------------------------------------ MPI-style
def _mpi_phase(pairs, fraction: float) -> Phase:
    return Phase(_single_hops(pairs, fraction), 1, "whole")


def _folded(members: list, inner: Callable[[list, int], list[Phase]]) -> list[Phase]:
    """``inner(members, p)``'s phases over the largest power of two ``p`` of members, the
    members beyond it folding their buffer into a partner first and getting the result back
    last (Thakur, Rabenseifner & Gropp, IJHPCA 2005)."""
    n = len(members)
    p = 1 << int(math.floor(math.log2(n)))
    extra = range(n - p)
    fold_in = [_mpi_phase([(members[p + i], members[i]) for i in extra], 1.0)] if extra else []
    fold_out = [_mpi_phase([(members[i], members[p + i]) for i in extra], 1.0)] if extra else []
    return fold_in + inner(members, p) + fold_out


@algorithm("allreduce", "halving_doubling", "rabenseifner")
def allreduce_halving_doubling(layout: Layout, **_) -> Plan:
    """Recursive-halving reduce-scatter then recursive-doubling all-gather (Thakur, Rabenseifner
    & Gropp, IJHPCA 2005). Members beyond the largest power of two first fold into a partner."""
    def inner(m: list, p: int) -> list[Phase]:
        half, size, k = [], 1.0, p >> 1
        while k >= 1:
            size /= 2
            half.append(_mpi_phase([(m[i], m[i ^ k]) for i in range(p)], size))
            k >>= 1
        return half + list(reversed(half))
    return Plan("allreduce", "halving_doubling", tuple(_folded(list(layout.members), inner)))


@algorithm("allreduce", "recursive_doubling", "butterfly")
def allreduce_recursive_doubling(layout: Layout, **_) -> Plan:
    """Full-buffer exchanges with partner i XOR 2^k: ceil(log2 n) steps of S each, Paleo's
    ButterflyAllReduce. Non-powers of two fold the extra members first."""
    def inner(m: list, p: int) -> list[Phase]:
        return [_mpi_phase([(m[i], m[i ^ (1 << j)]) for i in range(p)], 1.0)
                for j in range(int(math.log2(p)))]
    return Plan("allreduce", "recursive_doubling", tuple(_folded(list(layout.members), inner)))


@algorithm("allreduce", "one_to_all", "parameter_server")
def allreduce_one_to_all(layout: Layout, **_) -> Plan:
    """Paleo's OneToAll: every member sends its buffer to the root (member 0), which sends the
    result back; the root's link carries (n-1) S each way, 2 (n-1) S/B by contention alone."""
    root, *others = layout.members
    return Plan("allreduce", "one_to_all", (
        Phase(_single_hops([(o, root) for o in others], 1.0), 1, "whole"),
        Phase(_single_hops([(root, o) for o in others], 1.0), 1, "whole")))


# ------------------------------------------------------------------------------ NVLS
@algorithm("allreduce", "nvls")
def allreduce_nvls(layout: Layout, **_) -> Plan:
    """NVLink SHARP (NCCL's NVLS, NCCL 2.17+ on NVSwitch systems that support it): the switch
    reduces and multicasts. Each GPU reads its 1/n shard reduced by the switch from all n GPUs
    (``multimem.ld_reduce``), then writes it once for the switch to multicast
    (``multimem.st``): every GPU sends S + S/n and receives S/n + S, so the all-reduce takes
    S (n+1)/n / (e B) for a GPU-to-switch payload bandwidth B, e being the switch's multimem
    efficiency (``nvls_efficiency``, measured). Only inside one server whose NVSwitch has it."""
    hub = layout.hub
    eff = layout.topo.graph.nodes[hub].get("nvls_efficiency") if hub is not None else None
    if len(layout.servers) != 1 or eff is None:
        raise SpecError("NVLS needs every member on one NVSwitch that supports it "
                        "(servers.json nvls_efficiency)", field="algorithm", value="nvls")
    n = len(layout.members)
    hops = tuple(h for g in layout.members for h in (Hop(g, hub), Hop(hub, g)))
    fraction = (n + 1) / n / float(eff)
    return Plan("allreduce", "nvls", (Phase((Group(hops, fraction),), 2),))


def nvls_capable(layout: Layout) -> bool:
    hub = layout.hub
    return (len(layout.servers) == 1 and hub is not None
            and layout.topo.graph.nodes[hub].get("nvls_efficiency") is not None)


# ------------------------------------------------------------------------------ all-to-all
@algorithm("alltoall", "direct", "ring")
def alltoall_direct(layout: Layout, **_) -> Plan:
    """Every member sends S/n to every other at once, each through its own NIC across servers."""
    m = list(layout.members)
    n = len(m)
    pairs = [(a, b) for a in m for b in m if a != b]
    groups = tuple(Group((Hop(a, b, via_for(layout, a, b, None)),), 1 / n, i)
                   for i, (a, b) in enumerate(pairs))
    return Plan("alltoall", "direct", (Phase(groups, 1),))


@algorithm("alltoall", "pxn")
def alltoall_pxn(layout: Layout, **_) -> Plan:
    """PXN (NCCL 2.12+, "PCI x NVLink"; NVIDIA blog "Doubling all2all performance with NCCL
    2.12", 2022): a message for a GPU in another server first moves over NVLink to the member
    of its own server bound to the destination's rail, which sends it through that NIC, so all
    inter-server traffic stays on its rail. Without such a member it goes directly."""
    topo = layout.topo
    m = list(layout.members)
    n = len(m)
    by_rail: dict = {}
    for node in m:
        by_rail.setdefault((layout.server_of(node), topo.rail(node)), node)
    groups = []
    for i, (a, b) in enumerate((a, b) for a in m for b in m if a != b):
        rail = topo.rail(b)
        proxy = by_rail.get((layout.server_of(a), rail)) if rail is not None else None
        if (layout.server_of(a) != layout.server_of(b) and proxy is not None and proxy != a
                and topo.rail(a) != rail
                and topo.hub(a) is not None and topo.hub(a) == topo.hub(proxy)):
            tail = via_for(layout, proxy, b, None) or (topo.nic.get(proxy), topo.nic.get(b))
            via = (proxy, *[p for p in tail if p is not None])
        else:
            via = via_for(layout, a, b, None)
        groups.append(Group((Hop(a, b, via),), 1 / n, i))
    return Plan("alltoall", "pxn", (Phase(tuple(groups), 1),))
