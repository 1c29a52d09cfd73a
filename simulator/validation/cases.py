"""A reference row's *case*: the simulation that reproduces it, and how its metric is measured.

Two kinds of case (the ``case`` mapping of a row in ``reference.json``):

- **training** (``workload``, ``system``, ``strategy``, optional ``baseline`` and
  ``model_flops``): the three config sections of ``paleosim simulate`` (``docs/CONFIG.md``),
  simulated with :func:`simulator.simulate.simulate`. Memory overflow is flagged, not fatal
  (``fits_memory`` is reported beside the prediction).
- **collective** (``collective`` and ``system``): one collective alone on a topology, timed by
  the engine; for NCCL's bus bandwidth.

How each metric of the reference set (``shared/published/README.md``) maps onto simulator
outputs:

=====================  ===========================================================================
``images_per_s``       ``samples_per_s`` of the case
``iteration_time``     ``iteration_s`` of the case (seconds)
``speedup_vs_1gpu``    ``samples_per_s`` of the case over that of its *baseline* per baseline
                       worker: the same case with ``strategy.workers`` set to
                       ``baseline.workers`` (1 by default; ``"server"``: the GPUs of one
                       server; or the source's smallest run) and the overrides in
                       ``baseline`` (``{"workload": {...}, "strategy": {...}}``), e.g.
                       FireCaffe's single-GPU batch of 256; a baseline strategy naming another
                       ``kind`` replaces the case's strategy (a non-distributed single GPU).
                       The prediction's details name the baseline's worker count.
``scaling_efficiency`` that speedup divided by the case's ``strategy.workers`` (against one
                       server of 8 GPUs: throughput / (8-GPU throughput / 8) / workers)
``tflops_per_gpu``     model FLOPs of one iteration by Megatron-LM's formula (Narayanan et al.
                       SC21, section 5.1; ``model_flops.recompute`` picks the 96 or 72 form, as
                       the source counts) over ``iteration_s`` x GPUs, in TFLOP/s
``busbw``              NCCL's bus bandwidth of the collective, ``S / t x 2 (n-1) / n`` for an
                       all-reduce of ``S`` bytes on ``n`` ranks (nccl-tests' PERFORMANCE.md), GB/s
``busbw_per_nic``      that bus bandwidth over the NICs of one server (what one rail carries)
=====================  ===========================================================================

A collective case's ``algorithm`` is any of the planner's (``auto`` lets it choose as NCCL
would) or ``best``: the fastest of those the hardware has (ring, double binary tree, NVLS), for
lower-bound rows, which ask whether the simulated system *can* reach a figure.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import SpecError
from simulator.specs import (SystemSpec, WorkloadSpec, strategy_from_dict, system_from_dict,
                             workload_from_dict)

TRAINING_KEYS = ("workload", "system", "strategy", "baseline", "model_flops")
COLLECTIVE_KEYS = ("collective", "system")
COLLECTIVE_FIELDS = ("kind", "algorithm", "bytes", "ranks")
#: Metric -> factor from the simulator's SI value to the unit the row reports.
UNIT_SCALE = {"tflops_per_gpu": 1e-12, "busbw": 1e-9, "busbw_per_nic": 1e-9}
#: Algorithms ``best`` chooses among.
BEST_OF = ("ring", "double_binary_tree", "nvls")


@dataclass(frozen=True)
class TrainingCase:
    """A training simulation and, for speedup metrics, its single-worker baseline."""

    workload: WorkloadSpec
    system: SystemSpec
    strategy: Any
    baseline: tuple[WorkloadSpec, Any] | None = None
    model_flops: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class CollectiveCase:
    """One collective of ``nbytes`` per rank over the first ``ranks`` GPUs of a topology."""

    collective: str
    algorithm: str
    nbytes: float
    ranks: int
    system: SystemSpec


@dataclass
class Prediction:
    """The simulated value of a row's metric (in the row's unit) and what it came from."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)


def build_case(row) -> TrainingCase | CollectiveCase:
    """The case of ``row`` as specs; errors name the row and the field."""
    case = row.case
    where = f"rows.{row.id}.case"
    try:
        if "collective" in case:
            return _collective_case(case, where)
        return _training_case(row, case, where)
    except SpecError as exc:
        if not (exc.field and exc.field.startswith("rows.")):
            # keep the error's class (an UnknownNameError stays one); name the row
            exc.field = f"{where}.{exc.field}" if exc.field else where
            exc.args = (exc._render(),)
        raise


def _check_keys(mapping: Mapping, valid: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in valid:
            raise SpecError(f"unknown key; valid: {', '.join(valid)}", field=f"{where}.{key}",
                            value=key)


def _training_case(row, case: Mapping, where: str) -> TrainingCase:
    _check_keys(case, TRAINING_KEYS, where)
    for key in ("workload", "system", "strategy"):
        if key not in case:
            raise SpecError("missing section", field=f"{where}.{key}")
    workload = workload_from_dict(case["workload"])
    system = system_from_dict(case["system"])
    strategy = strategy_from_dict(case["strategy"])
    baseline = None
    if row.metric in ("speedup_vs_1gpu", "scaling_efficiency"):
        over = case.get("baseline") or {}
        if not isinstance(over, Mapping):
            raise SpecError("must be a mapping with optional workload and strategy overrides",
                            field=f"{where}.baseline", value=over)
        _check_keys(over, ("workload", "strategy", "workers"), f"{where}.baseline")
        base_workload = workload_from_dict({**case["workload"], **over.get("workload", {})})
        workers = _baseline_workers(over.get("workers", 1), system, strategy,
                                    f"{where}.baseline.workers")
        strategy_over = over.get("strategy", {})
        if "workers" in strategy_over:
            raise SpecError("give the baseline's worker count as baseline.workers",
                            field=f"{where}.baseline.strategy.workers",
                            value=strategy_over["workers"])
        if strategy_over.get("kind", case["strategy"].get("kind")) != case["strategy"].get("kind"):
            base_strategy = strategy_from_dict({"workers": workers, **strategy_over})
        else:
            base_strategy = strategy_from_dict({**case["strategy"], "workers": workers,
                                                **strategy_over})
        baseline = (base_workload, base_strategy)
    elif "baseline" in case:
        raise SpecError(f"only speedup metrics have a baseline (metric {row.metric!r})",
                        field=f"{where}.baseline")
    flops = case.get("model_flops")
    if row.metric == "tflops_per_gpu":
        if not isinstance(flops, Mapping) or not isinstance(flops.get("recompute"), bool):
            raise SpecError("tflops_per_gpu needs model_flops: {\"recompute\": true|false} (the "
                            "source's FLOP count)", field=f"{where}.model_flops", value=flops)
    elif flops is not None:
        raise SpecError("model_flops only applies to tflops_per_gpu",
                        field=f"{where}.model_flops")
    return TrainingCase(workload=workload, system=system, strategy=strategy, baseline=baseline,
                        model_flops=flops)


def _baseline_workers(value, system: SystemSpec, strategy, field: str) -> int:
    """The baseline's worker count: 1 (one GPU), ``"server"`` (the GPUs of one server of the
    case's topology) or a count below the case's (its smallest published run)."""
    if value == "server":
        from simulator.cluster import resolve_cluster
        return resolve_cluster(system, strategy.workers).gpus_per_server
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < strategy.workers:
        raise SpecError(f"must be 'server' or a worker count from 1 to {strategy.workers - 1}",
                        field=field, value=value)
    return value


def _collective_case(case: Mapping, where: str) -> CollectiveCase:
    from simulator.collectives import algorithms
    from simulator.taskgraph import COLLECTIVES
    _check_keys(case, COLLECTIVE_KEYS, where)
    spec = case["collective"]
    if not isinstance(spec, Mapping) or set(spec) != set(COLLECTIVE_FIELDS):
        raise SpecError(f"needs exactly {', '.join(COLLECTIVE_FIELDS)}",
                        field=f"{where}.collective", value=spec)
    if spec["kind"] not in COLLECTIVES:
        raise SpecError(f"unknown collective; valid: {', '.join(COLLECTIVES)}",
                        field=f"{where}.collective.kind", value=spec["kind"])
    if spec["algorithm"] not in algorithms(spec["kind"]) + ("best",):
        raise SpecError(f"unknown algorithm; valid: {', '.join(algorithms(spec['kind']))}, best",
                        field=f"{where}.collective.algorithm", value=spec["algorithm"])
    nbytes, ranks = spec["bytes"], spec["ranks"]
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or nbytes <= 0:
        raise SpecError("must be a positive number of bytes", field=f"{where}.collective.bytes",
                        value=nbytes)
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 2:
        raise SpecError("must be an integer >= 2", field=f"{where}.collective.ranks",
                        value=ranks)
    if "system" not in case:
        raise SpecError("missing section", field=f"{where}.system")
    return CollectiveCase(collective=spec["kind"], algorithm=spec["algorithm"],
                          nbytes=float(nbytes), ranks=ranks,
                          system=system_from_dict(case["system"]))


class Simulations:
    """Memoised simulations shared by the rows of one validation run (rows often share a
    baseline), with an optional cost model standing in for each system's own (calibration)."""

    def __init__(self, cost_model: Any = None) -> None:
        self.cost_model = cost_model
        self._results: dict[str, dict[str, Any]] = {}
        self._caches: dict[str, Any] = {}

    def metrics(self, workload: WorkloadSpec, system: SystemSpec, strategy) -> dict[str, Any]:
        """The metrics of one simulation (``wall_s`` added: seconds it took)."""
        from simulator.simulate import simulate
        from simulator.strategies.common import CostCache
        key = repr((workload, system, strategy))
        hit = self._results.get(key)
        if hit is None:
            model = self.cost_model if self.cost_model is not None else system.cost_model
            ckey = repr((workload, system.cost_model))
            cache = self._caches.get(ckey)
            if cache is None:
                cache = self._caches[ckey] = CostCache(workload, model)
            start = time.perf_counter()
            result = simulate(workload, system, strategy, cost_cache=cache, on_overflow="flag")
            hit = dict(result.metrics)
            hit["wall_s"] = time.perf_counter() - start
            self._results[key] = hit
        return hit


def predict(row, sims: Simulations | None = None) -> Prediction:
    """Simulate ``row``'s case and measure its metric, in the row's unit."""
    sims = sims or Simulations()
    case = build_case(row)
    if isinstance(case, CollectiveCase):
        return _predict_collective(case, row.metric)
    m = sims.metrics(case.workload, case.system, case.strategy)
    details = {"iteration_s": m["iteration_s"], "samples_per_s": m["samples_per_s"],
               "fits_memory": bool(m.get("fits_memory", True)), "wall_s": m["wall_s"]}
    metric = row.metric
    if metric == "images_per_s":
        value = m["samples_per_s"]
    elif metric == "iteration_time":
        value = m["iteration_s"]
    elif metric in ("speedup_vs_1gpu", "scaling_efficiency"):
        base_workload, base_strategy = case.baseline
        b = sims.metrics(base_workload, case.system, base_strategy)
        details["baseline_samples_per_s"] = b["samples_per_s"]
        details["fits_memory"] = details["fits_memory"] and bool(b.get("fits_memory", True))
        details["wall_s"] += b["wall_s"]
        details["baseline_workers"] = base_strategy.workers
        value = m["samples_per_s"] / (b["samples_per_s"] / base_strategy.workers)
        if metric == "scaling_efficiency":
            value /= case.strategy.workers
    elif metric == "tflops_per_gpu":
        value = model_flops(case) / (m["iteration_s"] * case.strategy.workers)
    else:  # pragma: no cover - busbw rows are collective cases (checked by build_case users)
        raise SpecError("a busbw row needs a collective case", field=f"rows.{row.id}.case")
    return Prediction(value=value * UNIT_SCALE.get(metric, 1.0), details=details)


def model_flops(case: TrainingCase) -> float:
    """Megatron-LM's FLOPs of one iteration of the case's GPT net at its global batch."""
    from workloads.transformer import gpt_flops_formula
    from workloads.transformer.presets import preset_config
    cfg = preset_config(case.workload.net)
    return gpt_flops_formula(batch=case.workload.batch, layers=cfg.layers, hidden=cfg.hidden,
                             seq_len=cfg.seq_len, vocab=cfg.vocab,
                             recompute=case.model_flops["recompute"])


def collective_time_s(case: CollectiveCase) -> float:
    """Seconds one collective of the case takes alone on its topology (flows on the network,
    per-step latencies included), as the engine runs it; for ``best``, the fastest."""
    return min(_collective_times(case)[0].values())


def _collective_times(case: CollectiveCase):
    """``({algorithm: seconds}, topology graph)`` of the case's collective."""
    from simulator.cluster import resolve_cluster
    from simulator.engine import execute
    from simulator.taskgraph import TaskGraph
    cluster = resolve_cluster(case.system, case.ranks)
    nodes = cluster.gpus_for(case.ranks)
    names = BEST_OF if case.algorithm == "best" else (case.algorithm,)
    times = {}
    for name in names:
        tg = TaskGraph(ranks=case.ranks)
        tg.collective(case.collective, range(case.ranks), case.nbytes, algorithm=name)
        try:
            run, _ = execute(tg, network_factory=cluster.network_factory(0), rank_nodes=nodes,
                             cross_nic=case.system.cross_nic)
        except SpecError:
            if case.algorithm == "best":  # an algorithm the hardware does not have (NVLS)
                continue
            raise
        chosen = next(r[13] for r in run.rows if r[3] == "collective")  # auto: what ran
        times[chosen if name == "auto" else name] = float(run.end_s)
    return times, cluster.graph


def _predict_collective(case: CollectiveCase, metric: str = "busbw") -> Prediction:
    start = time.perf_counter()
    times, graph = _collective_times(case)
    algorithm, seconds = min(times.items(), key=lambda kv: kv[1])
    n = case.ranks
    algbw = case.nbytes / seconds
    factor = {"allreduce": 2 * (n - 1) / n, "reducescatter": (n - 1) / n,
              "allgather": (n - 1) / n}.get(case.collective, 1.0)
    value = algbw * factor
    if metric == "busbw_per_nic":
        nics = sum(1 for _, d in graph.nodes(data=True)
                   if d.get("role") == "nic" and d.get("server") == 0)
        value /= nics
    return Prediction(value=value * UNIT_SCALE[metric],
                      details={"iteration_s": seconds, "fits_memory": True,
                               "algorithm": algorithm, "wall_s": time.perf_counter() - start})
