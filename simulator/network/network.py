"""A flow-level network on simpy: transfers are flows whose rates are shared max-min fairly.

``yield network.transfer(src, dst, nbytes)`` moves ``nbytes`` from node ``src`` to node ``dst``
along a least-cost route (see :mod:`simulator.network.routing`). Every directed link's bandwidth is
shared max-min fairly by the flows crossing it (:mod:`simulator.network.maxmin`), so contention
(an incast on a parameter server's NIC, an oversubscribed uplink, a PCIe switch shared by two GPUs)
slows flows down by itself.

Which way a flow goes:

- Its route can pass through *waypoints* (``via``): it is then the concatenation of the least-cost
  routes between consecutive points. Without ``via``, a flow between two servers passes through
  the ``nic`` of each end that names one (a GPU's bound NIC, see :mod:`topologies.servers`), as a
  collective library's transport does: the GPU-NIC affinity is the topology's, never a hash.
- Ties between equal-cost routes are broken by the fabric's routing policy (graph attribute
  ``routing``: destination-based ``dmodk``, hashed ``ecmp``, or ``shortest``), hashed on the
  flow's connection ``key``, so repeated transfers of one connection take one path.
- :meth:`Network.transfer_group` moves the same bytes over several hops as one *coupled* flow: a
  single rate variable that crosses every hop's links (a link crossed by k hops carries k times
  its rate). Max-min sharing then gives the group the rate of its slowest hop and leaves the
  other hops' spare bandwidth to other flows: a pipelined ring or tree in lock step, whose chunks
  cannot run ahead of the slowest neighbour.

Timing of one flow: it transmits from the instant it is submitted until its last byte has left
under the shared rates, then its completion event fires one path latency later (the sum of the
links' ``latency_s``). A lone flow therefore takes ``latency + nbytes / bottleneck_bandwidth``; a
zero-byte transfer takes the path latency; ``src == dst`` is a local copy that takes
``nbytes / local_copy_Bps`` (0 s when ``local_copy_Bps`` is ``None``, the default) and uses no link.

Events and their order (pinned by tests):

- A flow's start and end change rates only at one *update* per simulated instant: an event at
  priority ``LATE`` (after every normal simpy event of that instant), so all the flows started or
  finished at one instant, including those started by processes that resumed at that instant,
  cost one rate recomputation.
- An update recomputes only the flows connected (through shared links) to the links whose flows
  changed (:mod:`simulator.network.incidence`); rates elsewhere are untouched, and a flow whose
  rate comes out unchanged keeps its finish time bit for bit.
- Finish times are ``t + remaining / rate``, recomputed from remaining bytes at every rate change,
  so no error accumulates; a flow whose remaining bytes fall within ``EPS_REL`` of its size
  counts as finished.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from numbers import Real
from typing import Any, Hashable

import networkx as nx
import numpy as np
import simpy

from simulator.errors import SpecError, SymmetryBroken
from simulator.network.incidence import Incidence
from simulator.network.maxmin import maxmin_rates
from simulator.network.routing import Router, flow_hash
from simulator.network.staging import staged_hops, staging_hosts
from topologies.paths import LinkArrays
from topologies.schema import validate

_NUMBER = (int, float, np.integer, np.floating)  # concrete types: an ABC check is slow here
#: simpy priority of the per-instant rate update: after NORMAL (1) events of the same instant.
LATE = 2
#: A flow is finished when its remaining bytes are within this fraction of its size.
EPS_REL = 1e-9


@dataclass(eq=False)
class Flow:
    """One transfer and its record. Times in seconds, sizes in bytes."""

    id: int
    src: Hashable
    dst: Hashable
    nbytes: float
    tag: Any
    start_s: float
    event: simpy.Event = field(repr=False)
    tx_end_s: float = math.nan
    end_s: float = math.nan
    latency_s: float = 0.0
    links: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64), repr=False)
    #: point-to-point transfers this flow stands for (a coupled group's hops); each moves
    #: ``nbytes``
    transfers: int = 1
    #: routing request: per hop, the (source, destination) node numbers of its segments
    hops: list = field(default_factory=list, repr=False)
    key: Any = field(default=None, repr=False)
    #: per hop, its own connection key (mirrored flows; ``None``: every hop takes ``key``)
    hop_keys: list | None = field(default=None, repr=False)
    #: mirrored flows: hops per part, each part one flow of the full simulation
    parts: tuple | None = field(default=None, repr=False)
    #: mirrored flows: per part, the links its hops cross (after routing)
    part_links: list | None = field(default=None, repr=False)


@lru_cache(maxsize=1 << 16)
def _cached_hash(seed: int, src: int, dst: int, key) -> int:
    """:func:`flow_hash`, memoised (a pure function: the cache changes no result)."""
    return flow_hash(seed, src, dst, key)


@dataclass(frozen=True)
class Staged:
    """The value of a host-staged transfer's event: its hops' flows, in order, and the latency
    of the whole path (what a pipelined step of it pays)."""

    flows: tuple
    latency_s: float


class _Update(simpy.Event):
    """An already-triggered event at priority LATE (simpy's own Timeout/Initialize pattern)."""

    def __init__(self, env: simpy.Environment, callback) -> None:
        super().__init__(env)
        self.callbacks.append(callback)
        self._ok = True
        self._value = None
        env.schedule(self, LATE)


class Network:
    """Flows over the links of a topology, with max-min fair bandwidth sharing.

    Parameters
    ----------
    env : simpy.Environment
    graph : networkx.Graph
        A topology (validated here, see :func:`topologies.validate`).
    seed : int
        ECMP hash seed; same seed, same paths.
    routing : {"dmodk", "ecmp", "shortest"} or None
        How ties between equal-cost paths are broken (see :mod:`simulator.network.routing`);
        ``None`` takes the graph's ``routing`` attribute (``ecmp`` if it has none).
    local_copy_Bps : float or None
        Bandwidth of a ``src == dst`` copy (bytes/s); ``None`` makes it instantaneous.
    record_utilisation : bool
        Keep every link-rate change for :meth:`utilisation_table` (costs memory on long runs).

    Examples
    --------
    >>> import simpy, topologies
    >>> env = simpy.Environment()
    >>> g = topologies.get("single_switch(servers=2, server='p2.8xlarge')")
    >>> net = Network(env, g)
    >>> done = net.transfer(("gpu", 0, 0), ("gpu", 1, 0), 1.25e9)
    >>> env.run(done).end_s == env.now
    True
    >>> round(env.now, 6)   # 1.25 GB over the 10 Gbit/s NIC in 1 s, plus 8 hops' latency
    1.000016
    """

    def __init__(self, env: simpy.Environment, graph: nx.Graph, *, seed: int = 0,
                 routing: str | None = None, local_copy_Bps: float | None = None,
                 record_utilisation: bool = True) -> None:
        validate(graph)
        if routing is None:
            routing = graph.graph.get("routing", "ecmp")
        if local_copy_Bps is not None and not (isinstance(local_copy_Bps, Real)
                                               and local_copy_Bps > 0):
            raise SpecError("must be a positive number of bytes/s or None",
                            field="local_copy_Bps", value=local_copy_Bps)
        self.graph = graph
        self.links = LinkArrays.from_graph(graph)
        self.router = Router(self.links, seed=seed, routing=routing)
        inside = np.array([graph.nodes[n].get("server") is not None for n in self.links.nodes],
                          dtype=bool)
        #: routes between two points outside every server (switch to switch): servers' nodes
        #: do not relay them (a server never carries traffic that neither starts nor ends in it)
        self.fabric_router = Router(replace(self.links, forwards=self.links.forwards & ~inside),
                                    seed=seed, routing=routing)
        self.routing = routing
        self.seed = seed
        index = self.links.index
        self._server = [graph.nodes[n].get("server") for n in self.links.nodes]
        self._nic = [index.get(graph.nodes[n].get("nic"), -1) for n in self.links.nodes]
        self._port = self._fabric_ports()
        self.local_copy_Bps = local_copy_Bps
        self.record_utilisation = record_utilisation
        self._transit = self._transit_components()
        self._staging = staging_hosts(graph)
        self._mirror_routes: dict[tuple, tuple] = {}  # mirrored flows' routes by request
        self._mirror_segments: dict[tuple, list] = {}  # and their hops' segments
        self._reset(env)

    def spawn(self, env: simpy.Environment) -> "Network":
        """A new, idle network on the same topology in ``env``: it shares this one's routes
        (and its routing's seed) but none of its flows or records. Cheaper than building one."""
        new = object.__new__(Network)
        new.__dict__.update({name: value for name, value in self.__dict__.items()
                             if name in self._STATIC})
        new._reset(env)
        return new

    #: What :meth:`spawn` shares: the topology, its routing and caches of routes.
    _STATIC = frozenset(("graph", "links", "router", "fabric_router", "routing", "seed",
                         "_server", "_nic", "_port", "local_copy_Bps", "record_utilisation",
                         "_transit", "_staging", "_mirror_routes", "_mirror_segments"))

    def _reset(self, env: simpy.Environment) -> None:
        self.env = env
        self.flows: list[Flow] = []
        #: Number of max-min rate recomputations so far.
        self.recomputations = 0
        #: Flow rates computed so far, summed over recomputations (the work they did).
        self.rates_computed = 0
        n_links = len(self.links.link_src)
        self._link_rate = np.zeros(n_links)
        self._link_since = np.zeros(n_links)
        self._link_bytes = np.zeros(n_links)
        self._link_busy = np.zeros(n_links)
        self._series: list[tuple[np.ndarray, float, np.ndarray]] = []
        self._slots = 0
        self._grow(64)
        self._pairs = Incidence(n_links)
        self._mirrored: set[int] = set()  # slots of mirrored flows (see transfer_group)
        self._pending: list[Flow] = []
        self._changed: list[np.ndarray] = []
        self._update: _Update | None = None
        self._timer: simpy.Event | None = None
        self._timer_at = math.inf

    # ----------------------------------------------------------------- public API
    def transfer(self, src: Hashable, dst: Hashable, nbytes: float, *, tag: Any = None,
                 key: Any = None, via: tuple | None = None) -> simpy.Event:
        """Start moving ``nbytes`` bytes from node ``src`` to node ``dst``.

        Returns a simpy event that succeeds, with the :class:`Flow` as its value, when the last
        byte has arrived. ``tag`` labels the flow in the records; ``key`` names its connection
        for ECMP (default: ``tag``). ``via``: waypoints the route passes through, in order
        (``None``: the NICs the two ends are bound to, when they are in different servers).
        Without ``via``, from or to a GPU without GPUDirect RDMA, across servers, the transfer
        is staged through host memory (:mod:`simulator.network.staging`): one flow per hop, in
        sequence, and the event's value is a :class:`Staged` record of them.

        Raises
        ------
        SpecError
            For an unknown node, a negative or non-finite size, or endpoints with no route
            between them.
        """
        self._check_endpoints(src, dst)
        self._check_bytes(nbytes)
        if key is None:
            key = tag
        if via is None:
            hops = staged_hops(self.graph, self._staging, src, dst) if self._staging else None
            if hops is not None:  # no GPUDirect RDMA: store and forward through host memory
                return self.env.process(self._chain(hops, float(nbytes), tag, key))
        return self._flow(src, dst, nbytes, tag, key, [self._segments(src, dst, via)])

    def transfer_group(self, hops, nbytes: float, *, tag: Any = None, key: Any = None,
                       keys: list | None = None, parts: tuple | None = None) -> simpy.Event:
        """Move ``nbytes`` over every hop of ``hops`` (``(src, dst, via)`` triples, ``via`` as in
        :meth:`transfer`) as one coupled flow: one rate for all hops, the slowest hop's, so
        each link carries that rate once per hop crossing it. The event succeeds when the last
        byte of every hop has arrived; its value is the flow (``src``/``dst`` of the first hop,
        ``transfers`` = the number of hops). A group of one hop is a plain transfer (without
        host staging: give the host CPUs as waypoints to stage through host memory, pipelined).

        ``keys`` gives each hop its own connection key. ``parts`` (hop counts summing to
        ``len(hops)``) makes it a *mirrored* flow for representative-replica runs
        (:mod:`simulator.replicas`): each part stands for one flow of the full simulation, all
        at one rate. At every rate change the network certifies that this is what the parts
        would get as separate flows (each has a saturated link on which no flow is faster,
        the max-min bottleneck condition, so the allocation is the separate flows' unique
        max-min one) and that their latencies are equal; otherwise it raises
        :class:`~simulator.errors.SymmetryBroken`.
        """
        self._check_bytes(nbytes)
        if key is None:
            key = tag
        hops = tuple(hops)
        segments = self._mirror_segments.get(hops) if parts is not None else None
        if segments is None:
            segments = []
            for src, dst, via in hops:
                self._check_endpoints(src, dst)
                segments.append(self._segments(src, dst, via))
            if parts is not None:  # mirrored flows repeat (every microbatch's sends)
                self._mirror_segments[hops] = segments
        if not segments:
            raise SpecError("a coupled transfer needs at least one hop", field="hops", value=hops)
        if keys is not None and len(keys) != len(segments):
            raise SpecError("needs one key per hop", field="keys", value=len(keys))
        if parts is not None and (sum(parts) != len(segments) or min(parts) < 1):
            raise SpecError("part sizes must sum to the number of hops", field="parts",
                            value=parts)
        first = hops[0]
        return self._flow(first[0], first[1], nbytes, tag, key, segments, keys, parts)

    def _check_bytes(self, nbytes) -> None:
        if not isinstance(nbytes, _NUMBER) or isinstance(nbytes, bool) or not (
                nbytes >= 0 and math.isfinite(nbytes)):
            raise SpecError("must be a finite number of bytes >= 0", field="nbytes", value=nbytes)

    def _segments(self, src, dst, via) -> list[tuple[int, int, int]]:
        """A hop's route segments: (source, destination, destination key) node numbers."""
        index = self.links.index
        s, d = index[src], index[dst]
        if via is None:
            points = [s]
            if self._server[s] is None or self._server[s] != self._server[d]:
                # the ends' bound NICs, where they are cabled to a switch (a NIC cabled
                # straight to other NICs, as in the ring builder, is left to the shortest route)
                if self._nic[s] >= 0 and self._port[self._nic[s]] >= 0:
                    points.append(self._nic[s])
                if self._nic[d] >= 0 and self._port[self._nic[d]] >= 0:
                    points.append(self._nic[d])
            points.append(d)
            return self._through_ports(points)
        else:
            for node in via:
                if node not in index:
                    raise SpecError("no such node in the topology", source=self.graph.graph.get(
                        "name"), field="via", value=node)
            points = [s, *(index[node] for node in via), d]
        return self._through_ports(points)

    def _through_ports(self, points: list[int]) -> list[tuple[int, int, int]]:
        """Route segments ``(source, destination, destination key)`` between consecutive
        points. A NIC point next to a point in another server is left or entered through its
        own fabric port: a NIC never relays between its server's PCIe tree and another NIC of
        that server (which a cheap PCIe detour would otherwise tie with or beat). The segment
        into that port keeps the NIC's host-port number as its destination key, so
        destination-based routing still spreads by the NIC, not by its switch."""
        server, port, number = self._server, self._port, self.links.port
        out: list[tuple[int, int, int]] = []
        at = points[0]
        for b in points[1:]:
            if b == at:
                continue
            a = at
            across = server[a] is None or server[a] != server[b]
            if across and port[a] >= 0 and port[a] != b:
                out.append((a, port[a], int(number[port[a]])))
                a = port[a]
            if across and port[b] >= 0 and port[b] != a:
                out.append((a, port[b], int(number[b])))
                a = port[b]
            if a != b:
                out.append((a, b, int(number[b])))
            at = b
        return out

    def _fabric_ports(self) -> list[int]:
        """Per node: for a NIC cabled to exactly one switch or router, that switch, else -1
        (a NIC cabled straight to other NICs, as in the ``ring`` builder, has no port)."""
        index = self.links.index
        out = [-1] * len(self.links.nodes)
        for node, data in self.graph.nodes(data=True):
            if data.get("role") != "nic":
                continue
            outside = [m for m in self.graph[node]
                       if self.graph.nodes[m].get("role") in ("switch", "router")]
            if len(outside) == 1:
                out[index[node]] = index[outside[0]]
        return out

    def _chain(self, hops, nbytes: float, tag, key):
        flows = []
        for u, v in hops:
            flows.append((yield self._flow(u, v, nbytes, tag, key, [self._segments(u, v, None)])))
        return Staged(tuple(flows), sum(f.latency_s for f in flows))

    def _flow(self, src, dst, nbytes, tag, key, hops, keys=None, parts=None) -> simpy.Event:
        now = self.env.now
        flow = Flow(len(self.flows), src, dst, float(nbytes), tag, now, self.env.event(),
                    transfers=len(hops), hops=hops, key=key, hop_keys=keys, parts=parts)
        self.flows.append(flow)
        if not any(hops):  # every hop is a local copy (src == dst)
            flow.tx_end_s = now
            self._deliver(flow, 0.0 if self.local_copy_Bps is None
                          else flow.nbytes / self.local_copy_Bps)
            return flow.event
        self._pending.append(flow)
        self._schedule_update()
        return flow.event

    def path(self, src: Hashable, dst: Hashable, *, tag: Any = None, key: Any = None,
             via: tuple | None = None) -> list:
        """The nodes a flow from ``src`` to ``dst`` crosses, both ends included (``key``, default
        ``tag``, and ``via`` as in :meth:`transfer`)."""
        links = self._route(src, dst, tag if key is None else key, via)
        a = self.links
        return [src] + [a.nodes[i] for i in a.link_dst[links].tolist()]

    def path_latency_s(self, src: Hashable, dst: Hashable, *, tag: Any = None, key: Any = None,
                       via: tuple | None = None) -> float:
        """One-way latency (s) of the route a flow from ``src`` to ``dst`` takes."""
        return float(self.links.latency_s[self._route(src, dst, tag if key is None else key,
                                                      via)].sum())

    def route_links(self, src: Hashable, dst: Hashable, *, key: Any = None,
                    via: tuple | None = None) -> np.ndarray:
        """The directed link ids (:class:`~topologies.paths.LinkArrays` numbering) a transfer
        from ``src`` to ``dst`` with connection ``key`` and waypoints ``via`` crosses, in order."""
        return self._route(src, dst, key, via)

    def route_links_many(self, hops) -> list[np.ndarray]:
        """:meth:`route_links` of many ``(src, dst, via, key)`` hops, routed in one batch."""
        segments = []
        for src, dst, via, _ in hops:
            self._check_endpoints(src, dst)
            segments.append(self._segments(src, dst, via))
        src, dst, hashes = self._requests(segments, [key for *_, key in hops])
        paths = iter(self._paths(src, dst, hashes))
        return [np.concatenate([next(paths) for _ in seg]) if seg
                else np.empty(0, dtype=np.int64) for seg in segments]

    def _route(self, src, dst, key, via=None) -> np.ndarray:
        return self.route_links_many([(src, dst, via, key)])[0]

    def _requests(self, hops: list[list[tuple[int, int, int]]], keys: list):
        """Routing requests of hops (each a list of segments) and their connection keys:
        ``(sources, destinations, hashes)``, one entry per segment, hops in order."""
        src, dst, hashes = [], [], []
        for hop, key in zip(hops, keys):
            ends = (hop[0][0], hop[-1][1]) if hop else (0, 0)
            for i, (s, d, k) in enumerate(hop):
                src.append(s)
                dst.append(d)
                hashes.append(self._hash(ends, i, k, key))
        return src, dst, hashes

    def _paths(self, src: list[int], dst: list[int], hashes: list[int]) -> list[np.ndarray]:
        """Routes of segments: those between two points outside every server on the fabric
        alone (:attr:`fabric_router`), the others on the whole graph."""
        server = self._server
        outside = [i for i, (s, d) in enumerate(zip(src, dst))
                   if server[s] is None and server[d] is None]
        if not outside:
            return self.router.paths(src, dst, hashes)
        inner = [i for i in range(len(src)) if server[src[i]] is not None
                 or server[dst[i]] is not None]
        out: list = [None] * len(src)
        try:
            found = self.fabric_router.paths([src[i] for i in outside], [dst[i] for i in outside],
                                             [hashes[i] for i in outside])
        except ValueError:  # a fabric that cannot join two switches without a server's help
            inner, found = list(range(len(src))), []
        for i, path in zip(outside, found):
            out[i] = path
        if inner:
            for i, path in zip(inner, self.router.paths(
                    [src[i] for i in inner], [dst[i] for i in inner], [hashes[i] for i in inner])):
                out[i] = path
        return out

    def _hash(self, ends: tuple[int, int], segment: int, dkey: int, key) -> int:
        """What the router breaks ties of one segment by: for ``ecmp`` the hash of the hop's
        own endpoints (not the segment's, which may be two switches every flow between them
        shares), its connection key and the segment's number; the destination's key for
        ``dmodk``; 0 for ``shortest``."""
        if self.routing == "ecmp":
            try:
                return _cached_hash(self.seed, ends[0], ends[1], (key, segment))
            except TypeError:  # an unhashable key: hash its text, uncached
                return flow_hash(self.seed, ends[0], ends[1], (key, segment))
        return dkey if self.routing == "dmodk" else 0

    def _check_endpoints(self, src, dst) -> None:
        index = self.links.index
        name = self.graph.graph.get("name")
        for field_name, node in (("src", src), ("dst", dst)):
            if node not in index:
                raise SpecError("no such node in the topology", source=name, field=field_name,
                                value=node)
        if src != dst and not self._transit[index[src]] & self._transit[index[dst]] \
                and not self.graph.has_edge(src, dst):
            raise SpecError(f"no route from {src!r}: GPUs do not relay traffic (graph attribute "
                            "gpus_forward)", source=name, field="dst", value=dst)

    @property
    def active_flows(self) -> int:
        """Flows transmitting now."""
        return int(np.count_nonzero(self._pairs.length))

    def flows_table(self, *, paths: bool = False):
        """Per-flow records as a DataFrame (see :mod:`simulator.network.records`)."""
        from simulator.network.records import flows_table
        return flows_table(self, paths=paths)

    def links_table(self):
        """Per-directed-link totals as a DataFrame (see :mod:`simulator.network.records`)."""
        from simulator.network.records import links_table
        return links_table(self)

    def utilisation_table(self):
        """Piecewise-constant per-link rate intervals (see :mod:`simulator.network.records`)."""
        from simulator.network.records import utilisation_table
        return utilisation_table(self)

    # ----------------------------------------------------------------- internals
    def _transit_components(self) -> list[frozenset]:
        """For each node, the ids of the forwarding components it can send into or receive from.

        Two endpoints have a route iff these sets intersect (or they are adjacent).
        """
        a = self.links
        forwarding = [n for i, n in enumerate(a.nodes) if a.forwards[i]]
        comp = {}
        for c, nodes in enumerate(nx.connected_components(self.graph.subgraph(forwarding))):
            comp.update(dict.fromkeys(nodes, c))
        result = []
        for i, node in enumerate(a.nodes):
            if a.forwards[i]:
                result.append(frozenset((comp[node],)))
            else:
                result.append(frozenset(comp[m] for m in self.graph[node] if m in comp))
        return result

    def _grow(self, slots: int) -> None:
        old = self._slots
        for name, fill in (("_rem", 0.0), ("_rate", 0.0), ("_since", 0.0), ("_size", 0.0),
                           ("_finish", math.inf), ("_due_at", math.inf)):
            arr = np.full(slots, fill)
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        self._slot_flow = (self._slot_flow if old else []) + [None] * (slots - old)
        self._free = list(range(slots - 1, old - 1, -1)) + (self._free if old else [])
        self._slots = slots

    def _deliver(self, flow: Flow, delay: float) -> None:
        flow.end_s = self.env.now + delay
        if delay > 0:
            self.env.timeout(delay).callbacks.append(lambda _e, f=flow: f.event.succeed(f))
        else:
            flow.event.succeed(flow)

    def _schedule_update(self) -> None:
        if self._update is None:
            self._update = _Update(self.env, self._on_update)

    def _arm_timer(self) -> None:
        nxt = float(self._finish.min()) if self._slots else math.inf
        if nxt < self._timer_at:
            self._timer_at = nxt
            self._timer = self.env.timeout(max(nxt - self.env.now, 0.0))
            self._timer.callbacks.append(self._on_timer)

    def _on_timer(self, event: simpy.Event) -> None:
        if event is not self._timer:
            return  # superseded by an earlier timer
        self._timer, self._timer_at = None, math.inf
        if self._complete_due():
            self._schedule_update()
        else:
            self._arm_timer()

    def _complete_due(self) -> int:
        """Finish every flow whose last byte has left by now; return how many."""
        now = self.env.now
        due = np.flatnonzero(self._due_at <= now + 4 * np.spacing(now))
        if due.size == 0:
            return 0
        for slot in due.tolist():
            flow = self._slot_flow[slot]
            self._slot_flow[slot] = None
            flow.tx_end_s = now
            self._deliver(flow, flow.latency_s)
        self._mirrored.difference_update(due.tolist())
        self._finish[due] = self._due_at[due] = math.inf
        self._rate[due] = 0.0
        self._free.extend(due.tolist())
        self._changed.append(self._pairs.remove(due))
        return due.size

    def _start(self, flows: list[Flow]) -> None:
        """Route newly submitted flows and add the non-empty ones to the sharing. A mirrored
        flow that repeats an earlier one (same hops, keys and parts: the next microbatch's
        copies) reuses its routes, as a connection keeps its path."""
        now = self.env.now
        src, dst, hashes = [], [], []  # as _requests, inline: this runs for every new flow
        cached: dict[int, tuple] = {}
        signatures: dict[int, tuple] = {}
        for f in flows:
            if f.parts is not None:
                sig = (tuple(tuple(h) for h in f.hops), f.key if f.hop_keys is None
                       else tuple(f.hop_keys), f.parts)
                hit = self._mirror_routes.get(sig)
                if hit is not None:
                    cached[f.id] = hit
                    continue
                signatures[f.id] = sig
            for h, hop in enumerate(f.hops):
                ends = (hop[0][0], hop[-1][1]) if hop else (0, 0)
                fkey = f.key if f.hop_keys is None else f.hop_keys[h]
                for i, (s, d, k) in enumerate(hop):
                    src.append(s)
                    dst.append(d)
                    hashes.append(self._hash(ends, i, k, fkey))
        paths = self._paths(src, dst, hashes) if src else []
        latency = self.links.latency_s
        slots, routed = [], []
        at = 0
        for flow in flows:
            hit = cached.get(flow.id)
            if hit is not None:
                flow.links, flow.latency_s, flow.part_links = hit
            else:
                hop_links = []
                flow.latency_s = 0.0
                for hop in flow.hops:
                    parts = paths[at:at + len(hop)]
                    at += len(hop)
                    links = parts[0] if len(parts) == 1 else (
                        np.concatenate(parts) if parts else np.empty(0, dtype=np.int64))
                    hop_links.append(links)
                    flow.latency_s = max(flow.latency_s, float(latency[links].sum()))
                if flow.parts is not None:
                    self._mirror_parts(flow, hop_links)
                flow.links = hop_links[0] if len(hop_links) == 1 else np.concatenate(hop_links)
                if flow.id in signatures:
                    self._mirror_routes[signatures[flow.id]] = (flow.links, flow.latency_s,
                                                                flow.part_links)
            path = flow.links
            flow.hops = []  # routed: the request is no longer needed
            if flow.nbytes == 0:
                flow.tx_end_s = now
                self._deliver(flow, flow.latency_s)
                continue
            if not self._free:
                self._grow(2 * self._slots)
            slot = self._free.pop()
            self._slot_flow[slot] = flow
            if flow.parts is not None:
                self._mirrored.add(slot)
            self._rem[slot] = self._size[slot] = flow.nbytes
            self._rate[slot] = 0.0
            self._since[slot] = now
            slots.append(slot)
            routed.append(path)
        if slots:
            self._changed.append(self._pairs.add(np.array(slots, dtype=np.int64), routed))

    def _on_update(self, _event: simpy.Event) -> None:
        self._update = None
        self._complete_due()
        pending, self._pending = self._pending, []
        if pending:
            self._start(pending)
        if not self._changed:
            self._arm_timer()
            return
        changed = np.unique(np.concatenate(self._changed))
        self._changed = []
        now = self.env.now
        slots = self._pairs.component(changed)
        links = changed
        if slots.size:
            self.recomputations += 1
            self.rates_computed += slots.size
            pair_flow, pair_links = self._pairs.pairs_of(slots)
            present = np.zeros(len(self._link_rate), dtype=bool)
            present[pair_links] = True
            used = np.flatnonzero(present)  # the component's links, and each pair's index in them
            pair_link = (np.cumsum(present) - 1)[pair_links]
            rates = maxmin_rates(pair_flow, pair_link, self.links.bandwidth_Bps[used], slots.size)
            differs = rates != self._rate[slots]  # an unchanged rate keeps its finish time
            moved, new = slots[differs], rates[differs]
            self._rem[moved] = np.maximum(
                self._rem[moved] - self._rate[moved] * (now - self._since[moved]), 0.0)
            self._since[moved] = now
            self._rate[moved] = new
            self._finish[moved] = now + self._rem[moved] / new
            # finished once the bytes left are within EPS_REL of the size
            self._due_at[moved] = self._finish[moved] - EPS_REL * self._size[moved] / new
            load = np.bincount(pair_link, weights=rates[pair_flow], minlength=used.size)
            if self._mirrored:
                self._certify(slots, rates, pair_flow, pair_link, used, load)
            links = np.union1d(changed, used)
            new_rate = np.zeros(links.size)
            new_rate[np.searchsorted(links, used)] = load
        else:
            new_rate = np.zeros(links.size)
        self._set_link_rates(links, new_rate, now)
        self._arm_timer()

    def _mirror_parts(self, flow: Flow, hop_links: list[np.ndarray]) -> None:
        """Split a mirrored flow's routed hops into its parts; their latencies must agree."""
        latency = self.links.latency_s
        parts, at, lat = [], 0, []
        for n in flow.parts:
            links = hop_links[at:at + n]
            at += n
            parts.append(np.concatenate(links))
            lat.append(max(float(latency[x].sum()) for x in links))
        if max(lat) != min(lat):  # exactly: the copies must end at the same instant
            raise SymmetryBroken(f"mirrored flow {flow.tag}: its copies' path latencies differ "
                                 f"({min(lat):.6g} s to {max(lat):.6g} s)")
        # the parts' links end to end, and where each part starts (for _certify)
        starts = np.cumsum([0] + [p.size for p in parts[:-1]])
        flow.part_links = (np.concatenate(parts), starts)

    def _certify(self, slots, rates, pair_flow, pair_link, used, load) -> None:
        """Raise :class:`SymmetryBroken` unless every part of every mirrored flow in ``slots``
        has a bottleneck: a saturated link on which no flow is faster than it."""
        tol = 1e-9
        fastest = np.zeros(used.size)
        np.maximum.at(fastest, pair_link, rates[pair_flow])
        saturated = load >= self.links.bandwidth_Bps[used] * (1 - tol)
        mirrored = np.fromiter(self._mirrored, dtype=np.int64, count=len(self._mirrored))
        bottleneck = np.zeros(len(self._link_rate), dtype=bool)
        for i in np.flatnonzero(np.isin(slots, mirrored)).tolist():
            flow = self._slot_flow[slots[i]]
            bottleneck[used] = saturated & (rates[i] >= fastest * (1 - tol))
            cat, starts = flow.part_links
            held = np.logical_or.reduceat(bottleneck[cat], starts)
            if not held.all():
                p = int(np.flatnonzero(~held)[0])
                raise SymmetryBroken(
                    f"mirrored flow {flow.tag}: copy {p} of {starts.size} would run "
                    "faster on its own (no bottleneck link shared at its rate)")

    def _set_link_rates(self, links: np.ndarray, rates: np.ndarray, now: float) -> None:
        old = self._link_rate[links]
        elapsed = now - self._link_since[links]
        self._link_bytes[links] += old * elapsed
        self._link_busy[links] += np.where(old > 0, elapsed, 0.0)
        self._link_rate[links] = rates
        self._link_since[links] = now
        if self.record_utilisation:
            moved = rates != old
            if moved.any():
                self._series.append((links[moved], now, rates[moved]))
