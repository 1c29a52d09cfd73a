"""The engine: runs any task graph on device streams over the flow-level network, with simpy.

It knows nothing of data, pipeline or tensor parallelism: it runs operations on streams in order,
waits for dependencies, moves bytes over the network, and records when everything happened.

Each ordered stream is one simpy process walking its operations. Consecutive compute operations
whose dependencies are already settled run as one simpy timeout (their individual start and end
times are still recorded), so an iteration costs a handful of events per device rather than one per
layer; operations on other streams that wait for one of them get an event at its end time.
Streams listed in ``TaskGraph.meta["unordered_streams"]`` run their operations one at a time in
the order they become ready (a parameter server applying pushes as they arrive).

An operation with ``quorum > 0`` in ``TaskGraph.meta["quorum"]`` (op id -> k) starts when k of its
dependencies have finished (synchronous SGD with backup workers).

A collective asks the collective planner (:mod:`simulator.planner`) for its plan over its
members' nodes and runs its phases one after another: each coupled group of hops is one flow
(:meth:`~simulator.network.Network.transfer_group`), each flow keyed by its connection (group,
algorithm, phase, channel), so identical iterations take identical paths. A transfer is keyed by
its stream and peer, never by its iteration or microbatch.

With a :class:`~simulator.replicas.Folded` graph (representative replicas), only the
representatives' operations run, but each transfer and collective moves the bytes of all its
copies as mirrored flows (see :mod:`simulator.replicas`), and a collective starts once its
representative members have arrived.

Same task graph, network and seed: same timeline, bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import simpy

from simulator.errors import SymmetryBroken
from simulator.planner import CollectivePlanner
from simulator.planner.planner import connection_key
from simulator.taskgraph import Op, TaskGraph

TIMELINE_COLUMNS = ("op", "rank", "stream", "kind", "name", "phase", "microbatch", "iteration",
                    "start_s", "end_s", "nbytes", "flops", "collective", "algorithm", "peer")


@dataclass
class EngineRun:
    """Raw results of one run: timeline rows (tuples in ``TIMELINE_COLUMNS`` order)."""

    rows: list[tuple]
    end_s: float
    events: int


def flow_label(op: Op) -> str:
    """The tag of an operation's flows in the records: what it is, not where it sits in the
    task graph."""
    return f"{op.kind}:{op.name}:{op.phase}:{op.iteration}:{op.microbatch}"


def transfer_key(op: Op) -> tuple:
    """A transfer's connection (ECMP key): its stream; the endpoints are hashed with it."""
    return ("p2p", op.stream)


def sample_durations(tg: TaskGraph, *, seed: int, jitter_cv: float) -> np.ndarray:
    """Compute and delay durations; with ``jitter_cv > 0`` each compute op is scaled by a
    lognormal factor of mean 1 and that coefficient of variation (seeded, deterministic)."""
    base = np.array([op.duration_s for op in tg.ops], dtype=float)
    if jitter_cv <= 0:
        return base
    sigma = math.sqrt(math.log1p(jitter_cv ** 2))
    rng = np.random.default_rng(seed)
    factors = rng.lognormal(mean=-sigma ** 2 / 2, sigma=sigma, size=len(base))
    is_compute = np.array([op.kind == "compute" for op in tg.ops])
    return np.where(is_compute, base * factors, base)


class Engine:
    """Runs one task graph. ``rank_nodes[r]`` is the topology node of rank r; ``planner`` plans
    the collectives (default: a :class:`~simulator.planner.CollectivePlanner` on the network's
    graph)."""

    def __init__(self, env: simpy.Environment, network, tg: TaskGraph, *,
                 rank_nodes: Sequence[Any], durations: np.ndarray | None = None,
                 planner: CollectivePlanner | None = None, folded=None) -> None:
        self.folded = folded
        if folded is not None:
            tg = folded.taskgraph
            if durations is not None:
                durations = durations[np.asarray(folded.original, dtype=np.int64)]
            if getattr(network, "_staging", None):
                raise SymmetryBroken("host-staged transfers (no GPUDirect RDMA) are not mirrored")
        self.mirrors = folded.mirrors if folded is not None else {}
        self.arrivals = folded.arrivals if folded is not None else {}
        if len(rank_nodes) < tg.ranks:
            raise ValueError(f"{tg.ranks} ranks but only {len(rank_nodes)} nodes")
        self.env = env
        self.network = network
        self.tg = tg
        self.ops = tg.ops
        self.rank_nodes = list(rank_nodes)
        self.planner = planner if planner is not None else CollectivePlanner(
            network.graph, network=network)
        self.dur = durations if durations is not None else np.array(
            [op.duration_s for op in tg.ops], dtype=float)
        self.end: list[float | None] = [None] * len(tg.ops)
        self._pending: dict[int, simpy.Event] = {}
        self._arrivals: dict[int, int] = {}
        self._coll_done: dict[int, simpy.Event] = {}
        self._coll_start: dict[int, float] = {}
        self._coll_algorithm: dict[int, str] = {}
        self.rows: list[tuple] = []
        self.quorum: dict[int, int] = dict(tg.meta.get("quorum", {}))
        self.unordered = set(tg.meta.get("unordered_streams", ()))
        self.events = 0

    # -- bookkeeping -------------------------------------------------------------------------
    def _set_end(self, op_id: int, end: float) -> None:
        self.end[op_id] = end
        ev = self._pending.pop(op_id, None)
        if ev is not None:
            delay = end - self.env.now
            if delay <= 0:
                ev.succeed()
            else:
                self.env.timeout(delay).callbacks.append(lambda _e, ev=ev: ev.succeed())

    def _event_for(self, op_id: int) -> simpy.Event:
        end = self.end[op_id]
        if end is not None:
            return self.env.timeout(max(0.0, end - self.env.now))
        ev = self._pending.get(op_id)
        if ev is None:
            ev = self._pending[op_id] = self.env.event()
        return ev

    def _done_by(self, op_id: int, t: float) -> bool:
        end = self.end[op_id]
        return end is not None and end <= t

    def _wait_deps(self, op: Op):
        """An event for the op's dependencies, or None if they are all done now."""
        now = self.env.now
        open_deps = [d for d in op.deps if not self._done_by(d, now)]
        if not open_deps:
            return None
        k = self.quorum.get(op.id, 0)
        events = [self._event_for(d) for d in open_deps]
        if k:
            need = k - (len(op.deps) - len(open_deps))
            if need <= 0:
                return None
            return simpy.events.Condition(self.env, lambda evs, count, need=need: count >= need,
                                          events)
        return simpy.AllOf(self.env, events)

    def _record(self, op: Op, rank: int, start: float, end: float,
                algorithm: str | None = None) -> None:
        self.rows.append((op.id, rank, op.stream, op.kind, op.name, op.phase, op.microbatch,
                          op.iteration, start, end, op.nbytes, op.flops, op.collective,
                          op.algorithm if algorithm is None else algorithm, op.peer))

    # -- processes ---------------------------------------------------------------------------
    def run(self, until: float | None = None) -> EngineRun:
        rep = self.folded.rep_of_rank if self.folded is not None else None
        for (rank, stream), op_ids in self.tg.streams().items():
            if rep is not None and rep[rank] != rank:
                continue  # a collective's member that a representative stands for
            if stream in self.unordered:
                resource = simpy.Resource(self.env, capacity=1)
                for op_id in op_ids:
                    self.env.process(self._run_unordered(rank, op_id, resource))
            else:
                self.env.process(self._run_stream(rank, op_ids))
        self.env.run(until=until)
        unfinished = [op.id for op in self.ops if self.end[op.id] is None]
        if unfinished and until is None:
            raise RuntimeError(f"task graph deadlocked: {len(unfinished)} operations never ran "
                               f"(first: {self.ops[unfinished[0]]})")
        return EngineRun(rows=self.rows, end_s=self.env.now, events=self.events)

    def _run_stream(self, rank: int, op_ids: list[int]):
        ops, env = self.ops, self.env
        i, n = 0, len(op_ids)
        while i < n:
            op = ops[op_ids[i]]
            if op.kind != "collective":  # a collective waits for its dependencies once, itself
                wait = self._wait_deps(op)
                if wait is not None:
                    self.events += 1
                    yield wait
            if op.kind in ("compute", "delay"):
                t = env.now
                j = i
                while j < n:
                    nxt = ops[op_ids[j]]
                    if nxt.kind not in ("compute", "delay"):
                        break
                    if j > i and (self.quorum.get(nxt.id) or
                                  not all(self._done_by(d, t) for d in nxt.deps)):
                        break
                    start, t = t, t + self.dur[nxt.id]
                    self._record(nxt, rank, start, t)
                    self._set_end(nxt.id, t)
                    j += 1
                self.events += 1
                yield env.timeout(t - env.now)
                i = j
            elif op.kind == "transfer":
                start = env.now
                yield from self._transfer(op)
                self._record(op, rank, start, env.now)
                self._set_end(op.id, env.now)
                i += 1
            elif op.kind == "collective":
                yield from self._join_collective(op, rank)
                i += 1
            else:  # pragma: no cover - TaskGraph.add validates kinds
                raise ValueError(op.kind)

    def _run_unordered(self, rank: int, op_id: int, resource: simpy.Resource):
        op = self.ops[op_id]
        wait = self._wait_deps(op)
        if wait is not None:
            yield wait
        with resource.request() as req:
            yield req
            start = self.env.now
            if op.kind in ("compute", "delay"):
                yield self.env.timeout(self.dur[op.id])
            elif op.kind == "transfer":
                yield from self._transfer(op)
            else:
                raise ValueError(f"{op.kind} operations cannot run on an unordered stream")
            self._record(op, rank, start, self.env.now)
            self._set_end(op.id, self.env.now)

    def _transfer(self, op: Op):
        copies = self.mirrors.get(op.id)
        if copies is not None:
            yield from self._mirrored_transfer(op, copies)
            return
        src, dst = self.rank_nodes[op.rank], self.rank_nodes[op.peer]
        if src != dst and op.nbytes > 0:
            self.events += 1
            yield self.network.transfer(src, dst, op.nbytes, tag=flow_label(op),
                                        key=transfer_key(op))

    def _mirrored_transfer(self, op: Op, copies: list[Op]):
        nodes = self.rank_nodes
        hops = [(nodes[c.rank], nodes[c.peer], None) for c in copies]
        moving = [h for h in hops if h[0] != h[1]]
        if not moving:
            return
        if len(moving) != len(hops):
            raise SymmetryBroken(f"{flow_label(op)}: some copies are local copies, others not")
        self.events += 1
        yield self.network.transfer_group(moving, op.nbytes, tag=flow_label(op),
                                          key=transfer_key(op), parts=(1,) * len(moving))

    def _join_collective(self, op: Op, rank: int):
        done = self._coll_done.get(op.id)
        if done is None:
            done = self._coll_done[op.id] = self.env.event()
        arrived = self._arrivals.get(op.id, 0) + 1
        self._arrivals[op.id] = arrived
        if arrived == self.arrivals.get(op.id, len(op.group)):  # the last member in: wait for the dependencies, then run
            self.env.process(self._run_collective(op, done))
        self.events += 1
        yield done
        self._record(op, rank, self._coll_start[op.id], self.env.now,
                     self._coll_algorithm.get(op.id))

    def _run_collective(self, op: Op, done: simpy.Event):
        env, network = self.env, self.network
        wait = self._wait_deps(op)
        if wait is not None:
            self.events += 1
            yield wait
        self._coll_start[op.id] = env.now
        copies = self.mirrors.get(op.id)
        if copies is not None:
            yield from self._mirrored_collective(op, copies)
            self._set_end(op.id, env.now)
            done.succeed()
            return
        members = tuple(self.rank_nodes[r] for r in op.group)
        plan = self.planner.plan(op.collective, op.algorithm, members, op.nbytes)
        self._coll_algorithm[op.id] = plan.algorithm
        label = flow_label(op)
        for k, phase in enumerate(plan.phases):
            events = []
            for g in phase.groups:
                size = g.fraction * op.nbytes
                if size <= 0:
                    continue
                key = connection_key(members, plan.algorithm, k, g.channel)
                if phase.staging == "whole":
                    (h,) = g.hops
                    if h.src != h.dst:
                        events.append(network.transfer(h.src, h.dst, size, tag=label, key=key,
                                                       via=h.via))
                else:
                    hops = [(h.src, h.dst, h.via) for h in g.hops if h.src != h.dst]
                    if hops:
                        events.append(network.transfer_group(hops, size, tag=label, key=key))
            if not events:
                continue
            self.events += 1
            result = yield simpy.AllOf(env, events)
            if phase.steps > 1:
                hop = max(flow.latency_s for flow in result.values())
                if hop > 0:
                    yield env.timeout((phase.steps - 1) * hop)
        self._set_end(op.id, env.now)
        done.succeed()


    def _mirrored_collective(self, op: Op, copies: list[Op]):
        """Every copy's plan, phase by phase in lock step: group ``g`` of phase ``k`` of all
        copies is one mirrored flow whose parts are the copies' groups."""
        env, network = self.env, self.network
        runs = []
        for c in copies:
            members = tuple(self.rank_nodes[r] for r in c.group)
            runs.append((members, self.planner.plan(c.collective, c.algorithm, members,
                                                    c.nbytes)))
        first = runs[0][1]
        self._coll_algorithm[op.id] = first.algorithm
        shape = _plan_shape(first)
        for _, plan in runs[1:]:
            if _plan_shape(plan) != shape:
                raise SymmetryBroken(f"{flow_label(op)}: the copies of this collective are "
                                     f"planned differently ({plan.algorithm} vs "
                                     f"{first.algorithm}, or other phases)")
        label = flow_label(op)
        for k, phase in enumerate(first.phases):
            events = []
            for gi, g in enumerate(phase.groups):
                size = g.fraction * op.nbytes
                if size <= 0:
                    continue
                hops, keys, parts = [], [], []
                for members, plan in runs:
                    cg = plan.phases[k].groups[gi]
                    key = connection_key(members, plan.algorithm, k, cg.channel)
                    mine = [(h.src, h.dst, h.via) for h in cg.hops if h.src != h.dst]
                    hops.extend(mine)
                    keys.extend([key] * len(mine))
                    parts.append(len(mine))
                if not hops:
                    continue
                if min(parts) == 0:
                    raise SymmetryBroken(f"{label}: some copies move bytes in phase {k}, "
                                         "others do not")
                events.append(network.transfer_group(hops, size, tag=label, key=keys[0],
                                                     keys=keys, parts=tuple(parts)))
            if not events:
                continue
            self.events += 1
            result = yield simpy.AllOf(env, events)
            if phase.steps > 1:
                hop = max(flow.latency_s for flow in result.values())
                if hop > 0:
                    yield env.timeout((phase.steps - 1) * hop)


def _plan_shape(plan) -> tuple:
    """What must agree between the copies of a collective: phases, their staging and steps,
    and per group its fraction of the bytes."""
    return tuple((p.staging, p.steps, tuple(g.fraction for g in p.groups)) for p in plan.phases)


def execute(tg: TaskGraph, *, network_factory: Callable[[simpy.Environment], Any],
            rank_nodes: Sequence[Any], seed: int = 0, jitter_cv: float = 0.0,
            cross_nic: str = "auto", folded=None, durations: np.ndarray | None = None):
    """Run ``tg`` (or its :class:`~simulator.replicas.Folded` form ``folded``) in a fresh simpy
    environment; returns ``(EngineRun, network)``. ``cross_nic`` as in
    :class:`~simulator.planner.CollectivePlanner`; ``durations`` default to
    :func:`sample_durations`. Rows of a folded run carry the full graph's op ids."""
    env = simpy.Environment()
    network = network_factory(env)
    planner = CollectivePlanner(network.graph, network=network, cross_nic=cross_nic)
    if durations is None:
        durations = sample_durations(tg, seed=seed, jitter_cv=jitter_cv)
    engine = Engine(env, network, tg, rank_nodes=rank_nodes, planner=planner,
                    durations=durations, folded=folded)
    run = engine.run()
    if folded is not None:
        original = folded.original
        run.rows = [(original[row[0]],) + row[1:] for row in run.rows]
    return run, network
