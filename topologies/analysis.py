"""Summaries of a topology: counts, endpoint diameter and bisection bandwidth."""
from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np

from topologies.paths import LinkArrays, distances, inf_of
from topologies.schema import cpus, gpus


def diameter_hops(graph: nx.Graph, arrays: LinkArrays | None = None) -> int:
    """Largest hop count of a fewest-hop route between two GPUs (GPUs relay only where the graph
    says ``gpus_forward``); the plain graph diameter when there are fewer than two GPUs."""
    ends = gpus(graph)
    if len(ends) < 2:
        return nx.diameter(graph) if graph.number_of_nodes() > 1 else 0
    arrays = arrays or LinkArrays.from_graph(graph)
    idx = np.array([arrays.index[n] for n in ends])
    hops = distances(arrays, idx, hops=True)[idx]
    if (hops >= inf_of(hops)).any():  # validate() rules this out for schema-valid graphs with PCIe trees
        raise ValueError("some GPUs cannot reach each other without relaying through a GPU")
    return int(hops.max())


def bisection_Bps(graph: nx.Graph) -> float:
    """Bandwidth (bytes/s, one direction) between the two halves of the GPUs in rank order.

    The maximum flow from the first ``n // 2`` GPUs (rank order, see :func:`topologies.gpus`) to
    the next ``n // 2``, with every directed link's bandwidth as its capacity and non-forwarding
    GPUs only sending or receiving. For the symmetric fabrics built here (fat-tree, torus, ring,
    leaf-spine) the rank-order split is a minimum bisection, so this is the bisection bandwidth;
    for other graphs it is an upper bound on it. ``nan`` with fewer than two GPUs.
    """
    ends = gpus(graph)
    half = len(ends) // 2
    if half == 0:
        return float("nan")
    senders, receivers = set(ends[:half]), set(ends[half:2 * half])
    forward = bool(graph.graph.get("gpus_forward", False))
    flow = nx.DiGraph()
    for u, v, bw in graph.edges(data="bandwidth_Bps"):
        for a, b in ((u, v), (v, u)):
            if not forward and ((a in ends and a not in senders)
                                or (b in ends and b not in receivers)):
                continue
            flow.add_edge(a, b, capacity=bw)
    source, sink = ("_bisection", "source"), ("_bisection", "sink")
    for n in senders:
        flow.add_edge(source, n)  # no capacity attribute: unbounded
    for n in receivers:
        flow.add_edge(n, sink)
    return float(nx.maximum_flow_value(flow, source, sink))


def describe(graph: nx.Graph) -> dict:
    """Counts, diameter and bisection bandwidth of ``graph``, as an ordered mapping."""
    roles = Counter(r for _, r in graph.nodes(data="role"))
    kinds = Counter(k for _, _, k in graph.edges(data="kind"))
    info = {
        "name": graph.graph.get("name", ""),
        "nodes": graph.number_of_nodes(),
        "links": graph.number_of_edges(),
        "directed_links": 2 * graph.number_of_edges(),
        "servers": len({graph.nodes[n].get("server") for n in gpus(graph)}),
        "gpus": roles.get("gpu", 0),
        "cpus": len(cpus(graph)),
        "routing": graph.graph.get("routing", "ecmp"),
    }
    info.update({f"role.{r}": c for r, c in sorted(roles.items())})
    info.update({f"links.{k}": c for k, c in sorted(kinds.items())})
    info["diameter_hops"] = diameter_hops(graph)
    info["bisection_Bps"] = bisection_Bps(graph)
    return info
