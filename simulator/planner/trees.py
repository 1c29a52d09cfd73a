"""Double binary trees: two spanning trees in which no rank is an inner node twice.

NCCL's tree all-reduce (NCCL 2.4; Jeaugey, NVIDIA blog 2019, after Sanders, Speck and Traeff,
"Two-tree algorithms for full bandwidth broadcast, reduction and scan", Parallel Computing 2009)
pipelines half of the buffer through each of two binary trees, reducing towards each root and
broadcasting back. A rank that is an inner node (with children) in one tree is a leaf in the
other, so no rank sends or receives more than twice the buffer: on a star of links of bandwidth
B, the all-reduce takes at most 2 S/B.

Construction (the paper's idea, not NCCL's code): tree A's inner nodes are the odd positions
1, 3, 5, ..., tree B's the even ones 0, 2, 4, ...; each tree's inner nodes form a balanced
binary tree in position order (midpoint recursion), and every other position hangs as a leaf on
the nearest inner node with a free child slot. ``k`` inner nodes have ``k + 1`` free slots,
enough for the ``n - k`` leaves in both trees.
"""
from __future__ import annotations


def _balanced(inner: list[int]) -> dict[int, int]:
    """Parent of each inner node (the root maps to -1), as a balanced binary tree in order."""
    parent: dict[int, int] = {}

    def build(lo: int, hi: int, up: int) -> None:
        if lo > hi:
            return
        mid = (lo + hi) // 2
        parent[inner[mid]] = up
        build(lo, mid - 1, inner[mid])
        build(mid + 1, hi, inner[mid])

    build(0, len(inner) - 1, -1)
    return parent


def _tree(n: int, inner: list[int]) -> list[int]:
    parent = _balanced(inner)
    children = {v: 0 for v in inner}
    for v, p in parent.items():
        if p >= 0:
            children[p] += 1
    for leaf in range(n):
        if leaf in parent:
            continue
        free = [v for v in inner if children[v] < 2]
        host = min(free, key=lambda v: (abs(v - leaf), v))
        parent[leaf] = host
        children[host] += 1
    return [parent[i] for i in range(n)]


def double_binary_tree(n: int) -> tuple[list[int], list[int]]:
    """Parents of positions ``0..n-1`` in the two trees (``-1`` marks a root)."""
    if n < 1:
        raise ValueError("a tree needs at least one rank")
    if n == 1:
        return [-1], [-1]
    return _tree(n, list(range(1, n, 2))), _tree(n, list(range(0, n, 2)))


def depth(parents: list[int]) -> int:
    """Edges from the deepest node to the root."""
    def up(v: int) -> int:
        d = 0
        while parents[v] >= 0:
            v = parents[v]
            d += 1
        return d
    return max((up(v) for v in range(len(parents))), default=0)


def max_load(n: int) -> float:
    """The most any position sends (= receives) in a double-binary-tree all-reduce, in units of
    the buffer S: each tree edge carries S/2 up and S/2 down, so a position with ``d`` tree
    neighbours (parent and children) over both trees moves ``d x S/2`` each way."""
    a, b = double_binary_tree(n)
    degree = [0] * n
    for parents in (a, b):
        for v, p in enumerate(parents):
            if p >= 0:
                degree[v] += 1
                degree[p] += 1
    return max(degree) / 2
