"""Routes for flows: shortest paths on the topology, spread over equal-cost paths by a policy.

For each destination the router computes once (vectorised over every destination a batch needs,
see :func:`topologies.paths.distances`) which directed links lie on some least-cost route to it:
link ``u -> v`` does when ``cost(u -> v) + dist(v) == dist(u)``. Those links form a DAG towards the
destination. A flow's path walks the DAG from its source; where several next hops tie, the
fabric's routing policy (graph attribute ``routing``) picks one:

- ``ecmp`` (Ethernet, RoCE): a 64-bit hash of ``(seed, src, dst, key)`` mixed with the hop number,
  where ``key`` names the flow's connection (a collective's group and channel, a stream's peer),
  never the iteration: a connection keeps its path for its lifetime, as a 5-tuple hash does, and
  different connections collide on a link as hashed flows do;
- ``dmodk`` (InfiniBand fat trees and Clos fabrics): destination-based, deterministic. At the
  ``h``-th tied hop with ``c`` choices the route takes choice ``(d // P) mod c``, where ``d`` is the
  destination's host-port number (passed in place of the hash: the key of the NIC a segment
  leads to, which may be the segment's end or the NIC behind it) and ``P`` the product of the
  choice counts of the hops before
  (Zahavi's D-mod-K; OpenSM's fat-tree routing engine spreads destinations over uplinks the same
  way). Every flow to one destination follows one tree, so a shift permutation (a ring) crosses
  each uplink once;
- ``shortest``: always the first tied next hop (lowest link number): one fixed path per pair.

The path depends only on the flow's endpoints, key and the policy, never on submission order or
on other flows. Walking is vectorised over all the flows of a batch, one numpy step per hop.
"""
from __future__ import annotations

import hashlib

import numpy as np

from simulator.errors import UnknownNameError
from topologies.paths import LinkArrays, inf_of, relay_and_distances
from topologies.schema import ROUTINGS
_CACHE_LIMIT = 1 << 18  # cached paths; the cache is emptied when full (paths are pure functions)
_MASK64 = (1 << 64) - 1


def flow_hash(seed: int, src: int, dst: int, tag) -> int:
    """Stable 64-bit hash of a flow's ECMP key (Python's ``hash`` of ``str`` varies per process)."""
    text = f"{seed}|{src}|{dst}|{tag!r}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _mix(h: np.ndarray, step: int) -> np.ndarray:
    """splitmix64 finaliser of ``h + step``: a well-spread choice per hop from one flow hash."""
    with np.errstate(over="ignore"):
        z = h + np.uint64((step + 1) * 0x9E3779B97F4A7C15 & _MASK64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class Router:
    """Least-cost routes with ECMP over a :class:`~topologies.paths.LinkArrays` view of a graph."""

    def __init__(self, arrays: LinkArrays, *, seed: int = 0, routing: str = "ecmp") -> None:
        if routing not in ROUTINGS:
            raise UnknownNameError("routing", routing, list(ROUTINGS), field="routing")
        self.arrays = arrays
        self.seed = seed
        self.routing = routing
        n = len(arrays.nodes)
        self._column = np.full(n, -1, dtype=np.int64)  # node -> column of self._on_route
        self._on_route = np.zeros((len(arrays.link_src), 8), dtype=bool)
        self._columns = 0
        self._degree = np.diff(np.append(arrays.starts, len(arrays.link_src)))
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def paths(self, srcs: list[int], dsts: list[int], hashes: list[int]) -> list[np.ndarray]:
        """The path (directed link ids, in order) of each flow, cached per (src, dst, hash)."""
        keys = list(zip(srcs, dsts, hashes))
        found = [self._cache.get(key) for key in keys]
        missing = [i for i, path in enumerate(found) if path is None]
        if missing:
            links, offsets = self.routes(np.array([srcs[i] for i in missing]),
                                         np.array([dsts[i] for i in missing]),
                                         np.array([hashes[i] for i in missing], dtype=np.uint64))
            if len(self._cache) + len(missing) > _CACHE_LIMIT:
                self._cache.clear()
            for j, i in enumerate(missing):
                path = links[offsets[j]:offsets[j + 1]]
                path.flags.writeable = False
                found[i] = self._cache[keys[i]] = path
        return found

    def prepare(self, dsts: np.ndarray) -> None:
        """Compute the route DAGs of the destinations in ``dsts`` that have none yet."""
        new = np.unique(np.asarray(dsts, dtype=np.int64))
        new = new[self._column[new] < 0]
        if new.size == 0:
            return
        a = self.arrays
        relay, dist = relay_and_distances(a, new)
        inf = inf_of(dist)
        cost = a.cost_ns.astype(dist.dtype)[:, None]
        on = np.empty((len(a.link_src), len(new)), dtype=bool)
        block = max(1, 2 ** 23 // max(1, len(a.link_src)))
        for lo in range(0, len(new), block):
            cols = slice(lo, lo + block)
            into = dist[a.link_src, cols]
            on[:, cols] = (cost + relay[a.link_dst, cols] == into) & (into < inf)
        need = self._columns + len(new)
        if need > self._on_route.shape[1]:
            grown = np.zeros((len(a.link_src), max(need, 2 * self._on_route.shape[1])), dtype=bool)
            grown[:, :self._columns] = self._on_route[:, :self._columns]
            self._on_route = grown
        self._on_route[:, self._columns:need] = on
        self._column[new] = np.arange(self._columns, need)
        self._columns = need

    def routes(self, srcs: np.ndarray, dsts: np.ndarray, hashes: np.ndarray):
        """Paths of many flows at once, as CSR: ``(links, offsets)``; flow ``i`` crosses
        ``links[offsets[i]:offsets[i + 1]]`` in order. Every ``src != dst`` must be reachable.
        """
        a = self.arrays
        srcs = np.asarray(srcs, dtype=np.int64)
        dsts = np.asarray(dsts, dtype=np.int64)
        self.prepare(dsts)
        cols = self._column[dsts]
        cur = srcs.copy()
        hashes = np.asarray(hashes, dtype=np.uint64)
        step_flows, step_links = [], []
        active = np.nonzero(cur != dsts)[0]
        step = 0
        if self.routing == "dmodk":
            dkey = hashes.astype(np.int64)
            spread = np.ones(len(srcs), dtype=np.int64)  # P: choices taken so far, multiplied
        while active.size:
            u = cur[active]
            deg = self._degree[u]
            owner = np.repeat(np.arange(active.size), deg)
            first = np.cumsum(deg) - deg
            cand = a.order[np.repeat(a.starts[u], deg) + np.arange(owner.size) - first[owner]]
            ok = self._on_route[cand, cols[active][owner]]
            ok_pos = np.nonzero(ok)[0]
            ok_owner = owner[ok_pos]
            count = np.bincount(ok_owner, minlength=active.size)
            if (count == 0).any():
                bad = active[np.argmin(count)]
                raise ValueError(f"no route from {a.nodes[srcs[bad]]!r} to {a.nodes[dsts[bad]]!r}")
            if self.routing == "ecmp":
                pick = (_mix(hashes[active], step) % count.astype(np.uint64)).astype(np.int64)
            elif self.routing == "dmodk":
                pick = (dkey[active] // spread[active]) % count
                spread[active] = np.where(count > 1, np.minimum(spread[active] * count, 1 << 40),
                                          spread[active])
            else:
                pick = np.zeros(active.size, dtype=np.int64)
            chosen = cand[ok_pos[np.searchsorted(ok_owner, np.arange(active.size)) + pick]]
            step_flows.append(active)
            step_links.append(chosen)
            cur[active] = a.link_dst[chosen]
            active = active[cur[active] != dsts[active]]
            step += 1
        if not step_flows:
            return np.empty(0, dtype=np.int64), np.zeros(len(srcs) + 1, dtype=np.int64)
        flows = np.concatenate(step_flows)
        links = np.concatenate(step_links)
        order = np.argsort(flows, kind="stable")
        offsets = np.zeros(len(srcs) + 1, dtype=np.int64)
        np.cumsum(np.bincount(flows, minlength=len(srcs)), out=offsets[1:])
        return links[order], offsets
