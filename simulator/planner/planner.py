"""The collective planner: one per run, it turns (collective, algorithm, member nodes) into a
:class:`~simulator.planner.plan.Plan` and remembers it.

``algorithm="auto"`` picks what NCCL would run, from an estimate of each candidate's time
``alpha + beta x S`` (:func:`estimate`: each hop routed once over the real topology; ``beta``
is the busiest link's load per byte, ``alpha`` the pipeline steps times the slowest hop's
latency), in the spirit of NCCL's own tuning model:

- all-reduce inside one server whose NVSwitch has NVLink SHARP: the faster of ring and NVLS
  (with the measured NVLS efficiency this gives the ring up to 4 GPUs and NVLS above, as
  measured on 8 x H100: NVIDIA/nccl issue 1455);
- all-reduce across servers: the ring when it is bandwidth-bound (its bandwidth term at least
  its latency term), else the faster of ring and double binary tree. Trees pay off for small
  messages at scale (Jeaugey, "Massively scale your deep learning training with NCCL 2.4", NVIDIA
  blog 2019). At two servers the tree would also be faster for large messages here, but NCCL's
  default was measured to run rings there (NVIDIA/nccl issue 812, nccl-tests issue 100, NCCL
  issue 1048: ring-level bus bandwidth by default, the tree higher only when forced), so large
  messages stay on rings;
- reduce-scatter and all-gather: ring; broadcast and reduce: chain; all-to-all: PXN across
  servers whose members have rails, direct otherwise.

This is an estimate-driven choice, not a copy of NCCL's tuning tables; where it is unsure it
follows what was measured, and ``notes`` on the plan say what it chose and why.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from functools import lru_cache
from typing import Hashable, Sequence

import numpy as np

from simulator.errors import SpecError, UnknownNameError
from simulator.planner import algorithms as algos
from simulator.planner.layout import Layout, Topology
from simulator.planner.plan import Plan


class CollectivePlanner:
    """Plans collectives over one topology; ``network`` (a
    :class:`~simulator.network.Network` on the same graph) is needed for ``auto``."""

    def __init__(self, graph, *, network=None, cross_nic: str = "auto") -> None:
        self.topo = Topology(graph)
        self.network = network
        self.cross_nic = cross_nic
        self._plans: dict[tuple, Plan] = {}
        self._estimates: dict[tuple, tuple[float, float]] = {}

    def plan(self, collective: str, algorithm: str, members: Sequence[Hashable],
             nbytes: float = 0.0) -> Plan:
        """The plan of ``collective`` by ``algorithm`` over ``members`` (nodes; member 0 is the
        root of a rooted collective); ``nbytes`` matters only for ``auto``."""
        members = tuple(members)
        if len(set(members)) != len(members):
            raise SpecError("a collective's members must sit on distinct nodes (two ranks of "
                            "one group on one GPU)", field="collective.group",
                            value=[m for m in members if members.count(m) > 1][0])
        if algorithm == algos.AUTO:
            algorithm = self._choose(collective, members, nbytes)
            base = self._fixed(collective, algorithm, members)
            return replace(base, notes=base.notes + (f"auto: {algorithm}",))
        return self._fixed(collective, algorithm, members)

    def _fixed(self, collective: str, algorithm: str, members: tuple) -> Plan:
        key = (collective, algorithm, members)
        hit = self._plans.get(key)
        if hit is None:
            fn = algos.registered(collective, algorithm)
            if fn is None:
                raise UnknownNameError(f"{collective} algorithm", algorithm,
                                       algos.names(collective), field="algorithm")
            if len(members) < 2:
                hit = Plan(collective, algorithm, ())
            else:
                hit = fn(Layout(self.topo, members), cross_nic=self.cross_nic)
            self._plans[key] = hit
        return hit

    # -- auto ---------------------------------------------------------------------------
    def _choose(self, collective: str, members: tuple, nbytes: float) -> str:
        layout = Layout(self.topo, members)
        if collective == "allreduce":
            if len(members) < 2:
                return "ring"
            if algos.nvls_capable(layout):
                return min(("ring", "nvls"), key=lambda a: self.time_s(collective, a, members,
                                                                       nbytes))
            if len(layout.servers) == 1:
                return "ring"
            alpha, beta = self.coefficients(collective, "ring", members)
            if beta * nbytes >= alpha:
                return "ring"
            return min(("ring", "double_binary_tree"),
                       key=lambda a: self.time_s(collective, a, members, nbytes))
        if collective in ("reducescatter", "allgather"):
            return "ring"
        if collective in ("broadcast", "reduce"):
            return "chain"
        if collective == "alltoall":
            rails = len(layout.servers) > 1 and all(self.topo.rail(n) is not None
                                                    for n in members)
            return "pxn" if rails else "direct"
        raise SpecError("no automatic algorithm for this collective", field="collective",
                        value=collective)

    def time_s(self, collective: str, algorithm: str, members: tuple, nbytes: float) -> float:
        alpha, beta = self.coefficients(collective, algorithm, members)
        return alpha + beta * nbytes

    def coefficients(self, collective: str, algorithm: str, members: tuple
                     ) -> tuple[float, float]:
        """``(alpha_s, beta_s_per_byte)`` of a plan alone on the network (see :func:`estimate`)."""
        key = (collective, algorithm, members)
        hit = self._estimates.get(key)
        if hit is None:
            if self.network is None:
                raise SpecError("the 'auto' algorithm needs the planner's network",
                                field="algorithm", value="auto")
            hit = self._estimates[key] = estimate(self._fixed(collective, algorithm, members),
                                                  self.network, members)
        return hit


@lru_cache(maxsize=4096)
def group_digest(members: tuple) -> str:
    """A stable short name of a group of nodes (the communicator a connection belongs to)."""
    return hashlib.blake2b(repr(members).encode(), digest_size=8).hexdigest()


def connection_key(members: tuple, algorithm: str, phase: int, channel: int) -> tuple:
    """What names a collective's connection for ECMP: its group, algorithm, phase and channel
    (never the iteration or microbatch: a connection keeps its path)."""
    return (group_digest(members), algorithm, phase, channel)


def estimate(plan: Plan, network, members: tuple = ()) -> tuple[float, float]:
    """``(alpha_s, beta_s_per_byte)`` of a plan running alone: per phase, ``beta`` is the
    busiest directed link's load (each hop adds its fraction on every link it crosses, once per
    crossing) over that link's bandwidth, and ``alpha`` is ``steps`` times the slowest hop's
    latency; phases add up. Routes are the network's own (same policy, same connection keys
    as the engine uses)."""
    bandwidth = network.links.bandwidth_Bps
    latency = network.links.latency_s
    alpha = beta = 0.0
    for k, phase in enumerate(plan.phases):
        hops = [(h.src, h.dst, h.via, connection_key(members, plan.algorithm, k, g.channel))
                for g in phase.groups for h in g.hops]
        fractions = [g.fraction for g in phase.groups for _ in g.hops]
        load = np.zeros(len(bandwidth))
        slowest = 0.0
        for links, fraction in zip(network.route_links_many(hops), fractions):
            np.add.at(load, links, fraction)
            slowest = max(slowest, float(latency[links].sum()))
        beta += float((load / bandwidth).max()) if load.size else 0.0
        alpha += phase.steps * slowest
    return alpha, beta
