"""The task graph: what a parallel strategy compiles to and what the engine runs.

A task graph is a list of operations on ranks. Each operation runs on one *stream* of a rank (a
compute stream, one or more communication streams), in the order it was added to that stream, as
CUDA streams do, and starts once its dependencies have finished. Kinds:

- ``compute``: a layer's phase for a microbatch, or an optimizer update; a fixed duration.
- ``transfer``: ``nbytes`` from ``rank`` to ``peer`` over the network (occupies the sender's stream).
- ``collective``: ``collective`` (allreduce, reducescatter, allgather, broadcast, reduce,
  alltoall) of ``nbytes`` per rank over ``group`` with ``algorithm``; it occupies the stream of every
  member and starts when every member has reached it.
- ``delay``: waits ``duration_s`` without using a device (a host-side step), on its own stream.

Strategies never touch simpy; they only build these. Task graphs are plain data and could be
exported or imported (Chakra-style traces).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

OP_KINDS = ("compute", "transfer", "collective", "delay")
COLLECTIVES = ("allreduce", "reducescatter", "allgather", "broadcast", "reduce", "alltoall")


class Op(NamedTuple):
    """One operation of a task graph (see the module docstring for the kinds).

    A named tuple rather than a dataclass: large task graphs hold millions of these, and tuples
    are built several times faster.
    """

    id: int
    kind: str
    rank: int
    stream: str
    deps: tuple[int, ...] = ()
    duration_s: float = 0.0
    nbytes: float = 0.0
    peer: int = -1
    group: tuple[int, ...] = ()
    collective: str = ""
    algorithm: str = ""
    name: str = ""
    phase: str = ""
    microbatch: int = 0
    iteration: int = 0
    flops: float = 0.0


@dataclass
class TaskGraph:
    """Operations in insertion order; ``ops[i].id == i``. ``ranks`` ranks take part."""

    ranks: int
    ops: list[Op] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ops)

    def add(self, kind: str, rank: int, stream: str, *, deps: Iterable[int] = (), **fields) -> int:
        """Append an operation; returns its id. Dependencies must already exist (no cycles)."""
        op_id = len(self.ops)
        deps = tuple(deps)
        if kind not in OP_KINDS:
            raise ValueError(f"unknown op kind {kind!r}")
        if not 0 <= rank < self.ranks and kind != "collective":
            raise ValueError(f"rank {rank} outside 0..{self.ranks - 1}")
        if deps and not (0 <= min(deps) and max(deps) < op_id):
            raise ValueError(f"op {op_id} depends on an op that does not exist yet: {deps}")
        self.ops.append(Op(id=op_id, kind=kind, rank=rank, stream=stream, deps=deps, **fields))
        return op_id

    def compute(self, rank: int, duration_s: float, *, deps: Iterable[int] = (),
                stream: str = "compute", **fields) -> int:
        if duration_s < 0:
            raise ValueError("a duration cannot be negative")
        return self.add("compute", rank, stream, deps=deps, duration_s=duration_s, **fields)

    def compute_sequence(self, rank: int, template: Sequence[tuple[float, str, str, float]], *,
                         iteration: int, microbatch: int = 0, deps: Iterable[int] = (),
                         stream: str = "compute") -> range:
        """Append one compute op per ``(duration_s, name, phase, flops)`` of ``template`` on
        ``rank``, in order; the first waits for ``deps``. Returns the new ids (a fast path for
        the many identical passes of data-parallel workers)."""
        if not 0 <= rank < self.ranks:
            raise ValueError(f"rank {rank} outside 0..{self.ranks - 1}")
        deps = tuple(deps)
        start = len(self.ops)
        if deps and not (0 <= min(deps) and max(deps) < start):
            raise ValueError(f"op {start} depends on an op that does not exist yet: {deps}")
        append = self.ops.append
        for i, (duration, name, phase, flops) in enumerate(template):
            append(Op(start + i, "compute", rank, stream, deps if i == 0 else (), duration, 0.0,
                      -1, (), "", "", name, phase, microbatch, iteration, flops))
        return range(start, len(self.ops))

    def transfer(self, src: int, dst: int, nbytes: float, *, deps: Iterable[int] = (),
                 stream: str = "comm", **fields) -> int:
        if not 0 <= dst < self.ranks:
            raise ValueError(f"peer rank {dst} outside 0..{self.ranks - 1}")
        return self.add("transfer", src, stream, deps=deps, nbytes=float(nbytes), peer=dst,
                        **fields)

    def collective(self, collective: str, group: Sequence[int], nbytes: float, *,
                   algorithm: str, deps: Iterable[int] = (), stream: str = "comm",
                   **fields) -> int:
        if collective not in COLLECTIVES:
            raise ValueError(f"unknown collective {collective!r}")
        group = tuple(group)
        if not group or len(set(group)) != len(group):
            raise ValueError("a collective needs distinct member ranks")
        if any(not 0 <= r < self.ranks for r in group):
            raise ValueError("collective member outside the ranks")
        return self.add("collective", group[0], stream, deps=deps, nbytes=float(nbytes),
                        group=group, collective=collective, algorithm=algorithm, **fields)

    def delay(self, rank: int, duration_s: float, *, deps: Iterable[int] = (),
              stream: str = "host", **fields) -> int:
        return self.add("delay", rank, stream, deps=deps, duration_s=duration_s, **fields)

    def streams(self) -> dict[tuple[int, str], list[int]]:
        """``{(rank, stream): [op ids in order]}``; a collective appears on every member's stream."""
        out: dict[tuple[int, str], list[int]] = {}
        for op in self.ops:
            members = op.group if op.kind == "collective" else (op.rank,)
            for r in members:
                out.setdefault((r, op.stream), []).append(op.id)
        return out
