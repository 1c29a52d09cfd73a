"""A resolved system: the topology graph, the nodes ranks run on, and each node's device.

Ranks are mapped onto GPUs in the topology's rank order (server-major), so rank r of a data-parallel
job sits on the r-th GPU; dedicated parameter-server shards take the topology's CPU hosts (CPUs
without GPUs, ``cpu_hosts=`` in the builders) in order.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Hashable

import networkx as nx

import topologies
from simulator.catalog import Device, get_device
from simulator.errors import SpecError
from simulator.specs import SystemSpec


@dataclass(frozen=True)
class Cluster:
    """A topology with the device of every compute node resolved."""

    graph: nx.Graph
    spec: SystemSpec
    topology: str

    @cached_property
    def gpu_nodes(self) -> list[Hashable]:
        return list(topologies.gpus(self.graph))

    @cached_property
    def cpu_nodes(self) -> list[Hashable]:
        return list(topologies.cpu_hosts(self.graph))

    def device_of(self, node: Hashable) -> Device:
        attrs = self.graph.nodes[node]
        if attrs.get("role") == "gpu" and self.spec.device:
            return get_device(self.spec.device)
        name = attrs.get("device")
        if not name:
            raise SpecError("node has no device attribute", source=self.topology,
                            field=f"nodes.{node}", value=attrs)
        return get_device(name)

    def at_fidelity(self, fidelity: str) -> "Cluster":
        """This cluster with ``system.fidelity`` set to ``fidelity`` (same graph)."""
        from dataclasses import replace
        return replace(self, spec=replace(self.spec, fidelity=fidelity))

    def network_factory(self, seed: int = 0, *, record_utilisation: bool = True):
        """A function of a simpy environment making this cluster's network (with the system
        spec's routing override)."""
        from simulator.network import Network
        return lambda env: Network(env, self.graph, seed=seed, routing=self.spec.routing,
                                   record_utilisation=record_utilisation)

    def server_of(self, node: Hashable) -> Any:
        attrs = self.graph.nodes[node]
        return attrs.get("server", node)

    @cached_property
    def _host_cpus(self) -> dict[Any, Hashable]:
        out: dict[Any, Hashable] = {}
        for node, attrs in self.graph.nodes(data=True):
            if attrs.get("role") == "cpu":
                out.setdefault(attrs.get("server", node), node)
        return out

    def host_cpu(self, node: Hashable) -> Hashable:
        """The CPU of the server ``node`` sits in (its host)."""
        server = self.server_of(node)
        cpu = self._host_cpus.get(server)
        if cpu is None:
            raise SpecError("the server has no CPU node to host a parameter-server task",
                            source=self.topology, field=f"nodes.{node}", value=server)
        return cpu

    @cached_property
    def gpus_per_server(self) -> int:
        """GPUs in the server of the topology's first GPU (a one-server scaling baseline)."""
        first = self.server_of(self.gpu_nodes[0])
        return sum(1 for g in self.gpu_nodes if self.server_of(g) == first)

    def gpus_for(self, count: int) -> list[Hashable]:
        nodes = self.gpu_nodes
        if count > len(nodes):
            raise SpecError(f"the topology has {len(nodes)} GPUs, {count} asked for",
                            source=self.topology, field="strategy.workers", value=count)
        return nodes[:count]

    def cpus_for(self, count: int) -> list[Hashable]:
        nodes = self.cpu_nodes
        if count > len(nodes):
            raise SpecError(f"the topology has {len(nodes)} CPU hosts for parameter servers, "
                            f"{count} asked for", source=self.topology, field="strategy.shards",
                            value=count)
        return nodes[:count]


def resolve_cluster(system: SystemSpec, workers: int) -> Cluster:
    """Build the system's topology for ``workers`` workers and validate it."""
    topology = system.topology_for(workers)
    graph = topologies.get(topology)
    if system.device:
        get_device(system.device)  # fail early on an unknown override
    return Cluster(graph=graph, spec=system, topology=topology)
