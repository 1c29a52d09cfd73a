"""The topology graph schema: node roles, edge attributes, and the checks every graph must pass.

A topology is an undirected :class:`networkx.Graph`. Nodes carry ``role`` (one of :data:`ROLES`);
GPU and CPU nodes also carry ``device``, a device-catalog name such as ``"A100-80GB"``. Nodes that
belong to a server carry ``server`` (an ``int``) and ``index`` (their local number in the server).
Every edge is one full-duplex link with ``bandwidth_Bps`` (bytes/s, per direction), ``latency_s``
(seconds, one way) and ``kind`` (one of :data:`KINDS`, informative). Bundles of parallel links
(e.g. two NVLinks between the same GPUs) are one edge with the summed bandwidth.

Graph attributes: ``name`` (str), and from the builders ``servers`` (GPU servers), ``gpus_per_server``,
``gpus`` (total), ``cpu_hosts``, ``builder`` (the call that built it), ``gpus_forward`` (bool:
whether GPU nodes may relay other endpoints' traffic, true only for direct-connect fabrics such as a
torus of chips; PCIe and NVLink GPUs never forward) and ``routing`` (one of :data:`ROUTINGS`: how
the fabric spreads flows over equal-cost paths; absent means ``ecmp``).

Optional node attributes: ``nic`` on a GPU (or CPU): the label of the NIC its traffic to other
servers leaves and arrives through; ``port`` on a fabric port (NIC, or a GPU of a NIC-less chip):
its host-port number in the fabric, which destination-based routing uses.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Hashable

import networkx as nx

from simulator.errors import SpecError

#: Node roles. Endpoints of transfers are usually ``gpu`` and ``cpu`` nodes.
ROLES = ("cpu", "gpu", "nic", "nvswitch", "pcie_switch", "router", "switch")
#: Link kinds (informative: the network model uses only bandwidth and latency).
KINDS = ("ethernet", "ici", "infiniband", "link", "nvlink", "pcie", "torus")
#: Routing policies of a fabric (graph attribute ``routing``; see simulator/network/routing.py).
ROUTINGS = ("dmodk", "ecmp", "shortest")
#: The routing a fabric of each link kind uses unless its builder is told otherwise: InfiniBand
#: subnet managers install deterministic destination-based routes (OpenSM's ftree / D-mod-K
#: engines), Ethernet and RoCE switches hash each connection onto one of the equal-cost paths.
DEFAULT_ROUTING = {"infiniband": "dmodk", "ethernet": "ecmp"}


def default_routing(kind: str) -> str:
    """The routing policy of a fabric built from links of ``kind`` (``shortest`` for others:
    torus and direct-connect fabrics route dimension by dimension, one fixed path per pair)."""
    return DEFAULT_ROUTING.get(kind, "shortest")


def add_link(graph: nx.Graph, u: Hashable, v: Hashable, *, bandwidth_Bps: float, latency_s: float,
             kind: str) -> None:
    """Add the full-duplex link ``u``-``v``; a second link between the same nodes adds its bandwidth.

    Parallel links are merged because the network model treats each edge as one directed link per
    direction: two NVLinks between a GPU pair behave as one link of twice the bandwidth.
    """
    if u == v:
        raise ValueError(f"a link needs two different nodes (got {u!r} twice)")
    if not (bandwidth_Bps > 0 and math.isfinite(bandwidth_Bps)):
        raise ValueError(f"bandwidth_Bps must be positive and finite (got {bandwidth_Bps!r})")
    if not (latency_s >= 0 and math.isfinite(latency_s)):
        raise ValueError(f"latency_s must be >= 0 and finite (got {latency_s!r})")
    if graph.has_edge(u, v):
        graph.edges[u, v]["bandwidth_Bps"] += float(bandwidth_Bps)
        return
    graph.add_edge(u, v, bandwidth_Bps=float(bandwidth_Bps), latency_s=float(latency_s), kind=kind)


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def validate(graph: Any, *, source: str | None = None) -> nx.Graph:
    """Check ``graph`` against the schema and return it unchanged.

    Raises
    ------
    SpecError
        If the graph is directed or has parallel edges, is empty or disconnected, has a self-loop,
        a node without a known ``role``, a GPU/CPU without ``device``, or an edge whose
        ``bandwidth_Bps`` is missing, not a number, zero, negative or infinite, or whose
        ``latency_s`` is missing, negative or infinite. The message names ``source``, the node or
        edge, and the bad value.
    """
    name = source or (graph.graph.get("name") if isinstance(graph, nx.Graph) else None) or "topology"
    if not isinstance(graph, nx.Graph):
        raise SpecError("a topology must be a networkx Graph", source=name, value=type(graph).__name__)
    if graph.is_directed():
        raise SpecError("links are full duplex: use an undirected graph", source=name,
                        field="directed", value=True)
    if graph.is_multigraph():
        raise SpecError("parallel edges are not allowed: merge a bundle into one edge with the "
                        "summed bandwidth", source=name, field="multigraph", value=True)
    if graph.number_of_nodes() == 0:
        raise SpecError("the topology has no nodes", source=name)
    for node, data in graph.nodes(data=True):
        role = data.get("role")
        if role not in ROLES:
            problem = ("unknown role; valid: " + ", ".join(ROLES)) if role is not None else \
                "node has no role (an edge may reference a node that is not declared)"
            raise SpecError(problem, source=name, field=f"nodes[{node!r}].role", value=role)
        if role in ("gpu", "cpu") and not isinstance(data.get("device"), str):
            raise SpecError(f"{role} nodes need a device name", source=name,
                            field=f"nodes[{node!r}].device", value=data.get("device"))
    for u, v, data in graph.edges(data=True):
        where = f"edges[{u!r}, {v!r}]"
        if u == v:
            raise SpecError("self-loop", source=name, field=where, value=u)
        bw = data.get("bandwidth_Bps")
        if not _number(bw) or not (bw > 0 and math.isfinite(bw)):
            raise SpecError("bandwidth_Bps must be a positive finite number of bytes/s",
                            source=name, field=f"{where}.bandwidth_Bps", value=bw)
        lat = data.get("latency_s")
        if not _number(lat) or not (lat >= 0 and math.isfinite(lat)):
            raise SpecError("latency_s must be a finite number of seconds >= 0",
                            source=name, field=f"{where}.latency_s", value=lat)
    for node, data in graph.nodes(data=True):
        nic = data.get("nic")
        if nic is None:
            continue
        if nic not in graph or graph.nodes[nic].get("role") != "nic":
            raise SpecError("names no NIC node of the topology", source=name,
                            field=f"nodes[{node!r}].nic", value=nic)
        if graph.nodes[nic].get("server") != data.get("server"):
            raise SpecError("a node's NIC must sit in its own server", source=name,
                            field=f"nodes[{node!r}].nic", value=nic)
    routing = graph.graph.get("routing", "ecmp")
    if routing not in ROUTINGS:
        raise SpecError("unknown routing; valid: " + ", ".join(ROUTINGS), source=name,
                        field="graph.routing", value=routing)
    if not nx.is_connected(graph):
        parts = sorted(nx.connected_components(graph), key=len)
        stray = sorted(map(repr, parts[0]))[:3]
        raise SpecError(f"the topology is disconnected ({len(parts)} components; a small one "
                        f"holds {', '.join(stray)})", source=name, field="edges")
    forward = graph.graph.get("gpus_forward", False)
    if not isinstance(forward, bool):
        raise SpecError("must be true or false", source=name, field="graph.gpus_forward",
                        value=forward)
    return graph


def _rank_key(graph: nx.Graph):
    order = {node: i for i, node in enumerate(graph.nodes)}

    def key(node):
        data = graph.nodes[node]
        server, index = data.get("server"), data.get("index")
        if isinstance(server, int) and isinstance(index, int):
            return (0, server, index, order[node])
        return (1, 0, 0, order[node])
    return key


def gpus(graph: nx.Graph) -> list:
    """GPU nodes in rank order: server-major, then local index (file order for unnumbered GPUs).

    >>> import topologies
    >>> topologies.gpus(topologies.get("server(server='dgx1_v100')"))[:2]
    [('gpu', 0, 0), ('gpu', 0, 1)]
    """
    found = [n for n, r in graph.nodes(data="role") if r == "gpu"]
    return sorted(found, key=_rank_key(graph))


def cpus(graph: nx.Graph) -> list:
    """CPU nodes (server CPUs and stand-alone parameter-server hosts), in the same order rule."""
    found = [n for n, r in graph.nodes(data="role") if r == "cpu"]
    return sorted(found, key=_rank_key(graph))


def cpu_hosts(graph: nx.Graph) -> list:
    """CPU nodes of servers without GPUs (stand-alone parameter-server hosts), in order."""
    with_gpus = {graph.nodes[n].get("server") for n in gpus(graph)}
    return [n for n in cpus(graph) if graph.nodes[n].get("server") not in with_gpus]


def servers(graph: nx.Graph) -> dict:
    """Map each server id to its GPUs in rank order (servers without GPUs are left out)."""
    result: dict = {}
    for node in gpus(graph):
        result.setdefault(graph.nodes[node].get("server"), []).append(node)
    return result
