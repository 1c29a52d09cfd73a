"""Host-staged transfers: GPUs whose NIC cannot read their memory.

Without GPUDirect RDMA (Cray Gemini, attached to the host's HyperTransport rather than the GPU's
PCIe tree; TCP networking, as on AWS p2 instances or under gRPC and ZeroMQ), a message from a GPU
to another server is copied to host memory, sent from there, and copied from the receiving host
into GPU memory. A GPU node marked ``gpudirect_rdma=False`` in the topology (servers.json field
of the same name) gets this treatment for every transfer that leaves its server: the transfer
becomes a chain of whole-message store-and-forward hops, GPU -> its host CPU -> (the peer's host
CPU ->) peer, each a flow on the network like any other. Transfers inside a server are untouched
(GPU peer-to-peer copies do not involve the NIC).
"""
from __future__ import annotations

from typing import Hashable

import networkx as nx


def staging_hosts(graph: nx.Graph) -> dict[Hashable, Hashable]:
    """``{gpu node: its server's CPU node}`` for every GPU marked ``gpudirect_rdma=False``."""
    cpus = {data.get("server"): node for node, data in graph.nodes(data=True)
            if data.get("role") == "cpu"}
    staged = {}
    for node, data in graph.nodes(data=True):
        if data.get("role") == "gpu" and data.get("gpudirect_rdma", True) is False:
            host = cpus.get(data.get("server"))
            if host is not None:
                staged[node] = host
    return staged


def staged_hops(graph: nx.Graph, staging: dict, src: Hashable, dst: Hashable) -> list | None:
    """The ``(from, to)`` hops of a staged transfer, or ``None`` when it goes directly."""
    a, b = staging.get(src), staging.get(dst)
    if (a is None and b is None) or src == dst:
        return None
    if graph.nodes[src].get("server") == graph.nodes[dst].get("server"):
        return None
    nodes = [src, *(host for host in (a, b) if host is not None), dst]
    return list(zip(nodes, nodes[1:]))
