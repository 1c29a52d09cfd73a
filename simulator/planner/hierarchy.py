"""Two-level all-reduces: a step inside each server, an all-reduce across servers, a step back.

Two schemes, each with a choice of the algorithm that crosses servers, named
``scheme:inter`` (``hierarchical:halving_doubling``); the bare scheme name keeps the ring:

- ``hierarchical`` (Horovod's ``HOROVOD_HIERARCHICAL_ALLREDUCE``; Sergeev & Del Balso 2018):
  reduce-scatter inside each server on its NVLink rings, then every member all-reduces its 1/m
  shard with the members of the same local rank in the other servers (m all-reduces across
  servers at once, each through its member's own NIC), then all-gather inside each server.
- ``three_phase`` (Goyal et al., "Accurate, large minibatch SGD", 2017, section 4): reduce inside
  each server to a local root (its first member) along a chain, all-reduce the whole buffer
  across the local roots (through each root's NIC), broadcast back along the chain. Goyal et
  al. crossed servers with recursive halving-doubling (``three_phase:halving_doubling``); they
  also implemented the ring ("bucket") algorithm, which the bare name keeps.

The inter-server algorithm is any flat all-reduce of :mod:`simulator.planner.algorithms`
(``INTER``), planned over the column of members it joins exactly as it would be alone, so its
phases, steps and host staging are the flat algorithm's own; the m columns of ``hierarchical``
run their phases at once.
"""
from __future__ import annotations

from simulator.planner.algorithms import (_single_hops, algorithm, allreduce_ring, registered)
from simulator.planner.layout import Layout
from simulator.planner.plan import Group, Hop, Phase, Plan
from simulator.planner.rings import intra_cycles, via_for

#: Algorithms that may cross servers in a two-level scheme (``scheme:inter``).
INTER = ("ring", "halving_doubling", "recursive_doubling", "tree", "double_binary_tree")
SCHEMES = ("hierarchical", "three_phase")


def _columns_phases(layout: Layout, columns: list[list], inter: str, fraction: float, opts
                    ) -> list[Phase]:
    """The phases of ``inter`` all-reducing ``fraction`` x S over every column at once: phase k
    holds every column's phase k (their groups side by side, channels renumbered)."""
    fn = registered("allreduce", inter)
    plans = [fn(Layout(layout.topo, column), **opts) for column in columns]
    merged = []
    for k in range(len(plans[0].phases)):
        groups, steps = [], 1
        for plan in plans:
            phase = plan.phases[k]
            steps = max(steps, phase.steps)
            for g in phase.groups:
                groups.append(Group(g.hops, g.fraction * fraction, len(groups)))
        merged.append(Phase(tuple(groups), steps, plans[0].phases[k].staging))
    return merged


def _hierarchical(layout: Layout, inter: str, opts) -> Plan:
    name = "hierarchical" if inter == "ring" else f"hierarchical:{inter}"
    m = layout.per_server
    servers = layout.servers
    n_srv = len(servers)
    if m is None or n_srv == 1 or m == 1:
        flat = registered("allreduce", inter if n_srv > 1 else "ring")(layout, **opts)
        return Plan("allreduce", name, flat.phases, flat.channels,
                    (f"one member per server, one server, or uneven servers: the flat "
                     f"{inter if n_srv > 1 else 'ring'}",))
    local_rings = [intra_cycles(layout, layout.by_server[s]) for s in servers]

    def intra(factor: float) -> Phase:  # every server's NVLink rings, the buffer split over them
        groups = []
        for cycles in local_rings:
            for order in cycles:
                hops = tuple(Hop(order[i], order[(i + 1) % m]) for i in range(m))
                groups.append(Group(hops, factor / len(cycles), len(groups)))
        return Phase(tuple(groups), m - 1)

    columns = [[layout.by_server[s][j] for s in servers] for j in range(m)]
    if inter == "ring":
        cross = []
        for j, column in enumerate(columns):
            hops = tuple(Hop(column[i], column[(i + 1) % n_srv],
                             via_for(layout, column[i], column[(i + 1) % n_srv], None))
                         for i in range(n_srv))
            cross.append(Group(hops, 2 * (n_srv - 1) / n_srv / m, j))
        middle = [Phase(tuple(cross), 2 * (n_srv - 1))]
    else:
        middle = _columns_phases(layout, columns, inter, 1 / m, opts)
    phases = (intra((m - 1) / m), *middle, intra((m - 1) / m))
    return Plan("allreduce", name, phases, channels=m)


def _three_phase(layout: Layout, inter: str, opts) -> Plan:
    name = "three_phase" if inter == "ring" else f"three_phase:{inter}"
    local = [list(v) for v in layout.by_server.values()]
    roots = [members[0] for members in local]
    reduce_pairs, bcast_pairs = [], []
    steps = 1
    for members in local:
        if len(members) > 1:
            chain = list(reversed(members))
            reduce_pairs += [(chain[i], chain[i + 1]) for i in range(len(chain) - 1)]
            bcast_pairs += [(members[i], members[i + 1]) for i in range(len(members) - 1)]
            steps = max(steps, len(members) - 1)
    phases = []
    if reduce_pairs:
        phases.append(Phase(_single_hops(reduce_pairs, 1.0), steps, "whole"))
    if len(roots) > 1:
        r = len(roots)
        if inter == "ring":  # MPI-style ring steps: whole messages through host memory
            pairs = [(roots[i], roots[(i + 1) % r]) for i in range(r)]
            phases.append(Phase(_single_hops(pairs, 2 * (r - 1) / r), 2 * (r - 1), "whole"))
        else:
            phases += _columns_phases(layout, [roots], inter, 1.0, opts)
    if bcast_pairs:
        phases.append(Phase(_single_hops(bcast_pairs, 1.0), steps, "whole"))
    return Plan("allreduce", name, tuple(phases))


def _register(scheme: str, build) -> None:
    for inter in INTER:
        names = (scheme,) if inter == "ring" else ()
        names += (f"{scheme}:{inter}",)
        algorithm("allreduce", *names)(
            lambda layout, _inter=inter, **opts: build(layout, _inter, opts))


_register("hierarchical", _hierarchical)
_register("three_phase", _three_phase)
