"""Cluster builders, written the networkx way: plain functions that return a new graph.

Every builder places ``servers`` servers of one type (a ``servers.json`` name, an inline mapping or a
:class:`~topologies.catalog.ServerSpec`) and wires their ports (NICs, or GPUs for servers without a
NIC) into a fabric. ``link`` is the fabric's link technology (a ``links.json`` name or an inline
mapping such as ``{"kind": "ethernet", "bandwidth_Gbitps": 40, "latency_us": 2}``); it defaults to
the server's NIC. ``cpu_hosts`` adds stand-alone CPU hosts (for parameter servers) with one NIC each,
numbered after the GPU servers. Bad parameters raise ``ValueError``.

Switch labels: ``("switch", layer, j)`` with layer ``tor``, ``edge``, ``agg``, ``core``, ``leaf``,
``spine``; rail leaves ``("switch", "rail", rail, group)``; routers ``("router", *coords)`` in a
torus and ``("router", group, r)`` in a dragonfly.

Every builder takes ``routing`` (``dmodk``, ``ecmp`` or ``shortest``; see
:mod:`simulator.network.routing`), stored as the graph attribute of that name; by default the
fabric link's kind decides (:func:`~topologies.schema.default_routing`: InfiniBand fabrics route
deterministically by destination, Ethernet fabrics hash connections over equal-cost paths).
Fabric ports are numbered in order (server by server, NIC by NIC, then the CPU hosts; on a
rail-optimised fabric leaf by leaf) in the node attribute ``port``, the host-port numbers that
destination-based routing uses.
"""
from __future__ import annotations

import itertools
import math
from typing import Any

import networkx as nx

from topologies.catalog import LinkSpec, ServerSpec, links, resolve_link, resolve_server
from topologies.schema import ROUTINGS, add_link, default_routing
from topologies.servers import add_server


#: The most servers (CPU hosts included) a builder makes: 65,536 servers of 8 GPUs is 524,288
#: GPUs, far beyond any training cluster; a larger number is a typo that would exhaust memory.
MAX_SERVERS = 65_536


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} (got {value!r})")
    return value


def _wire(graph: nx.Graph, u, v, spec: LinkSpec, factor: float = 1.0) -> None:
    add_link(graph, u, v, bandwidth_Bps=spec.payload_Bps * factor, latency_s=spec.latency_s,
             kind=spec.kind)


def _cluster(name: str, server, servers: int, cpu_hosts: int, link, routing=None) -> tuple:
    """A graph holding ``servers`` servers and ``cpu_hosts`` CPU hosts, not yet wired together.

    Returns ``(graph, server_spec, fabric_link, ports)`` where ``ports[s]`` lists server ``s``'s
    ports (numbered in order in their ``port`` attribute). ``routing`` defaults to the fabric
    link's kind (:func:`~topologies.schema.default_routing`).
    """
    spec = resolve_server(server)
    _positive_int("servers", servers)
    _positive_int("cpu_hosts", cpu_hosts, 0)
    if servers + cpu_hosts > MAX_SERVERS:
        raise ValueError(f"servers + cpu_hosts must be at most {MAX_SERVERS} (got "
                         f"{servers + cpu_hosts}): larger clusters are beyond what the flow "
                         "model is built for")
    if link is None:
        if spec.nic is None:
            raise ValueError(f"server {spec.name!r} has no NIC: give the fabric link= explicitly")
        link = spec.nic
    fabric = resolve_link(link)
    graph = nx.Graph(name=name, servers=servers, gpus_per_server=spec.gpus,
                     gpus=servers * spec.gpus, cpu_hosts=cpu_hosts, gpu_device=spec.gpu,
                     gpus_forward=spec.nics == 0)
    ports = [add_server(graph, s, spec) for s in range(servers)]
    host = ServerSpec(name="cpu_host", gpus=0, nics=1, links=links())
    ports += [add_server(graph, servers + h, host) for h in range(cpu_hosts)]
    for number, port in enumerate(itertools.chain.from_iterable(ports)):
        graph.nodes[port]["port"] = number
    graph.graph["routing"] = _routing(routing, fabric)
    return graph, spec, fabric, ports


def _routing(routing, fabric: LinkSpec) -> str:
    if routing is None:
        return default_routing(fabric.kind)
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {', '.join(ROUTINGS)} (got {routing!r})")
    return routing


def server(server: Any = "dgx1_v100") -> nx.Graph:
    """One server on its own, with no fabric (its NICs stay on its PCIe tree, leading nowhere).

    >>> g = server("dgx1_v100")
    >>> sum(1 for _, r in g.nodes(data="role") if r == "gpu")
    8
    """
    spec = resolve_server(server)
    if spec.gpus == 0:
        raise ValueError("a lone server needs GPUs")
    graph = nx.Graph(name=f"server({spec.name})", servers=1, gpus_per_server=spec.gpus,
                     gpus=spec.gpus, cpu_hosts=0, gpu_device=spec.gpu, gpus_forward=False,
                     routing="shortest")
    add_server(graph, 0, spec)
    return graph


def single_switch(servers: int = 4, *, server: Any = "dgx1_v100", cpu_hosts: int = 0,
                  link: Any = None, routing: str | None = None) -> nx.Graph:
    """A star: every port of every server into one switch ``("switch", "tor", 0)``."""
    graph, spec, fabric, ports = _cluster(f"single_switch(servers={servers})", server, servers,
                                          cpu_hosts, link, routing)
    hub = ("switch", "tor", 0)
    graph.add_node(hub, role="switch", index=0)
    for port in itertools.chain.from_iterable(ports):
        _wire(graph, port, hub, fabric)
    return graph


def ring(servers: int = 8, *, server: Any = "dgx1_v100", link: Any = None,
         routing: str | None = None) -> nx.Graph:
    """Servers in a ring, port ``j`` of server ``s`` cabled to port ``j`` of server ``s + 1``.

    With several ports per server this is several parallel rings. A ring of two is one link.
    """
    _positive_int("servers", servers, 2)
    graph, spec, fabric, ports = _cluster(f"ring(servers={servers})", server, servers, 0, link,
                                          routing)
    for s in range(servers if servers > 2 else 1):
        for a, b in zip(ports[s], ports[(s + 1) % servers]):
            _wire(graph, a, b, fabric)
    return graph


def torus(dims: Any = (4, 4, 4), *, server: Any = "titan_node", link: Any = None,
          routing: str | None = None) -> nx.Graph:
    """A torus with one server per coordinate (2D, 3D, or any number of dimensions).

    Servers with a NIC hang off a router ``("router", *coords)`` and the routers form the torus
    (Cray Gemini); a server that is one chip without a NIC is itself the torus node (TPU ICI), and
    then GPUs forward traffic. Server ``s`` sits at ``numpy.unravel_index(s, dims)`` (last dimension
    fastest). A dimension of size 2 has one link between its two nodes, not two.
    """
    if isinstance(dims, int) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1
                                        for d in dims) or not dims:
        raise ValueError(f"dims must be a non-empty sequence of integers >= 1 (got {dims!r})")
    dims = tuple(dims)
    n = math.prod(dims)
    graph, spec, fabric, ports = _cluster(f"torus(dims={list(dims)})", server, n, 0, link,
                                          routing)
    coords = list(itertools.product(*(range(d) for d in dims)))
    if spec.nics == 0:
        if spec.gpus != 1:
            raise ValueError("a direct-connect torus needs servers of exactly one chip")
        node_of = {c: ports[s][0] for s, c in enumerate(coords)}
    else:
        node_of = {c: ("router", *c) for c in coords}
        for s, c in enumerate(coords):
            graph.add_node(node_of[c], role="router", coord=str(c), index=s)
            for port in ports[s]:
                _wire(graph, port, node_of[c], fabric)
    for c in coords:
        for axis, size in enumerate(dims):
            if size == 1 or (size == 2 and c[axis] == 1):
                continue
            nxt = c[:axis] + ((c[axis] + 1) % size,) + c[axis + 1:]
            _wire(graph, node_of[c], node_of[nxt], fabric)
    graph.graph["dims"] = str(list(dims))
    return graph


def fat_tree(k: int = 4, *, oversubscription: float = 1.0, server: Any = "dgx_a100",
             servers: int | None = None, cpu_hosts: int = 0, link: Any = None,
             routing: str | None = None) -> nx.Graph:
    """A k-ary fat-tree (Al-Fares et al., SIGCOMM 2008): k pods of k/2 edge and k/2 aggregation
    switches, (k/2)^2 core switches, k^3/4 host ports.

    Server ports fill host ports in order (a server's NICs sit on consecutive ports), then the CPU
    hosts. ``servers`` defaults to as many whole servers as the ports hold. ``oversubscription``
    (>= 1) divides the bandwidth of every edge-to-aggregation link, so an edge switch's hosts can
    send ``oversubscription`` times more than its uplinks carry; aggregation-to-core links stay full.
    """
    _positive_int("k", k, 2)
    if k % 2:
        raise ValueError(f"k must be even (got {k})")
    if isinstance(oversubscription, bool) or not isinstance(oversubscription, (int, float)) \
            or not oversubscription >= 1 or not math.isfinite(oversubscription):
        raise ValueError(f"oversubscription must be a number >= 1 (got {oversubscription!r})")
    half = k // 2
    capacity = k ** 3 // 4
    spec = resolve_server(server)
    per_server = spec.nics or spec.gpus
    if servers is None:
        servers = (capacity - cpu_hosts) // per_server
    if servers * per_server + cpu_hosts > capacity:
        raise ValueError(f"{servers} servers x {per_server} ports + {cpu_hosts} CPU hosts do not "
                         f"fit the {capacity} host ports of a k={k} fat-tree")
    graph, spec, fabric, ports = _cluster(
        f"fat_tree(k={k}, oversubscription={oversubscription})", spec, servers, cpu_hosts, link,
        routing)
    uplink = fabric.scaled(1.0 / oversubscription)
    for p in range(k):
        for e in range(half):
            edge = ("switch", "edge", p * half + e)
            graph.add_node(edge, role="switch", pod=p, index=p * half + e)
            for a in range(half):
                agg = ("switch", "agg", p * half + a)
                graph.add_node(agg, role="switch", pod=p, index=p * half + a)
                _wire(graph, edge, agg, uplink)
        for a in range(half):
            for c in range(half):
                core = ("switch", "core", a * half + c)
                graph.add_node(core, role="switch", index=a * half + c)
                _wire(graph, ("switch", "agg", p * half + a), core, fabric)
    for i, port in enumerate(itertools.chain.from_iterable(ports)):
        _wire(graph, port, ("switch", "edge", i // half), fabric)
    graph.graph["oversubscription"] = float(oversubscription)
    return graph


def leaf_spine(leaves: int = 2, spines: int = 2, *, servers_per_leaf: int = 2,
               server: Any = "dgx1_v100", cpu_hosts: int = 0, link: Any = None,
               uplink: Any = None, routing: str | None = None) -> nx.Graph:
    """A two-level Clos: every server's ports into its leaf, every leaf to every spine.

    Server ``s`` sits under leaf ``s // servers_per_leaf``; CPU host ``h`` under leaf
    ``h % leaves``. ``uplink`` (default: ``link``) is each leaf-to-spine link, so the leaf's
    oversubscription is (servers_per_leaf x ports x link) / (spines x uplink).
    """
    _positive_int("leaves", leaves)
    _positive_int("spines", spines)
    _positive_int("servers_per_leaf", servers_per_leaf)
    graph, spec, fabric, ports = _cluster(
        f"leaf_spine(leaves={leaves}, spines={spines}, servers_per_leaf={servers_per_leaf})",
        server, leaves * servers_per_leaf, cpu_hosts, link, routing)
    up = fabric if uplink is None else resolve_link(uplink, what="uplink")
    for i in range(leaves):
        graph.add_node(("switch", "leaf", i), role="switch", index=i)
    for j in range(spines):
        graph.add_node(("switch", "spine", j), role="switch", index=j)
        for i in range(leaves):
            _wire(graph, ("switch", "leaf", i), ("switch", "spine", j), up)
    n = leaves * servers_per_leaf
    for s, server_ports in enumerate(ports):
        leaf = s // servers_per_leaf if s < n else (s - n) % leaves
        for port in server_ports:
            _wire(graph, port, ("switch", "leaf", leaf), fabric)
    return graph


def rail_optimized(servers: int = 4, *, server: Any = "dgx_a100",
                   servers_per_leaf: int | None = None, spines: int | None = None,
                   cpu_hosts: int = 0, link: Any = None, uplink: Any = None,
                   routing: str | None = None) -> nx.Graph:
    """A rail-optimised fabric: NIC ``j`` of every server goes to a leaf of rail ``j``.

    Servers form groups of ``servers_per_leaf`` (default: all of them); rail ``j`` of group ``g`` is
    leaf ``("switch", "rail", j, g)``. Every leaf connects to every spine; by default there are as
    many spines as rails and each leaf-spine link carries servers_per_leaf / spines x ``link``, a
    non-blocking fabric. Same-rail traffic of one group crosses one leaf; other traffic climbs to
    a spine. CPU host ``h`` sits on rail 0 of group ``h % groups``.
    """
    _positive_int("servers", servers)
    spec = resolve_server(server)
    if spec.nics < 1:
        raise ValueError("a rail-optimised fabric needs servers with NICs")
    per_leaf = servers if servers_per_leaf is None else _positive_int("servers_per_leaf",
                                                                     servers_per_leaf)
    n_spines = spec.nics if spines is None else _positive_int("spines", spines)
    groups = -(-servers // per_leaf)
    graph, spec, fabric, ports = _cluster(f"rail_optimized(servers={servers})", spec, servers,
                                          cpu_hosts, link, routing)
    up = (fabric.scaled(per_leaf / n_spines) if uplink is None
          else resolve_link(uplink, what="uplink"))
    for j in range(n_spines):
        graph.add_node(("switch", "spine", j), role="switch", index=j)
    for rail in range(spec.nics):
        for g in range(groups):
            leaf = ("switch", "rail", rail, g)
            graph.add_node(leaf, role="switch", rail=rail, group=g, index=rail * groups + g)
            for j in range(n_spines):
                _wire(graph, leaf, ("switch", "spine", j), up)
    for s, server_ports in enumerate(ports):
        if s < servers:
            for rail, port in enumerate(server_ports):
                _wire(graph, port, ("switch", "rail", rail, s // per_leaf), fabric)
        else:
            _wire(graph, server_ports[0], ("switch", "rail", 0, (s - servers) % groups), fabric)
    _number_ports_by_switch(graph, [("switch", "rail", r, g) for r in range(spec.nics)
                                    for g in range(groups)])
    return graph


def _number_ports_by_switch(graph: nx.Graph, switches: list) -> None:
    """Renumber the fabric ports leaf by leaf (in the order they hang off each), as a subnet
    manager numbers the hosts of a Clos fabric: destination-based routing then spreads one
    leaf's hosts over all the spines rather than sending every NIC j to spine j."""
    number = 0
    for switch in switches:
        hosts = sorted((n for n in graph[switch] if "port" in graph.nodes[n]),
                       key=lambda n: graph.nodes[n]["port"])
        for host in hosts:
            graph.nodes[host]["port"] = number
            number += 1


def dragonfly(groups: int = 4, routers_per_group: int = 4, servers_per_router: int = 2, *,
              global_links: int = 1, server: Any = "dgx1_v100", cpu_hosts: int = 0,
              link: Any = None, local_link: Any = None, global_link: Any = None,
              routing: str | None = None) -> nx.Graph:
    """A dragonfly (Kim et al., ISCA 2008): routers all-to-all inside a group, ``global_links``
    links between every pair of groups, spread round-robin over each group's routers.

    Server ``s`` sits on router ``("router", g, r)`` with ``g = s // (routers_per_group x
    servers_per_router)`` and ``r = (s // servers_per_router) % routers_per_group``; CPU host ``h``
    on router ``("router", h % groups, 0)``. ``local_link`` and ``global_link`` default to ``link``.
    """
    _positive_int("groups", groups, 2)
    _positive_int("routers_per_group", routers_per_group)
    _positive_int("servers_per_router", servers_per_router)
    _positive_int("global_links", global_links)
    n = groups * routers_per_group * servers_per_router
    graph, spec, fabric, ports = _cluster(
        f"dragonfly(groups={groups}, routers_per_group={routers_per_group}, "
        f"servers_per_router={servers_per_router})", server, n, cpu_hosts, link, routing)
    local = fabric if local_link is None else resolve_link(local_link, what="local_link")
    glob = fabric if global_link is None else resolve_link(global_link, what="global_link")
    for g in range(groups):
        for r in range(routers_per_group):
            graph.add_node(("router", g, r), role="router", group=g,
                           index=g * routers_per_group + r)
        for a, b in itertools.combinations(range(routers_per_group), 2):
            _wire(graph, ("router", g, a), ("router", g, b), local)
    used = [0] * groups
    for _ in range(global_links):
        for g1, g2 in itertools.combinations(range(groups), 2):
            r1, r2 = used[g1] % routers_per_group, used[g2] % routers_per_group
            used[g1] += 1
            used[g2] += 1
            _wire(graph, ("router", g1, r1), ("router", g2, r2), glob)
    per_group = routers_per_group * servers_per_router
    for s, server_ports in enumerate(ports):
        if s < n:
            router = ("router", s // per_group, (s // servers_per_router) % routers_per_group)
        else:
            router = ("router", (s - n) % groups, 0)
        for port in server_ports:
            _wire(graph, port, router, fabric)
    return graph
