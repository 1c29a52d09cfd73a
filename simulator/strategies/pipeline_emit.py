"""Emitting a pipeline-parallel iteration into a task graph: schedules x programs x replicas.

The :class:`Emitter` walks the actions of every pipeline device in a dependency-respecting global
order (:func:`~simulator.strategies.schedules.emission_order`) and, for each action, replays the
virtual stage's program (:mod:`~simulator.strategies.programs`) on every rank of that device (all
data-parallel replicas and tensor-parallel ranks at once, so that collectives over any of their
groups can be built as soon as their members' operations exist). Streams per rank:

=================  ========================================================================
``compute``        the schedule's compute, tensor-parallel collectives (or their ``delay``
                   stand-ins with ``tp_comm='isolated'``), the pipeline all-gather of
                   ``scatter_gather``, the optimizer step
``send_next``      activations to the next stage, in schedule order
``send_prev``      gradients to the previous stage, in schedule order
``dp``             data-parallel gradient reduction, tied-embedding all-reduce, ZeRO-1/2
                   parameter all-gather
``zero_gather``    ZeRO-3 parameter all-gathers, one unit ahead (FSDP's prefetch)
``zero_scatter``   ZeRO-3 gradient reduce-scatters
=================  ========================================================================

Operations carry ``phase``: ``forward``, ``recompute``, ``backward_data``, ``backward_filter``
(or merged ``backward``), ``tp_forward`` / ``tp_recompute`` / ``tp_backward`` for
tensor-parallel collectives, ``pp_forward`` / ``pp_backward`` for stage-to-stage transfers,
``pp_allgather``, ``dp_allreduce`` / ``dp_reducescatter`` / ``dp_allgather``,
``zero_allgather`` / ``zero_reducescatter``, ``tied_allreduce`` and ``update``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from simulator.strategies.programs import (Collective, CommBlock, Compute, StageProgram,
                                          UnitMark)
from simulator.strategies.schedules import Action
from simulator.taskgraph import TaskGraph


@dataclass
class RankState:
    """Per-iteration bookkeeping of one rank."""

    last: int | None = None                 # its latest operation on the compute stream
    start_deps: tuple[int, ...] = ()        # what its next iteration's first operation waits for
    reductions: list[int] = field(default_factory=list)  # gradient collectives it is in


@dataclass
class Plan:
    """Everything the emitter needs, computed by the compiler."""

    spec: object                            # Parallel3DSpec
    microbatches: int
    programs: list[list[StageProgram]]      # programs[rank][chunk]
    send_bytes: list[float]                 # per boundary j -> j+1, per rank
    gather_bytes: list[float]               # per boundary, all-gathered on arrival (0: none)
    grad_bytes: list[float]                 # per rank, all chunks
    update_s: list[float]                   # per rank
    unit_bytes: dict[int, float]            # ZeRO-3: parameter bytes per unit, one rank
    unit_names: list[str]
    tied: list[tuple[int, int, float]]      # (owner virtual stage, user virtual stage, bytes)
    prices: dict = field(default_factory=dict)  # (collective, nbytes, group) -> seconds
    grad_scale: float = 1.0                 # gradient bytes per parameter byte (grad_dtype)
    reps: bool = False                      # emit one rank per stage (see Emitter)


class Emitter:
    """Emits the plan's iterations into ``tg``.

    With ``plan.reps`` it emits only the representative of each stage (data- and
    tensor-parallel coordinates 0), exactly the operations :func:`simulator.replicas.fold`
    keeps of the full emission, in the same order: every loop over a stage's ranks or groups
    runs for the representative's only, and its results stand for all positions (a position's
    operation *is* its representative's, as the fold maps it). Each transfer and collective
    records its copies in :attr:`mirrors` (shared lists, one per distinct set of copies). The
    compiler uses it only where the ranks of every stage are proved to replay the same inputs
    (:func:`~simulator.strategies.parallel3d.representative_refusal`); a test checks that the
    result equals the fold of the full emission.
    """

    def __init__(self, tg: TaskGraph, plan: Plan) -> None:
        self.tg = tg
        self.plan = plan
        s = self.s = plan.spec
        self.p, self.v, self.dp, self.tp = s.pp, s.chunks, s.dp, s.tp
        self.m = plan.microbatches
        self.network = s.tp_comm == "network"
        self.ranks = [[s.rank(k, d, t) for d in range(self.dp) for t in range(self.tp)]
                      for k in range(self.p)]
        self.state = [RankState() for _ in range(s.workers)]
        self.recv: dict[tuple[str, int, int], list[int]] = {}
        self.iteration_ends: dict[int, list[int]] = {}
        self._blocks: dict = {}
        # whether every rank of a device replays the very same programs (one device type)
        self.homogeneous = [all(all(a is b for a, b in zip(plan.programs[r],
                                                           plan.programs[ranks[0]]))
                                for r in ranks) for ranks in self.ranks]
        self.reps = plan.reps
        self.mirrors: dict[int, list] = {}
        self._copy_lists: dict[tuple, list] = {}

    # -- representative emission -------------------------------------------------------------
    def _span(self, lo: int, hi: int):
        """Positions ``lo..hi-1`` of a stage whose operations are emitted (the representative's
        alone in a representative emission, where only groups holding it are visited)."""
        return (lo,) if self.reps else range(lo, hi)

    def _count(self, n: int) -> int:
        """How many of ``n`` groups are emitted."""
        return 1 if self.reps else n

    def _mirror(self, op_id: int, copies: list[tuple]) -> None:
        """Record the copies of a representative transfer (``(rank, peer)``) or collective
        (``(group,)``) ``op_id``; one shared list per distinct set."""
        if not self.reps or len(copies) < 2:
            return
        op = self.tg.ops[op_id]
        key = (op.kind, op.nbytes, op.collective, op.algorithm, op.stream, tuple(copies))
        hit = self._copy_lists.get(key)
        if hit is None:
            if op.kind == "transfer":
                hit = [op._replace(id=-1, rank=r, peer=p, deps=()) for r, p in copies]
            else:
                hit = [op._replace(id=-1, rank=g[0], group=g, deps=()) for (g,) in copies]
            self._copy_lists[key] = hit
        self.mirrors[op_id] = hit

    def normalise(self) -> None:
        """A representative emission's dependencies as the fold writes them: sorted, each once
        (a position's dependency is its representative's, so the same id can repeat)."""
        ops = self.tg.ops
        for i, op in enumerate(ops):
            if len(op.deps) > 1:
                deps = tuple(sorted(set(op.deps)))
                if deps != op.deps:
                    ops[i] = op._replace(deps=deps)

    # -- one iteration ---------------------------------------------------------------------
    def iteration(self, it: int, actions: list[list[Action]],
                  order: Sequence[tuple[int, int]]) -> None:
        for st in self.state:
            st.reductions = []
        for k, idx in order:
            self._action(it, k, actions[k][idx])
        self._finish(it)

    def _action(self, it: int, k: int, a: Action) -> None:
        tp, s = self.tp, self.s
        j = a.chunk * self.p + k
        mb = a.microbatch
        ranks = self.ranks[k]
        n_ranks = len(ranks)
        pending: list[tuple[int, ...]] = [self.state[r].start_deps for r in ranks]
        for r in ranks:
            self.state[r].start_deps = ()
        transfers = self.recv.pop((a.kind, mb, j), None)
        folded = 0.0  # bytes of an all-gather folded into the pass's collective block
        if transfers is not None:
            boundary = j - 1 if a.kind == "F" else j
            gather = self.plan.gather_bytes[boundary]
            if gather and tp > 1 and s.granularity == "pass":
                # the order inside a pass is not kept: wait for every piece, and add the
                # all-gather's time to the pass's block of tensor-parallel collectives
                folded = gather
                pending = [pending[n] + tuple(transfers[n - n % tp:n - n % tp + tp])
                           for n in range(n_ranks)]
            elif gather and tp > 1:
                pending = self._gather(it, mb, k, transfers, gather, pending)
            else:
                pending = [pending[n] + (transfers[n],) for n in range(n_ranks)]
        forward = a.kind == "F"
        progs = [self.plan.programs[r][a.chunk] for r in ranks]
        steps = [p.forward if forward else p.backward for p in progs]
        collect = (not forward and self.dp > 1 and (
            s.zero_stage == 2 or (s.overlap_dp and mb == self.m - 1 and s.zero_stage < 2)))
        last, ids = self._run(it, mb, k, steps, pending, collect, forward, folded)
        for n, r in enumerate(ranks):
            self.state[r].last = last[n]
        if forward and j < self.p * self.v - 1:
            self._send(it, mb, k, j, j + 1, last, "send_next", "pp_forward", "F")
        elif not forward and j > 0:
            self._send(it, mb, k, j, j - 1, last, "send_prev", "pp_backward", "B")
        if collect:
            self._buckets(it, mb, k, progs[0], ids)

    def _gather(self, it, mb, k, transfers, nbytes, pending):
        """The receiving tensor-parallel groups all-gather the pieces sent by scatter_gather."""
        tg, tp = self.tg, self.tp
        out = list(pending)
        ranks = self.ranks[k]
        for g in range(self._count(self.dp)):
            lo, hi = g * tp, (g + 1) * tp
            members = ranks[lo:hi]
            deps = tuple(transfers[lo:hi]) + tuple(
                d for n in self._span(lo, hi) for d in pending[n])
            if self.network:
                cid = tg.collective("allgather", members, nbytes, algorithm=self.s.tp_algorithm,
                                    deps=deps, stream="compute", name="recv",
                                    phase="pp_allgather", microbatch=mb, iteration=it)
                self._mirror(cid, [(tuple(ranks[h * tp:(h + 1) * tp]),) for h in range(self.dp)])
                for n in range(lo, hi):
                    out[n] = (cid,)
            else:
                seconds = self.plan.prices[("allgather", nbytes, tuple(members))]
                for n in self._span(lo, hi):
                    out[n] = (tg.delay(
                        ranks[n], seconds, deps=deps, stream="compute", name="recv",
                        phase="pp_allgather", microbatch=mb, iteration=it, nbytes=float(nbytes),
                        collective="allgather", algorithm=self.s.tp_algorithm),)
        if self.reps:
            out = [out[0]] * len(out)
        return out

    def _run(self, it, mb, k, steps, pending, collect, forward, folded=0.0):
        """Replay one program on every rank of device ``k``; returns the last op of each rank
        and, with ``collect``, every op id of each rank (for gradient-readiness positions).
        ``folded``: bytes of a stage-input all-gather to add to the program's collective block
        (``granularity='pass'``), or to run at its end when it has none."""
        tg, tp = self.tg, self.tp
        ranks = self.ranks[k]
        n_ranks = len(ranks)
        same = self.homogeneous[k]
        first = steps[0]
        last: list[int] = [-1] * n_ranks
        ids: list[list[int]] | None = [[] for _ in ranks] if collect else None
        unit_end: dict[int, list[int]] = {}
        done_units: list[int] = []
        for i, step in enumerate(first):
            kind = type(step)
            if kind is Compute:
                for n in self._span(0, n_ranks):
                    r = ranks[n]
                    template = step.template if same else steps[n][i].template
                    made = tg.compute_sequence(r, template, iteration=it, microbatch=mb,
                                               deps=pending[n])
                    pending[n] = ()
                    last[n] = made[-1]
                    if collect:
                        ids[n].extend(made)
            elif kind is Collective:
                alg = self.s.tp_algorithm
                for g in range(self._count(self.dp)):
                    lo, hi = g * tp, (g + 1) * tp
                    members = ranks[lo:hi]
                    if self.network:
                        deps = tuple(d for n in self._span(lo, hi) for d in pending[n])
                        cid = tg.collective(step.collective, members, step.nbytes, algorithm=alg,
                                            deps=deps, stream="compute", name=step.name,
                                            phase=step.phase, microbatch=mb, iteration=it)
                        self._mirror(cid, [(tuple(ranks[h * tp:(h + 1) * tp]),)
                                           for h in range(self.dp)])
                        for n in self._span(lo, hi):
                            pending[n] = ()
                            last[n] = cid
                            if collect:
                                ids[n].append(cid)
                    else:
                        seconds = self.plan.prices[(step.collective, step.nbytes, tuple(members))]
                        for n in self._span(lo, hi):
                            did = tg.delay(ranks[n], seconds, deps=pending[n], stream="compute",
                                           name=step.name, phase=step.phase, microbatch=mb,
                                           iteration=it, nbytes=float(step.nbytes),
                                           collective=step.collective, algorithm=alg)
                            pending[n] = ()
                            last[n] = did
                            if collect:
                                ids[n].append(did)
            elif kind is CommBlock:  # isolated collectives back to back, as one stand-in
                alg = self.s.tp_algorithm
                nbytes = float(sum(b for _, b in step.collectives)) + folded
                kinds = {c for c, _ in step.collectives} | ({"allgather"} if folded else set())
                label = kinds.pop() if len(kinds) == 1 else "mixed"
                for g in range(self._count(self.dp)):
                    lo, hi = g * tp, (g + 1) * tp
                    group = tuple(ranks[lo:hi])
                    seconds = self._block_seconds(step, group)
                    if folded:
                        seconds += self.plan.prices[("allgather", folded, group)]
                    for n in self._span(lo, hi):
                        did = tg.delay(ranks[n], seconds, deps=pending[n], stream="compute",
                                       name=step.name, phase=step.phase, microbatch=mb,
                                       iteration=it, nbytes=nbytes, collective=label,
                                       algorithm=alg)
                        pending[n] = ()
                        last[n] = did
                        if collect:
                            ids[n].append(did)
                folded = 0.0
            else:  # UnitMark: ZeRO-3 gathers parameters before a unit, scatters gradients after
                self._zero3(it, mb, k, step, forward, pending, last, unit_end, done_units)
        if folded:  # a pass without tensor-parallel collectives: the all-gather runs last
            for g in range(self._count(self.dp)):
                lo, hi = g * tp, (g + 1) * tp
                seconds = self.plan.prices[("allgather", folded, tuple(ranks[lo:hi]))]
                for n in self._span(lo, hi):
                    last[n] = tg.delay(ranks[n], seconds, deps=pending[n], stream="compute",
                                       name="recv", phase="pp_allgather", microbatch=mb,
                                       iteration=it, nbytes=float(folded),
                                       collective="allgather", algorithm=self.s.tp_algorithm)
                    pending[n] = ()
                    if collect:
                        ids[n].append(last[n])
        if self.reps:  # every position's operations are its representative's
            last = [last[0]] * n_ranks
            if collect:
                ids = [ids[0]] * n_ranks
        return last, ids

    def _block_seconds(self, step: CommBlock, group: tuple[int, ...]) -> float:
        key = (step, group)
        hit = self._blocks.get(key)
        if hit is None:
            prices = self.plan.prices
            hit = self._blocks[key] = sum(prices[(c, b, group)] for c, b in step.collectives)
        return hit

    def _zero3(self, it, mb, k, mark: UnitMark, forward, pending, last, unit_end, done_units):
        tg, tp, dp = self.tg, self.tp, self.dp
        ranks = self.ranks[k]
        nbytes = self.plan.unit_bytes[mark.unit]
        name = self.plan.unit_names[mark.unit]
        alg = self.s.dp_algorithm
        if mark.start:
            ahead = unit_end.get(done_units[-2]) if len(done_units) >= 2 else None
            for t in range(tp):
                members = [d * tp + t for d in range(dp)]
                deps = tuple(ahead[n] for n in members) if ahead else ()
                ag = tg.collective("allgather", [ranks[n] for n in members], nbytes,
                                   algorithm=alg, deps=deps, stream="zero_gather", name=name,
                                   phase="zero_allgather", microbatch=mb, iteration=it)
                for n in members:
                    pending[n] = pending[n] + (ag,)
            return
        unit_end[mark.unit] = list(last)
        done_units.append(mark.unit)
        if not forward:
            for t in range(tp):
                members = [d * tp + t for d in range(dp)]
                rs = tg.collective("reducescatter", [ranks[n] for n in members],
                                   nbytes * self.plan.grad_scale,
                                   algorithm=alg, deps=tuple(last[n] for n in members),
                                   stream="zero_scatter", name=name, phase="zero_reducescatter",
                                   microbatch=mb, iteration=it)
                for n in members:
                    self.state[ranks[n]].reductions.append(rs)

    def _dp_mirror(self, cid: int, ranks: list[int]) -> None:
        """Copies of a data-parallel collective of a stage: one group per tensor-parallel rank."""
        tp, dp = self.tp, self.dp
        self._mirror(cid, [(tuple(ranks[d * tp + t] for d in range(dp)),) for t in range(tp)])

    def _send(self, it, mb, k, j, to, last, stream, phase, kind):
        tg = self.tg
        boundary = min(j, to)
        nbytes = self.plan.send_bytes[boundary]
        k_to = to % self.p
        src, dst = self.ranks[k], self.ranks[k_to]
        made = [tg.transfer(src[n], dst[n], nbytes, deps=(last[n],), stream=stream,
                            name=f"stage{boundary}-{boundary + 1}", phase=phase, microbatch=mb,
                            iteration=it)
                for n in self._span(0, len(src))]
        if self.reps:
            self._mirror(made[0], list(zip(src, dst)))
            made = made * len(src)
        self.recv[(kind, mb, to)] = made

    def _buckets(self, it, mb, k, prog: StageProgram, ids) -> None:
        """Gradient buckets of one chunk reduced as soon as they are complete (``overlap_dp``:
        the last microbatch; ZeRO-2: every microbatch)."""
        tg, tp, dp, s = self.tg, self.tp, self.dp, self.s
        ranks = self.ranks[k]
        collective = "reducescatter" if s.zero_stage else "allreduce"
        phase = f"dp_{collective}"
        if not s.overlap_dp:  # ZeRO-2 without overlap: one reduce-scatter after the backward
            groups = [(sum(b for _, _, b in prog.grad_ready), None)]
        else:
            groups = bucketize(prog.grad_ready, s.bucket_bytes)
        for b, (nbytes, position) in enumerate(groups):
            if not nbytes:
                continue
            for t in range(self._count(tp)):
                members = [d * tp + t for d in range(dp)]
                deps = tuple(ids[n][-1] if position is None else ids[n][position]
                             for n in members)
                cid = tg.collective(collective, [ranks[n] for n in members],
                                    nbytes * self.plan.grad_scale,
                                    algorithm=s.dp_algorithm, deps=deps, stream="dp",
                                    name=f"bucket{b}", phase=phase, microbatch=mb, iteration=it)
                self._dp_mirror(cid, ranks)
                for n in members:
                    self.state[ranks[n]].reductions.append(cid)

    # -- end of an iteration -----------------------------------------------------------------
    def _finish(self, it: int) -> None:
        tg, tp, dp, s, plan = self.tg, self.tp, self.dp, self.s, self.plan
        if dp > 1 and s.zero_stage < 2 and not s.overlap_dp:
            collective = "reducescatter" if s.zero_stage else "allreduce"
            for k in range(self.p):
                for t in range(self._count(tp)):
                    group = [s.rank(k, d, t) for d in range(dp)]
                    nbytes = plan.grad_bytes[group[0]] * plan.grad_scale
                    if not nbytes:
                        continue
                    cid = tg.collective(collective, group, nbytes, algorithm=s.dp_algorithm,
                                        deps=[self.state[r].last for r in group], stream="dp",
                                        name="gradients", phase=f"dp_{collective}",
                                        iteration=it)
                    self._dp_mirror(cid, self.ranks[k])
                    for r in group:
                        self.state[r].reductions.append(cid)
        for owner, user, nbytes in plan.tied:
            k_a, k_b = owner % self.p, user % self.p
            if k_a == k_b or not nbytes:
                continue
            for d in range(self._count(dp)):
                for t in range(self._count(tp)):
                    pair = [s.rank(k_a, d, t), s.rank(k_b, d, t)]
                    cid = tg.collective("allreduce", pair, nbytes * plan.grad_scale,
                                        algorithm="ring",
                                        deps=[self.state[r].last for r in pair], stream="dp",
                                        name="tied_embedding", phase="tied_allreduce",
                                        iteration=it)
                    self._mirror(cid, [((s.rank(k_a, e, u), s.rank(k_b, e, u)),)
                                       for e in range(dp) for u in range(tp)])
                    for r in pair:
                        self.state[r].reductions.append(cid)
        updates = []
        for r, st in enumerate(self.state):
            if self.reps and r != self.ranks[r // (dp * tp)][0]:
                updates.append(updates[self.ranks[r // (dp * tp)][0]])  # its representative's
                continue
            deps = st.reductions or [st.last]
            updates.append(tg.compute(r, plan.update_s[r], deps=deps, name="optimizer",
                                      phase="update", iteration=it))
        ends = sorted(set(updates)) if self.reps else updates
        if dp > 1 and s.zero_stage in (1, 2):
            ends = []
            for k in range(self.p):
                for t in range(self._count(tp)):
                    group = [s.rank(k, d, t) for d in range(dp)]
                    ag = tg.collective("allgather", group, plan.grad_bytes[group[0]],
                                       algorithm=s.dp_algorithm,
                                       deps=[updates[r] for r in group], stream="dp",
                                       name="parameters", phase="dp_allgather", iteration=it)
                    self._dp_mirror(ag, self.ranks[k])
                    ends.append(ag)
                    for r in group:
                        self.state[r].start_deps = (ag,)
        self.iteration_ends[it] = ends


def bucketize(grad_ready: Sequence[tuple[int, int, float]], bucket_bytes: float
              ) -> list[tuple[float, int]]:
    """Consecutive gradients (backward order) grouped into buckets of at least ``bucket_bytes``
    (the last may be smaller): ``(bytes, position of the op completing the bucket)``."""
    out: list[tuple[float, int]] = []
    size, position = 0.0, -1
    for _, pos, nbytes in grad_ready:
        size += nbytes
        position = max(position, pos)
        if size >= bucket_bytes:
            out.append((size, position))
            size, position = 0.0, -1
    if size:
        out.append((size, position))
    return out
