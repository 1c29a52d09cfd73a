"""Which flow crosses which link: the (flow, link) pairs of the active flows, indexed both ways.

The network's rate update must touch only the flows connected to what changed, so this structure
answers "the flows on these links" and "the links of these flows" in time proportional to the
answer, not to the number of active flows:

- pairs are stored in insertion order, each flow's pairs contiguous (``start``/``length`` per
  flow slot), so a flow's links are one slice;
- a CSR index sorts the pairs by link; pairs added since the last rebuild sit in a short unsorted
  tail that searches scan directly, and the index is rebuilt when the tail grows past a fraction
  of all pairs (amortised O(log P) per pair);
- removed flows leave dead pairs behind, skipped on reads and dropped by a compaction once they
  are half of the store.
"""
from __future__ import annotations

import numpy as np

_MAX_ROUNDS = 64  # breadth-first rounds before a search gives up and returns every flow
_REINDEX_TAIL = 1024  # unindexed pairs tolerated (or a quarter of the live ones, if more)
_COMPACT_DEAD = 4096  # dead pairs tolerated (or half of the store, if more)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each ``(s, n)``."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return shift + np.arange(total)


class Incidence:
    """The (flow slot, directed link) pairs of the active flows."""

    def __init__(self, n_links: int) -> None:
        self.n_links = n_links
        self.slot = np.empty(1024, dtype=np.int64)   # pair -> flow slot
        self.link = np.empty(1024, dtype=np.int64)   # pair -> link
        self.alive = np.zeros(1024, dtype=bool)
        self.size = 0                                # pairs stored, dead ones included
        self.dead = 0
        self.start = np.zeros(64, dtype=np.int64)    # slot -> first pair
        self.length = np.zeros(64, dtype=np.int64)   # slot -> number of pairs (0: inactive)
        self._by_link = np.empty(0, dtype=np.int64)  # CSR: pair ids sorted by link
        self._link_start = np.zeros(n_links + 1, dtype=np.int64)
        self._indexed = 0                            # pairs [0, _indexed) are in the CSR

    # ------------------------------------------------------------------ updates
    def add(self, slots: np.ndarray, paths: list[np.ndarray]) -> np.ndarray:
        """Add flows ``slots[i]`` crossing ``paths[i]``; return the links they cross."""
        lengths = np.array([p.size for p in paths], dtype=np.int64)
        links = np.concatenate(paths) if paths else np.empty(0, dtype=np.int64)
        need = self.size + links.size
        if need > self.slot.size:
            cap = max(need, 2 * self.slot.size)
            for name in ("slot", "link", "alive"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[:self.size] = old[:self.size]
                setattr(self, name, new)
        if slots.size and slots.max() >= self.start.size:
            cap = max(int(slots.max()) + 1, 2 * self.start.size)
            self.start = np.concatenate([self.start, np.zeros(cap - self.start.size, np.int64)])
            self.length = np.concatenate([self.length,
                                          np.zeros(cap - self.length.size, np.int64)])
        self.start[slots] = self.size + np.cumsum(lengths) - lengths
        self.length[slots] = lengths
        self.slot[self.size:need] = np.repeat(slots, lengths)
        self.link[self.size:need] = links
        self.alive[self.size:need] = True
        self.size = need
        return links

    def remove(self, slots: np.ndarray) -> np.ndarray:
        """Remove flows ``slots``; return the links they crossed."""
        pairs = _ranges(self.start[slots], self.length[slots])
        links = self.link[pairs]
        self.alive[pairs] = False
        self.length[slots] = 0
        self.dead += pairs.size
        if self.dead > _COMPACT_DEAD and 2 * self.dead > self.size:
            self._compact()
        return links

    def pairs_of(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(local_flow, link)`` pairs of ``slots``; ``local_flow`` indexes into ``slots``."""
        lengths = self.length[slots]
        pairs = _ranges(self.start[slots], lengths)
        return np.repeat(np.arange(slots.size), lengths), self.link[pairs]

    def active(self) -> np.ndarray:
        """Slots of all active flows, sorted."""
        return np.nonzero(self.length)[0]

    # ------------------------------------------------------------------ search
    def component(self, links: np.ndarray) -> np.ndarray:
        """Sorted slots of the flows connected to ``links`` through shared links.

        Breadth-first over the flow-link graph; each round costs what it visits. After
        ``_MAX_ROUNDS`` rounds (long chains of flows) it returns every active flow instead, which is
        always a correct superset for a rate update.
        """
        if self.size - self._indexed > max(_REINDEX_TAIL, (self.size - self.dead) // 4):
            self._reindex()
        tail = np.arange(self._indexed, self.size)
        tail = tail[self.alive[tail]]
        tail_links = self.link[tail]
        seen_link = np.zeros(self.n_links, dtype=bool)
        seen_flow = np.zeros(self.start.size, dtype=bool)
        frontier = _distinct(np.asarray(links, dtype=np.int64), self._scratch(self.n_links))
        seen_link[frontier] = True
        for _ in range(_MAX_ROUNDS):
            lo = self._link_start[frontier]
            pairs = self._by_link[_ranges(lo, self._link_start[frontier + 1] - lo)]
            if tail.size:
                on_frontier = np.zeros(self.n_links, dtype=bool)
                on_frontier[frontier] = True
                pairs = np.concatenate([pairs, tail[on_frontier[tail_links]]])
            flows = self.slot[pairs[self.alive[pairs]]]
            flows = _distinct(flows[~seen_flow[flows]], self._scratch(self.start.size))
            if flows.size == 0:
                return np.nonzero(seen_flow)[0]
            seen_flow[flows] = True
            reached = self.link[_ranges(self.start[flows], self.length[flows])]
            frontier = _distinct(reached[~seen_link[reached]], self._scratch(self.n_links))
            if frontier.size == 0:
                return np.nonzero(seen_flow)[0]
            seen_link[frontier] = True
        return self.active()

    def _scratch(self, size: int) -> np.ndarray:
        """A reusable integer array of at least ``size`` entries (for :func:`_distinct`)."""
        buf = getattr(self, "_buf", None)
        if buf is None or buf.size < size:
            buf = self._buf = np.zeros(max(size, 2 * (0 if buf is None else buf.size)),
                                       dtype=np.int64)
        return buf

    # ------------------------------------------------------------------ upkeep
    def _reindex(self) -> None:
        live = np.nonzero(self.alive[:self.size])[0]
        order = live[np.argsort(self.link[live], kind="stable")]
        self._by_link = order
        self._link_start = np.searchsorted(self.link[order], np.arange(self.n_links + 1))
        self._indexed = self.size

    def _compact(self) -> None:
        live = self.alive[:self.size]
        rank = np.cumsum(live) - 1  # new id of each live pair
        slots = self.active()
        self.start[slots] = rank[self.start[slots]]
        keep = np.nonzero(live)[0]
        n = keep.size
        self.slot[:n] = self.slot[keep]
        self.link[:n] = self.link[keep]
        self.alive[:n] = True
        self.alive[n:self.size] = False
        self.size, self.dead = n, 0
        self._reindex()


def _distinct(values: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """The distinct entries of ``values`` (in no particular order), in time linear in its size:
    one of each value's positions wins in ``scratch`` (which one does not matter), and only
    that position is kept."""
    if values.size < 2:
        return values
    index = np.arange(values.size)
    scratch[values] = index
    return values[scratch[values] == index]
