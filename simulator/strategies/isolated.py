"""Timing tensor-parallel collectives alone on the network, for ``tp_comm: isolated``.

A large tensor-parallel run repeats the same few collectives (an all-reduce of one activation
over one group) hundreds of thousands of times. With ``tp_comm: isolated`` each distinct
``(collective, bytes, group)`` is run once, on its own, through the very engine and network that
run the full task graph (one small task graph whose collectives follow each other, so none shares
a link with another), and every occurrence then becomes a ``delay`` of that duration on each
member's compute stream. That is exact when nothing else crosses the group's links while it
communicates, which holds for a tensor-parallel group inside an NVSwitch or NVLink server: flows
between servers leave through the NICs and never cross the GPU-to-NVSwitch links. What it gives
up is the collective's barrier (members start when they each get there; in a tensor-parallel
group they run the same program and arrive together) and contention with other traffic on the
group's links, which a test checks is absent on the presets this is meant for.
"""
from __future__ import annotations

import simpy

from simulator.cluster import Cluster
from simulator.engine import Engine
from simulator.planner import CollectivePlanner
from simulator.strategies.programs import Collective, CommBlock
from simulator.taskgraph import TaskGraph


def tp_collective_keys(s, programs, gather) -> set[tuple[str, float, tuple[int, ...]]]:
    """Every distinct ``(collective, bytes, group)`` the tensor-parallel groups will run."""
    keys: set = set()
    p = s.pp
    for k in range(p):
        first = s.rank(k, 0, 0)
        comms = set()
        for prog in programs[first]:
            for step in (*prog.forward, *prog.backward):
                if type(step) is Collective:
                    comms.add((step.collective, step.nbytes))
                elif type(step) is CommBlock:
                    comms.update(step.collectives)
        chunks = {c * p + k for c in range(s.chunks)}
        for j, nbytes in enumerate(gather):
            # boundary j -> j+1: forward arrives at stage j+1, backward at stage j
            if nbytes and (j + 1 in chunks or j in chunks):
                comms.add(("allgather", nbytes))
        for d in range(s.dp):
            group = tuple(s.rank(k, d, t) for t in range(s.tp))
            keys.update((c, b, group) for c, b in comms)
    return keys


def price_collectives(cluster: Cluster, nodes, keys, algorithm: str, *, seed: int = 0
                      ) -> dict[tuple[str, float, tuple[int, ...]], float]:
    """Seconds each ``(collective, bytes, group of ranks)`` takes alone on ``cluster``'s network
    (ranks mapped to ``nodes``). Each is run from time zero on an idle copy of one network
    (:meth:`~simulator.network.Network.spawn`: the routes are shared), so that two groups in
    symmetric places get bit-identical prices, which :mod:`simulator.replicas` relies on."""
    ordered = sorted(keys)
    if not ordered:
        return {}
    base = cluster.network_factory(seed)(simpy.Environment())
    planner = CollectivePlanner(base.graph, network=base, cross_nic=cluster.spec.cross_nic)
    prices = {}
    for collective, nbytes, group in ordered:
        tg = TaskGraph(ranks=len(nodes))
        tg.collective(collective, group, nbytes, algorithm=algorithm, stream="comm")
        env = simpy.Environment()
        network = base.spawn(env)
        planner.network = network
        run = Engine(env, network, tg, rank_nodes=nodes, planner=planner).run()
        first = run.rows[0]
        prices[(collective, nbytes, group)] = first[9] - first[8]
    return prices


def price_tp_collectives(cluster: Cluster, nodes, s, programs, gather) -> dict:
    """Prices of every tensor-parallel collective of a compiled ``parallel3d`` plan."""
    return price_collectives(cluster, nodes, tp_collective_keys(s, programs, gather),
                             s.tp_algorithm)
