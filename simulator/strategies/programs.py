"""What one rank of a pipeline stage runs for one microbatch: its forward and backward *programs*.

A program is a list of steps, built once per virtual stage and replayed for every microbatch and
every rank of the stage:

- ``Compute(template)``: consecutive compute operations, ``(seconds, name, phase, flops)`` each,
  the format of :meth:`simulator.taskgraph.TaskGraph.compute_sequence`;
- ``Collective(collective, nbytes, name, phase)``: a tensor-parallel collective over the rank's
  tensor-parallel group, on the compute stream (it is on the critical path);
- ``UnitMark(unit, start)``: the start or end of a partition unit (only when ZeRO-3 gathers and
  scatters parameters unit by unit);
- ``CommBlock(collectives, name, phase)``: several tensor-parallel collectives run back to back
  (``granularity='pass'`` only).

Forward: each layer's forward, with the collectives of :mod:`~simulator.strategies.tensor_parallel`
before and after it. Backward, unit by unit from the last: the unit's recomputation (phase
``recompute``: with ``full`` the forward of every layer of a unit that is a Block, tensor-parallel
collectives included, as Megatron-LM's checkpointed layers re-run their forward; with
``selective`` the attention cores only, Korthikanti et al. 2022, section 5), then each layer's
backward-data and backward-filter in reverse order with its collectives.

Granularity (``GRANULARITIES``):

- ``layer``: one compute operation per layer and phase.
- ``fused``: consecutive compute operations of the same kind (forward, recompute, backward)
  between two collectives become one operation of the summed duration and FLOPs: the engine
  would run them back to back anyway, so every time in the timeline but the inner layer
  boundaries is unchanged, at a fraction of the operations.
- ``pass``: for each kind of work in a pass (forward; recompute; backward) one compute operation,
  then one ``CommBlock`` holding all the pass's tensor-parallel collectives (phase
  ``tp_forward`` or ``tp_backward``, recomputation's included). When those collectives are
  fixed-duration stand-ins (``tp_comm='isolated'``) and nothing depends on a point inside a pass,
  the pass starts and ends at the same instants as with ``layer``; only the order inside the
  pass is lost. The compiler allows it only then.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

from simulator.strategies.tensor_parallel import TPLayer

Entry = tuple[float, str, str, float]


class Compute(NamedTuple):
    template: tuple[Entry, ...]


class Collective(NamedTuple):
    collective: str
    nbytes: float
    name: str
    phase: str


class UnitMark(NamedTuple):
    unit: int
    start: bool


class CommBlock(NamedTuple):
    collectives: tuple[tuple[str, float], ...]
    name: str
    phase: str


GRANULARITIES = ("fused", "layer", "pass")


@dataclass
class StageProgram:
    """Programs of one virtual stage on one rank.

    ``grad_ready``: ``(layer index, op position, gradient bytes)`` for each layer with parameters,
    in backward order, the position counting the operations the backward program emits on one
    rank (a collective counts once) after which that layer's gradient is complete.
    """

    layers: tuple[int, ...]
    units: tuple[int, ...]
    forward: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    grad_ready: list[tuple[int, int, float]] = field(default_factory=list)
    forward_ops: int = 0
    backward_ops: int = 0


@dataclass(frozen=True)
class LayerTimes:
    """Per-layer seconds and FLOPs of one rank (tensor-parallel share applied)."""

    forward_s: Sequence[float]
    backward_data_s: Sequence[float]
    backward_filter_s: Sequence[float]
    flops: Sequence[dict]


class _Builder:
    def __init__(self, fuse: bool) -> None:
        self.fuse = fuse
        self.steps: list = []
        self.buffer: list[Entry] = []
        self.ops = 0
        self.pending_ready: list[tuple[int, float]] = []
        self.ready: list[tuple[int, int, float]] = []

    def compute(self, entry: Entry) -> None:
        if self.buffer and self.fuse and _kind(self.buffer[-1][2]) != _kind(entry[2]):
            self.flush()
        self.buffer.append(entry)

    def collective(self, step: Collective) -> None:
        self.flush()
        self.steps.append(step)
        self.ops += 1

    def mark(self, mark: UnitMark) -> None:
        self.flush()
        self.steps.append(mark)

    def grad(self, layer: int, nbytes: float) -> None:
        """The gradient of ``layer`` is complete once everything added so far has run."""
        if self.buffer and self.fuse:  # ready at the end of the merged operation
            self.pending_ready.append((layer, nbytes))
        else:
            self.ready.append((layer, max(self.ops + len(self.buffer) - 1, 0), nbytes))

    def flush(self) -> None:
        if not self.buffer:
            return
        if self.fuse:
            merged = _merge(self.buffer)
            self.steps.append(Compute((merged,)))
            position = self.ops
            self.ops += 1
            self.ready.extend((layer, position, b) for layer, b in self.pending_ready)
        else:
            self.steps.append(Compute(tuple(self.buffer)))
            self.ops += len(self.buffer)
        self.pending_ready = []
        self.buffer = []

    def finish(self, name: str, phase: str) -> list:
        self.flush()
        if not self.ops:  # a pass always has one operation, for the others to depend on
            self.steps.insert(0, Compute(((0.0, name, phase, 0.0),)))
            self.ops = 1
        return self.steps


def _does(layer, phase: str) -> bool:
    """Whether ``layer`` has work in ``phase`` (decided from the work, not the device's time, so
    that every rank of a stage gets programs of the same shape)."""
    work = layer.work[phase]
    return bool(work.flops or work.read_elems or work.write_elems)


def _kind(phase: str) -> str:
    return "backward" if phase.startswith("backward") else phase


def _merge(entries: list[Entry]) -> Entry:
    if len(entries) == 1:
        return entries[0]
    phases = {e[2] for e in entries}
    phase = entries[0][2] if len(phases) == 1 else _kind(entries[0][2])
    name = f"{entries[0][1]}..{entries[-1][1]}"
    return (sum(e[0] for e in entries), name, phase, sum(e[3] for e in entries))


def build_program(graph, units: Sequence[Sequence[int]], unit_ids: Sequence[int],
                  plan: Sequence[TPLayer], times: LayerTimes, *, recompute: Sequence[bool],
                  recompute_comm: bool, grad_bytes: Sequence[float], granularity: str,
                  unit_marks: bool) -> StageProgram:
    """The programs of a virtual stage made of ``units`` (layer index lists), ``unit_ids`` their
    indices among all units; ``recompute[i]`` says whether layer i's forward is re-run before
    its backward, ``recompute_comm`` whether the re-run repeats its tensor-parallel collectives
    (full recomputation does, selective recomputation of attention cores has none)."""
    layers = graph.layers
    fuse = granularity != "layer"
    prog = StageProgram(layers=tuple(i for u in units for i in u), units=tuple(unit_ids))
    fwd = _Builder(fuse)
    for uid, unit in zip(unit_ids, units):
        if unit_marks:
            fwd.mark(UnitMark(uid, True))
        _forward(fwd, layers, unit, plan, times, "forward", "tp_forward")
        if unit_marks:
            fwd.mark(UnitMark(uid, False))
    first = layers[prog.layers[0]].name
    prog.forward = fwd.finish(first, "forward")
    prog.forward_ops = fwd.ops
    bwd = _Builder(fuse)
    for uid, unit in reversed(list(zip(unit_ids, units))):
        if unit_marks:
            bwd.mark(UnitMark(uid, True))
        again = [i for i in unit if recompute[i]]
        if again:
            _forward(bwd, layers, again, plan, times, "recompute", "tp_recompute",
                     comm=recompute_comm)
        for i in reversed(unit):
            layer, tpl = layers[i], plan[i]
            for c in tpl.backward_before:
                bwd.collective(Collective(c.collective, c.nbytes, c.layer, "tp_backward"))
            for phase, t in (("backward_data", times.backward_data_s[i]),
                             ("backward_filter", times.backward_filter_s[i])):
                if _does(layer, phase):
                    bwd.compute((t, layer.name, phase, times.flops[i][phase]))
            if grad_bytes[i]:
                bwd.grad(i, grad_bytes[i])
            for c in tpl.backward_after:
                bwd.collective(Collective(c.collective, c.nbytes, c.layer, "tp_backward"))
        if unit_marks:
            bwd.mark(UnitMark(uid, False))
    prog.backward = bwd.finish(layers[prog.layers[-1]].name, "backward_data")
    prog.backward_ops = bwd.ops
    prog.grad_ready = bwd.ready
    if granularity == "pass":
        prog.forward = by_pass(prog.forward)
        prog.backward = by_pass(prog.backward)
        prog.forward_ops, prog.backward_ops = len(prog.forward), len(prog.backward)
        end = prog.backward_ops - 1
        prog.grad_ready = [(layer, end, b) for layer, _, b in prog.grad_ready]
    return prog


def by_pass(steps: list) -> list:
    """``steps`` regrouped: one compute step holding one summed operation per kind of work
    (forward, recompute, backward, in the order they first appear), then one
    :class:`CommBlock` of every collective of the pass."""
    compute: dict[str, list[Entry]] = {}
    comms: list[tuple[str, float]] = []
    first = None
    for step in steps:
        if type(step) is Compute:
            for entry in step.template:
                compute.setdefault(_kind(entry[2]), []).append(entry)
        elif type(step) is Collective:
            comms.append((step.collective, step.nbytes))
            first = first or step
        else:  # pragma: no cover - the compiler refuses 'pass' with ZeRO-3 unit marks
            raise ValueError("granularity 'pass' cannot hold unit marks")
    out: list = [Compute(tuple(_merge(entries) for entries in compute.values()))]
    if comms:
        kinds = {_kind(e[2]) for entries in compute.values() for e in entries}
        phase = "tp_backward" if "backward" in kinds else first.phase
        out.append(CommBlock(tuple(comms), f"{first.name}+{len(comms) - 1}", phase))
    return out


def _forward(builder: _Builder, layers, indices, plan, times, phase: str, comm_phase: str, *,
             comm: bool = True) -> None:
    for i in indices:
        layer, tpl = layers[i], plan[i]
        if comm:
            for c in tpl.forward_before:
                builder.collective(Collective(c.collective, c.nbytes, c.layer, comm_phase))
        if _does(layer, "forward"):
            builder.compute((times.forward_s[i], layer.name, phase, times.flops[i]["forward"]))
        if comm:
            for c in tpl.forward_after:
                builder.collective(Collective(c.collective, c.nbytes, c.layer, comm_phase))
