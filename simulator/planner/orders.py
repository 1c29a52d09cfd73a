"""The order in which a ring or chain visits the GPUs of one server, following NVLink.

NCCL searches each server's GPU graph for rings and chains that use the fastest links, then
runs as many of them (channels) as the links carry (NCCL documentation, "NCCL_ALGO" and the
topology detection it describes; Jeaugey, "Massively scale your deep learning training with
NCCL 2.4", NVIDIA blog 2019). On an NVSwitch every order is as good as any other; on a
point-to-point NVLink mesh (DGX-1's hybrid cube mesh) only some orders stay on NVLink: the
rank order 0..7 crosses PCIe and the CPU at 3 -> 4 and 7 -> 0.

Two searches, both exact over small servers (they enumerate by depth-first search with
pruning, deterministic in the given GPU order):

- :func:`pack_cycles`: for a ring inside one server, as many directed Hamiltonian cycles as fit
  at one common per-ring bandwidth ``b`` (every directed link carries ``b`` per cycle crossing
  it), choosing the ``b`` that maximises ``cycles x b``: equal-speed channels, so that an even
  split of the buffer over them finishes together.
- :func:`best_path`: a Hamiltonian path between two given GPUs (the GPUs a channel enters and
  leaves a server through) maximising its narrowest link after the capacity that earlier
  channels' paths already took.

``cap(u, v)`` is the one-way bandwidth between two GPUs (:meth:`Topology.link_Bps`): NVLink
bandwidth, or a token 1 byte/s where there is no GPU-to-GPU link, so the searches use PCIe only
where NVLink cannot close the ring.
"""
from __future__ import annotations

from typing import Callable, Hashable, Sequence

Cap = Callable[[Hashable, Hashable], float]
#: Node visits a search may make before it settles for the best order found so far.
SEARCH_BUDGET = 200_000
#: Most channels a ring inside one server is split into (NCCL caps channels at a few dozen).
MAX_CHANNELS = 16


def pack_cycles(nodes: Sequence, cap: Cap, *, max_channels: int = MAX_CHANNELS) -> list[list]:
    """Directed Hamiltonian cycles over ``nodes`` (each a list starting at ``nodes[0]``), all
    at one bandwidth, as many as fit; the packing with the largest total bandwidth wins (ties:
    fewer cycles). Without any packing at a GPU-to-GPU speed (no Hamiltonian cycle of links),
    falls back to one order maximising the narrowest link of its path (the ring's closing hop
    then takes whatever route exists)."""
    nodes = list(nodes)
    n = len(nodes)
    if n <= 2:
        return [nodes]
    capacity = {(u, v): cap(u, v) for u in nodes for v in nodes if u != v}
    speeds = sorted({c / k for c in capacity.values() if c > 1.0 for k in (1, 2, 3, 4)},
                    reverse=True)
    best: tuple[float, int, list] = (0.0, 0, [])
    for b in speeds:
        if b * max_channels <= best[0]:
            break
        residual = dict(capacity)
        cycles = []
        while len(cycles) < max_channels:
            cycle = _cycle_at(nodes, residual, b)
            if cycle is None:
                break
            # a ring and its reverse use each link once in each direction (NCCL pairs rings
            # the same way), which leaves the rest of the mesh whole for the next pair
            for ring in (cycle, [cycle[0]] + cycle[:0:-1]):
                links = list(zip(ring, ring[1:] + ring[:1]))
                if len(cycles) < max_channels and all(residual[l] >= b * (1 - 1e-9)
                                                      for l in links):
                    for l in links:
                        residual[l] -= b
                    cycles.append(ring)
        total = len(cycles) * b
        if cycles and total > best[0] * (1 + 1e-12):
            best = (total, len(cycles), cycles)
    if best[2]:
        return best[2]
    path = best_path(nodes, cap, nodes[0], None, {})
    return [path]


def _cycle_at(nodes: list, residual: dict, b: float) -> list | None:
    """A directed Hamiltonian cycle from ``nodes[0]`` whose every link has ``residual >= b``."""
    start = nodes[0]
    n = len(nodes)
    path = [start]
    used = {start}
    budget = [SEARCH_BUDGET]
    tol = b * 1e-9

    def extend() -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        u = path[-1]
        if len(path) == n:
            return residual[(u, start)] >= b - tol
        # the links with the most capacity left first, so that later cycles still fit
        for v in sorted((v for v in nodes if v not in used), key=lambda v: -residual[(u, v)]):
            if residual[(u, v)] >= b - tol:
                path.append(v)
                used.add(v)
                if extend():
                    return True
                path.pop()
                used.discard(v)
        return False

    return list(path) if extend() else None


def best_path(nodes: Sequence, cap: Cap, start: Hashable, end: Hashable | None,
              taken: dict) -> list:
    """A Hamiltonian path over ``nodes`` from ``start`` (to ``end`` when given) maximising its
    narrowest link, each link's capacity reduced by what ``taken`` records (``(u, v) -> bytes/s``
    already used by earlier channels). Ties go to the path found first in ``nodes`` order."""
    nodes = list(nodes)
    n = len(nodes)
    if n == 1:
        return [start]
    if end is not None and n == 2:
        return [start, end]
    inner = [v for v in nodes if v != start and v != end]
    best: list = [-1.0, None]
    path = [start]
    used = {start}
    budget = [SEARCH_BUDGET]

    def room(u, v) -> float:
        return cap(u, v) - taken.get((u, v), 0.0)

    def extend(narrowest: float) -> None:
        budget[0] -= 1
        if budget[0] < 0 or narrowest <= best[0]:
            return
        u = path[-1]
        if len(path) == len(inner) + 1:
            if end is not None:
                narrowest = min(narrowest, room(u, end))
                if narrowest <= best[0]:
                    return
                best[:] = [narrowest, path + [end]]
            else:
                best[:] = [narrowest, list(path)]
            return
        for v in inner:
            if v not in used:
                path.append(v)
                used.add(v)
                extend(min(narrowest, room(u, v)))
                path.pop()
                used.discard(v)

    extend(float("inf"))
    if best[1] is None:  # the budget ran out before any complete path: take the given order
        return [start] + inner + ([end] if end is not None else [])
    return best[1]


def take(path: Sequence, amount: float, taken: dict) -> None:
    """Record that a channel along ``path`` uses ``amount`` bytes/s on each of its links."""
    for u, v in zip(path, path[1:]):
        taken[(u, v)] = taken.get((u, v), 0.0) + amount
