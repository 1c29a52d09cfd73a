"""Where a collective's members sit: servers, NICs and rails, NVLink, PCIe switches, host staging.

:class:`Topology` indexes a topology graph once for the planner; :class:`Layout` is one group of
member nodes seen through it. The planner never routes: it decides which GPU enters and leaves
each server, through which NIC, and in which order the GPUs of a server are visited; the network
routes each hop (see :mod:`simulator.network.routing`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Hashable, Sequence

import networkx as nx

#: Capacity given to a GPU pair without a GPU-to-GPU link when ordering GPUs (bytes/s): any
#: NVLink beats it, so a ring takes PCIe or the CPU only where NVLink cannot close it.
NO_LINK_Bps = 1.0


class Topology:
    """A topology graph indexed for collective planning (computed once per graph)."""

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph
        nodes = graph.nodes
        self.server = {n: d.get("server") for n, d in nodes(data=True)}
        self.role = {n: d.get("role") for n, d in nodes(data=True)}
        self.nic = {n: d["nic"] for n, d in nodes(data=True) if d.get("nic") is not None}
        self._pcie = {}
        self._hub = {}
        for n, role in self.role.items():
            if role in ("gpu", "nic"):
                for m in graph[n]:
                    if self.role.get(m) == "pcie_switch":
                        self._pcie[n] = m
                    elif self.role.get(m) == "nvswitch" and role == "gpu":
                        self._hub[n] = m
        self._cpu = {d.get("server"): n for n, d in nodes(data=True) if d.get("role") == "cpu"}
        self.nics_by_server: dict = {}
        for n, role in self.role.items():
            if role == "nic":
                self.nics_by_server.setdefault(self.server[n], {})[nodes[n].get("index")] = n

    def rail(self, node: Hashable) -> int | None:
        """The local number of the NIC ``node`` is bound to (its rail), or ``None``."""
        nic = self.nic.get(node)
        return None if nic is None else self.graph.nodes[nic].get("index")

    def rail_nic(self, server, rail: int) -> Hashable | None:
        """NIC number ``rail`` of ``server``."""
        return self.nics_by_server.get(server, {}).get(rail)

    def near(self, node: Hashable, nic: Hashable) -> bool:
        """Whether ``node`` reaches ``nic`` without crossing the CPU: it is bound to it, or the
        two sit under one PCIe switch (NCCL's PIX distance)."""
        if self.nic.get(node) == nic:
            return True
        sw = self._pcie.get(node)
        return sw is not None and sw == self._pcie.get(nic)

    def hub(self, node: Hashable) -> Hashable | None:
        """The NVSwitch a GPU is attached to, or ``None``."""
        return self._hub.get(node)

    def staging_host(self, node: Hashable) -> Hashable | None:
        """The host CPU a GPU without GPUDirect RDMA stages its network traffic through."""
        data = self.graph.nodes[node]
        if data.get("role") == "gpu" and data.get("gpudirect_rdma", True) is False:
            return self._cpu.get(data.get("server"))
        return None

    def link_Bps(self, u: Hashable, v: Hashable) -> float:
        """GPU-to-GPU bandwidth one way (bytes/s): a direct link (NVLink), or the narrower of
        the two GPUs' links into a shared NVSwitch; :data:`NO_LINK_Bps` otherwise."""
        g = self.graph
        if g.has_edge(u, v):
            return float(g.edges[u, v]["bandwidth_Bps"])
        hu, hv = self._hub.get(u), self._hub.get(v)
        if hu is not None and hu == hv:
            return min(float(g.edges[u, hu]["bandwidth_Bps"]),
                       float(g.edges[v, hv]["bandwidth_Bps"]))
        return NO_LINK_Bps


@dataclass(frozen=True, eq=False)
class Layout:
    """The members of one collective (nodes, in group order) on a :class:`Topology`."""

    topo: Topology
    members: tuple

    @cached_property
    def servers(self) -> tuple:
        """Server ids in the order their first member appears (``None`` for a node that
        belongs to no server: each such node counts as its own server)."""
        seen: dict = {}
        for i, node in enumerate(self.members):
            seen.setdefault(self._server(i), None)
        return tuple(seen)

    def _server(self, i: int):
        s = self.topo.server.get(self.members[i])
        return ("node", i) if s is None else s

    @cached_property
    def by_server(self) -> dict:
        """Server id -> the member nodes it holds, in group order."""
        out: dict = {}
        for i, node in enumerate(self.members):
            out.setdefault(self._server(i), []).append(node)
        return {s: tuple(v) for s, v in out.items()}

    @cached_property
    def per_server(self) -> int | None:
        """Members per server when every server holds the same number, else ``None``."""
        sizes = {len(v) for v in self.by_server.values()}
        return sizes.pop() if len(sizes) == 1 else None

    @cached_property
    def hub(self) -> Hashable | None:
        """The NVSwitch every member is attached to, when there is one for all of them."""
        hubs = {self.topo.hub(n) for n in self.members}
        return hubs.pop() if len(hubs) == 1 and None not in hubs else None

    def server_of(self, node) -> Hashable:
        s = self.topo.server.get(node)
        return ("node", self.members.index(node)) if s is None else s


def distinct(items: Sequence) -> list:
    """``items`` without repeats, first occurrences kept in order."""
    return list(dict.fromkeys(items))
