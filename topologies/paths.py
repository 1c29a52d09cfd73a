"""Shortest routes on a topology, vectorised over many destinations with numpy.

Two rules make routes physical:

- **Who forwards.** GPU nodes never relay other endpoints' traffic (a GPU's NVLink or PCIe port is
  not a router), unless the graph sets ``gpus_forward`` (a torus or ring of chips). Every other
  role forwards: NICs, switches, routers and CPUs (a CPU is the PCIe root complex).
- **Route cost.** Each directed link costs ``latency_s + ROUTE_REF_BYTES / bandwidth_Bps``: the
  time a 1 MiB message would take on that link alone. A route minimises the sum over its hops, so
  a GPU pair prefers NVLink or NVSwitch to PCIe. Costs are rounded to whole nanoseconds (at least
  1) so that equal-cost paths compare exactly (equal-cost multipath needs exact ties). A link
  between two nodes of one server costs 1 ns more: among otherwise equal routes, the one with
  fewer hops inside servers wins, so traffic between two NICs never ties with a detour through
  a server's PCIe tree and another of its NICs (NICs do not relay between themselves).

:func:`distances` computes, for many destinations at once, the cost from every node: a
Bellman-Ford relaxation whose every round is a few numpy operations over all (link, destination)
pairs, so the number of rounds is the largest hop count of a shortest route. Cost: O(rounds x
links x destinations) element operations, about 1 s for the 1,024 GPUs of a k=16 fat-tree.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

#: Message size that turns a link's bandwidth into a route cost (bytes).
ROUTE_REF_BYTES = 2 ** 20
#: Cost of an unreachable node (int64 costs, and int32 costs).
INF = np.iinfo(np.int64).max // 4
INF32 = 2 ** 30
_BLOCK_BYTES = 64 * 2 ** 20  # memory for one block of (node, destination) costs


@dataclass(frozen=True, eq=False)
class LinkArrays:
    """The graph as arrays: node ``i`` is ``nodes[i]``; undirected edge ``e`` (in ``graph.edges``
    order) becomes directed links ``2e`` (u to v) and ``2e + 1`` (v to u)."""

    nodes: list
    index: dict
    link_src: np.ndarray
    link_dst: np.ndarray
    bandwidth_Bps: np.ndarray
    latency_s: np.ndarray
    cost_ns: np.ndarray
    forwards: np.ndarray
    # links sorted by source node, for per-node reductions
    order: np.ndarray
    starts: np.ndarray
    #: per node, its host-port number (node attribute ``port``), else its node number: the key
    #: of destination-based routing
    port: np.ndarray | None = None

    @classmethod
    def from_graph(cls, graph: nx.Graph) -> "LinkArrays":
        nodes = list(graph.nodes)
        index = {n: i for i, n in enumerate(nodes)}
        edges = list(graph.edges(data=True))
        m = len(edges)
        src = np.empty(2 * m, dtype=np.int64)
        dst = np.empty(2 * m, dtype=np.int64)
        bw = np.empty(2 * m)
        lat = np.empty(2 * m)
        for e, (u, v, data) in enumerate(edges):
            src[2 * e], dst[2 * e] = index[u], index[v]
            src[2 * e + 1], dst[2 * e + 1] = index[v], index[u]
            bw[2 * e] = bw[2 * e + 1] = data["bandwidth_Bps"]
            lat[2 * e] = lat[2 * e + 1] = data["latency_s"]
        cost = np.maximum(np.rint((lat + ROUTE_REF_BYTES / bw) * 1e9), 1).astype(np.int64)
        server = [graph.nodes[n].get("server") for n in nodes]
        inside = np.array([server[s] is not None and server[s] == server[d]
                           for s, d in zip(src.tolist(), dst.tolist())], dtype=bool)
        cost = cost + inside
        gpus_forward = bool(graph.graph.get("gpus_forward", False))
        forwards = np.array([gpus_forward or graph.nodes[n].get("role") != "gpu" for n in nodes],
                            dtype=bool)
        order = np.argsort(src, kind="stable")
        starts = np.searchsorted(src[order], np.arange(len(nodes)))
        port = np.array([graph.nodes[n].get("port", i) for i, n in enumerate(nodes)],
                        dtype=np.int64)
        return cls(nodes, index, src, dst, bw, lat, cost, forwards, order, starts, port)

    def relaxation_groups(self, which: np.ndarray, weight: np.ndarray) -> list:
        """The links leaving the nodes selected by boolean ``which``, grouped by out-degree.

        Each group is ``(nodes, via, w)``: ``nodes`` has degree ``d``, and ``via[j]``/``w[j]`` (for
        ``j < d``) are the far ends and weights of each node's ``j``-th link, so a relaxation is
        ``d`` vectorised gathers per group (several times faster than ``minimum.reduceat``).
        """
        degree = np.diff(np.append(self.starts, len(self.link_src)))
        groups = []
        for d in np.unique(degree[which]).tolist():
            nodes = np.nonzero(which & (degree == d))[0]
            first = self.starts[nodes]
            links = [self.order[first + j] for j in range(d)]
            groups.append((nodes, [self.link_dst[l] for l in links],
                           [weight[l][:, None] for l in links]))
        return groups


def _relax(relay: np.ndarray, group) -> np.ndarray:
    """Best cost through one link, for each node of ``group``: min_j relay[via_j] + w_j."""
    _, via, w = group
    best = relay[via[0]] + w[0]
    for v, wj in zip(via[1:], w[1:]):
        np.minimum(best, relay[v] + wj, out=best)
    return best


def inf_of(costs: np.ndarray) -> int:
    """The "unreachable" value of a cost array from :func:`relay_and_distances`."""
    return INF32 if costs.dtype == np.int32 else INF


def _cost_dtype(arrays: LinkArrays, hops: bool):
    """int32 when no route can overflow it (halves the memory traffic), else int64."""
    total = len(arrays.link_src) if hops else int(arrays.cost_ns.sum())
    return (np.int32, INF32) if total < INF32 else (np.int64, INF)


def relay_and_distances(arrays: LinkArrays, targets: np.ndarray, *, hops: bool = False):
    """``(relay, dist)``, both of shape (nodes, targets): ``dist[u, k]`` is the least route cost
    (ns; hop count with ``hops=True``) from node ``u`` to ``targets[k]``; ``relay`` is the same for
    forwarding nodes and the target itself, and "unreachable" for non-forwarding nodes, which may
    start or end a route but not relay one. Unreachable entries are the dtype's INF
    (:data:`INF32` or :data:`INF`).

    Bellman-Ford, vectorised over targets: each round relaxes every link leaving a forwarding node
    for every target at once; rounds stop when nothing improves (largest hop count + 1 rounds).
    """
    targets = np.asarray(targets, dtype=np.int64)
    n, k = len(arrays.nodes), len(targets)
    dtype, inf = _cost_dtype(arrays, hops)
    relay = np.full((n, k), inf, dtype=dtype)
    relay[targets, np.arange(k)] = 0
    dist = relay.copy()
    if k == 0 or len(arrays.link_src) == 0:
        return relay, dist
    weight = (np.ones_like(arrays.cost_ns) if hops else arrays.cost_ns).astype(dtype)
    forwarding = arrays.relaxation_groups(arrays.forwards, weight)
    ends = arrays.relaxation_groups(~arrays.forwards, weight)
    block = max(1, _BLOCK_BYTES // (np.dtype(dtype).itemsize * n))
    for lo in range(0, k, block):
        r = relay[:, lo:lo + block]  # views: updated in place
        d = dist[:, lo:lo + block]
        improved = True
        while improved:  # Gauss-Seidel order: a round reuses values improved earlier in it
            improved = False
            for group in forwarding:
                best = _relax(r, group)
                current = r[group[0]]
                if (best < current).any():
                    improved = True
                    r[group[0]] = np.minimum(current, best)
        for group in forwarding:
            d[group[0]] = r[group[0]]
        for group in ends:
            d[group[0]] = np.minimum(d[group[0]], _relax(r, group))
    return relay, dist


def distances(arrays: LinkArrays, targets: np.ndarray, *, hops: bool = False) -> np.ndarray:
    """Least route cost (ns, or hops) from every node to each target, shape (nodes, targets)."""
    return relay_and_distances(arrays, targets, hops=hops)[1]
