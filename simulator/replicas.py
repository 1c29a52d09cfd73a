"""Representative replicas: simulate one rank per symmetric role, price every copy's traffic.

Data-parallel replicas, and the tensor-parallel ranks of one stage, run the same program on the
same kind of device at symmetric places in the topology. Simulating all of them repeats the
same work; simulating one of each and dropping the others' traffic would lose the contention
between them, which is what decides a large run. A representative run does neither:

- **The candidate** comes from the strategy: ``rep_of_rank[r]``, the rank that stands for rank
  ``r`` (its data-parallel and tensor-parallel coordinates set to 0, say). It is only a
  candidate; nothing is assumed.
- **Folding** (:func:`fold`) proves it on the task graph: every stream of every rank must equal
  its representative's stream, operation by operation (kind, duration after jitter, bytes,
  FLOPs, collective and algorithm, names), with dependencies that map to the representative's
  dependencies, collectives whose members all map to one representative collective, and the
  same device; durations must be equal to the last bit. Any difference (a straggler, a
  different device, a rank with another program, jitter, an unordered stream or a quorum)
  refuses the fold, with the first difference as the reason.
- **Running** the folded graph keeps only the representatives' operations, but every
  transfer and every collective still moves the bytes of all its copies: the copies of a
  transfer go out as one *mirrored* flow over all their routes, the copies of a collective are
  planned one by one and run phase by phase as mirrored flows
  (:meth:`~simulator.network.Network.transfer_group` with ``parts``). So the fabric carries
  exactly the full run's traffic, and the contention between groups stays.
- **Certifying**: a mirrored flow runs its copies at one rate. The network checks at every rate
  change that each copy has a bottleneck link of its own (saturated, no faster flow on it),
  the max-min condition, so the rates are the ones separate flows would get; and that the
  copies' latencies and collective plans agree. If not (an oversubscribed fabric whose groups
  see different loads, a hashed fabric where some copies collide), the run raises
  :class:`~simulator.errors.SymmetryBroken` and :func:`~simulator.simulate.simulate` runs it
  in full (``fidelity: auto``) or refuses (``fidelity: replicas``).

Where the fold holds and the run is certified, every operation of the full run ends when its
representative does (by induction over the operations in time order: same start, same
duration, same rates), so the iteration time is the full simulation's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from simulator.taskgraph import Op, TaskGraph

#: ``system.fidelity``: ``auto`` folds runs of at least :data:`AUTO_MIN_RANKS` ranks when it can,
#: ``replicas`` folds or refuses, ``full`` simulates every rank.
FIDELITIES = ("auto", "full", "replicas")
#: Below this many ranks ``auto`` simulates every rank (it is cheap, and gives every timeline).
AUTO_MIN_RANKS = 256


@dataclass
class Folded:
    """A folded task graph and what it stands for.

    ``taskgraph`` holds the representatives' operations (new ids, in the original order);
    ``original[i]`` is the full graph's id of folded op ``i``; ``rep_of_op[j]`` maps every op of
    the full graph to its representative's *full-graph* id; ``rep_of_rank`` as given;
    ``mirrors[i]`` lists, for a folded transfer or collective, the full graph's copies of it
    (itself included); ``arrivals[i]`` is how many representative ranks join collective ``i``.
    """

    taskgraph: TaskGraph
    original: list[int]
    rep_of_op: np.ndarray
    rep_of_rank: np.ndarray
    mirrors: dict[int, list[Op]] = field(default_factory=dict)
    arrivals: dict[int, int] = field(default_factory=dict)
    #: True when a strategy emitted the representatives directly (no full graph was built)
    emitted: bool = False

    @property
    def ranks(self) -> list[int]:
        """The representative ranks."""
        return sorted({int(r) for r in self.rep_of_rank})

    @property
    def copies(self) -> int:
        """Ranks per representative (the most of any)."""
        return int(np.bincount(self.rep_of_rank).max())


class FoldRefused(Exception):
    """Why a candidate does not fold (internal; :func:`fold` returns the reason)."""


def fold(tg: TaskGraph, rep_of_rank: Sequence[int], durations: np.ndarray,
         devices: Sequence[str]) -> Folded | str:
    """Fold ``tg`` onto the representatives ``rep_of_rank`` (see the module docstring), or
    return the reason it does not fold. ``durations`` are the engine's (jitter included),
    ``devices[r]`` names rank r's device."""
    try:
        return _fold(tg, np.asarray(rep_of_rank, dtype=np.int64), durations, devices)
    except FoldRefused as exc:
        return str(exc)


def _fold(tg: TaskGraph, rep: np.ndarray, durations: np.ndarray, devices) -> Folded:
    n = tg.ranks
    if rep.shape != (n,) or rep.min() < 0 or rep.max() >= n or np.any(rep[rep] != rep):
        raise FoldRefused("the strategy's representative map is not a partition of the ranks")
    if tg.meta.get("quorum") or tg.meta.get("unordered_streams"):
        raise FoldRefused("quorum operations or unordered streams (a parameter server's) are "
                          "not replicated")
    for r in range(n):
        if devices[r] != devices[rep[r]]:
            raise FoldRefused(f"rank {r} runs on a {devices[r]}, its representative "
                              f"{int(rep[r])} on a {devices[rep[r]]}")
    ops = tg.ops
    streams = tg.streams()
    image = np.full(len(ops), -1, dtype=np.int64)
    for (rank, stream), ids in streams.items():
        mine = streams.get((int(rep[rank]), stream))
        if mine is None or len(mine) != len(ids):
            raise FoldRefused(f"rank {rank}'s {stream} stream has {len(ids)} operations, its "
                              f"representative's {0 if mine is None else len(mine)}")
        if mine is ids:
            for o in ids:
                if image[o] >= 0 and image[o] != o:
                    raise FoldRefused(f"operation {ops[o]} stands for two representatives")
                image[o] = o
            continue
        for o, o0 in zip(ids, mine):
            if image[o] >= 0 and image[o] != o0:
                raise FoldRefused(f"collective {_what(ops[o])} maps to two representatives")
            image[o] = o0
    if np.any(image[image] != image):
        bad = int(np.flatnonzero(image[image] != image)[0])
        raise FoldRefused(f"collective {_what(ops[int(image[bad])])} is not its own "
                          "representative")
    for o, o0 in enumerate(image.tolist()):
        if o == o0:
            continue
        a, b = ops[o], ops[o0]
        if (a.kind, a.nbytes, a.collective, a.algorithm, a.name, a.phase, a.microbatch,
                a.iteration, a.flops, len(a.group)) != (b.kind, b.nbytes, b.collective,
                                                        b.algorithm, b.name, b.phase,
                                                        b.microbatch, b.iteration, b.flops,
                                                        len(b.group)):
            raise FoldRefused(f"rank {a.rank}'s {_what(a)} differs from its representative's "
                              f"{_what(b)}")
        if durations[o] != durations[o0]:  # exactly: a last-bit difference is a difference
            raise FoldRefused(f"rank {a.rank}'s {_what(a)} takes {durations[o]:.9g} s, its "
                              f"representative's {durations[o0]:.9g} s")
        if a.deps != b.deps and {image[d] for d in a.deps} != {image[d] for d in b.deps}:
            raise FoldRefused(f"rank {a.rank}'s {_what(a)} waits for other operations than its "
                              "representative's")
        if a.kind == "transfer" and a.peer != a.rank and rep[a.peer] != rep[b.peer]:
            raise FoldRefused(f"rank {a.rank}'s {_what(a)} goes to rank {a.peer}, its "
                              f"representative's to rank {b.peer}")
    return _build(tg, image, rep)


def _build(tg: TaskGraph, image: np.ndarray, rep: np.ndarray) -> Folded:
    ops = tg.ops
    keep = np.flatnonzero(image == np.arange(len(ops)))
    new_id = np.full(len(ops), -1, dtype=np.int64)
    new_id[keep] = np.arange(keep.size)
    folded = TaskGraph(ranks=tg.ranks, meta=dict(tg.meta))
    mirrors: dict[int, list[Op]] = {}
    for o in range(len(ops)):
        op = ops[o]
        if op.kind in ("transfer", "collective") and op.nbytes > 0:
            mirrors.setdefault(int(new_id[image[o]]), []).append(op)
    arrivals = {}
    out = folded.ops
    for i, o in enumerate(keep.tolist()):
        op = ops[o]
        deps = tuple(sorted({int(new_id[image[d]]) for d in op.deps}))
        out.append(op._replace(id=i, deps=deps))
        if op.kind == "collective":
            arrivals[i] = sum(1 for r in op.group if rep[r] == r)
    mirrors = {i: m for i, m in mirrors.items() if len(m) > 1}
    return Folded(taskgraph=folded, original=keep.tolist(), rep_of_op=image, rep_of_rank=rep,
                  mirrors=mirrors, arrivals=arrivals)


def _what(op: Op) -> str:
    return f"{op.kind} {op.name or op.collective} ({op.phase}, iteration {op.iteration}, " \
           f"microbatch {op.microbatch})"


def translations(shape: Sequence[int], axes: Sequence[int]) -> np.ndarray:
    """``rep_of_rank`` for ranks numbered in mixed radix ``shape`` (outermost first): each
    rank's representative has its coordinates on ``axes`` set to 0. ``translations((pp, dp,
    tp), (1, 2))`` keeps one rank per pipeline stage."""
    coords = np.indices(tuple(shape)).reshape(len(shape), -1)
    for a in axes:
        coords[a] = 0
    return np.ravel_multi_index(tuple(coords), tuple(shape)).astype(np.int64)
