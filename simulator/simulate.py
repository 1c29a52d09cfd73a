"""The one entry point: ``simulate(workload, system, strategy, *, seed) -> SimResult``.

The strategy compiles a task graph; the engine runs it on the cluster's devices over the flow-level
network; the result holds tidy tables (operations timeline, iterations, devices, links, flows) and
headline metrics. Two calls with the same inputs give identical results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from simulator.cluster import Cluster, resolve_cluster
import numpy as np

from simulator.engine import TIMELINE_COLUMNS, execute, sample_durations
from simulator.errors import InfeasibleError, SymmetryBroken, UnknownNameError
from simulator.memory import check_memory_table, memory_overflow_bytes, peak_memory_bytes
from simulator.errors import SpecError
from simulator.specs import SystemSpec, WorkloadSpec, with_workers
from simulator.strategies.common import CostCache
from simulator.strategies.registry import Compiled, compiler


#: What :func:`simulate` does with a configuration that does not fit in memory.
ON_OVERFLOW = ("flag", "raise")


@dataclass
class SimResult:
    """Everything one simulation produced. Times in seconds, sizes in bytes."""

    workload: WorkloadSpec
    system: SystemSpec
    strategy: Any
    metrics: dict[str, Any]
    ops: pd.DataFrame
    iterations: pd.DataFrame
    devices: pd.DataFrame
    links: pd.DataFrame
    flows: pd.DataFrame
    utilisation: pd.DataFrame = field(repr=False)
    rank_nodes: list = field(repr=False, default_factory=list)
    cluster: Cluster | None = field(repr=False, default=None)
    taskgraph: Any = field(repr=False, default=None)
    tables: dict[str, pd.DataFrame] = field(repr=False, default_factory=dict)


def simulate(workload: WorkloadSpec, system: SystemSpec, strategy, *, seed: int = 0,
             cost_cache: CostCache | None = None, on_overflow: str = "raise") -> SimResult:
    """Simulate ``strategy.iterations`` training iterations and measure them.

    A configuration whose peak memory exceeds a device's capacity (``simulator.memory``) raises
    :class:`~simulator.memory.OutOfMemoryError` before it runs, unless ``on_overflow="flag"``:
    then it runs and ``metrics["fits_memory"]`` is False (``memory_overflow_bytes`` says by how
    much), for sweeps.
    """
    if on_overflow not in ON_OVERFLOW:
        raise UnknownNameError("on_overflow policy", str(on_overflow), list(ON_OVERFLOW),
                               field="on_overflow")
    cluster = resolve_cluster(system, _total_nodes_hint(strategy))
    cache = cost_cache or CostCache(workload, system.cost_model)
    compiled: Compiled = compiler(strategy.kind)(workload, cluster, strategy, cache)
    memory = compiled.extra.get("memory")
    if memory is not None and on_overflow == "raise":  # what does not fit fails before it runs
        check_memory_table(memory)
    run, network, folded, reason, compiled = _run(
        compiled, cluster, system, strategy, seed,
        lambda: compiler(strategy.kind)(workload, cluster.at_fidelity("full"), strategy, cache))
    ops = pd.DataFrame(run.rows, columns=list(TIMELINE_COLUMNS))
    ops = ops.sort_values(["start_s", "rank", "op"], kind="stable").reset_index(drop=True)
    rep_op = folded.rep_of_op if folded is not None else None
    rep_rank = (folded.rep_of_rank if folded is not None
                else np.arange(compiled.taskgraph.ranks, dtype=np.int64))
    iterations = _iteration_table(ops, compiled, rep_op)
    workers = compiled.worker_ranks or tuple(range(compiled.taskgraph.ranks))
    devices = _device_table(ops, compiled, cluster, rep_rank)
    ops = _with_op_energy(ops, devices)
    flows = network.flows_table()
    metrics = _metrics(iterations, ops, devices, flows, compiled, strategy, workers)
    metrics["fidelity"] = "replicas" if folded is not None else "full"
    metrics["fidelity_reason"] = reason
    metrics["simulated_ranks"] = (len(folded.ranks) if folded is not None
                                  else compiled.taskgraph.ranks)
    metrics["records"] = records_level(system, compiled.taskgraph.ranks)
    hook = compiled.extra.get("metrics")
    if hook is not None:  # strategy-specific metrics (e.g. pipeline bubble, model TFLOP/s)
        metrics.update(hook(ops, iterations, metrics, compiled.taskgraph.meta))
    metrics.update(_energy_metrics(ops, devices, metrics["iteration_s"],
                                   int(iterations["iteration"].iloc[-1]),
                                   compiled.global_batch, rep_rank))
    links = network.links_table()
    if len(links) and links["bytes"].sum() > 0:
        busiest = links.loc[links["utilisation"].idxmax()]
        metrics["max_link_utilisation"] = float(busiest["utilisation"])
        metrics["busiest_link"] = f"{busiest['src']} -> {busiest['dst']}"
    metrics.update(calibration_metrics(cluster, compiled.rank_nodes))
    metrics["simulated_s"] = float(run.end_s)
    metrics["engine_events"] = run.events
    tables = {}
    if memory is not None:
        tables["memory"] = memory
        metrics["peak_memory_bytes"] = peak_memory_bytes(memory)
        metrics["memory_overflow_bytes"] = max(memory_overflow_bytes(memory), 0.0)
        metrics["fits_memory"] = metrics["memory_overflow_bytes"] == 0.0
    if compiled.extra.get("mode") == "async":
        from simulator.strategies.parameter_server import staleness_table
        tables["staleness"] = stale = staleness_table(ops, compiled.extra["shard_ranks"])
        metrics["mean_staleness"] = float(stale["staleness"].mean())
        metrics["max_staleness"] = int(stale["staleness"].max())
    return SimResult(workload=workload, system=system, strategy=strategy, metrics=metrics,
                     ops=ops, iterations=iterations, devices=devices,
                     links=links, flows=flows,
                     utilisation=network.utilisation_table(), rank_nodes=compiled.rank_nodes,
                     cluster=cluster, taskgraph=compiled.taskgraph, tables=tables)


def _run(compiled: Compiled, cluster: Cluster, system: SystemSpec, strategy, seed: int,
         recompile):
    """Run the task graph at the system's fidelity: ``(run, network, folded or None, why it
    is or is not folded, the compiled run)``. ``auto`` falls back to every rank where the fold
    is refused or the run finds the replicas asymmetric (``recompile()`` gives the full task
    graph where the strategy emitted representatives only); ``replicas`` raises
    :class:`InfeasibleError` then."""
    from simulator.replicas import AUTO_MIN_RANKS, fold
    tg = compiled.taskgraph
    fidelity = system.fidelity
    jitter_cv = getattr(strategy, "jitter_cv", 0.0)
    full_records = records_level(system, tg.ranks) == "full"
    kwargs = dict(network_factory=cluster.network_factory(seed, record_utilisation=full_records),
                  rank_nodes=compiled.rank_nodes, seed=seed, cross_nic=system.cross_nic)
    folded = compiled.extra.get("folded")
    if folded is not None:  # the strategy emitted representatives (and proved them)
        reason = (f"{len(folded.ranks)} representative ranks for {tg.ranks} (symmetric "
                  "programs and devices, emitted directly; flows certified at run time)")
        try:
            durations = sample_durations(tg, seed=seed, jitter_cv=jitter_cv)
            return (*execute(tg, folded=folded, durations=durations, **kwargs), folded, reason,
                    compiled)
        except SymmetryBroken as exc:
            reason = f"not symmetric on the network: {exc}"
        if fidelity == "replicas":
            raise InfeasibleError(f"representative replicas cannot stand for this run: "
                                  f"{reason}; use system.fidelity: full or auto")
        compiled = recompile()
        tg = compiled.taskgraph
        durations = sample_durations(tg, seed=seed, jitter_cv=jitter_cv)
        return (*execute(tg, durations=durations, **kwargs), None, reason, compiled)
    durations = sample_durations(tg, seed=seed, jitter_cv=jitter_cv)
    kwargs["durations"] = durations
    if fidelity == "full":
        return (*execute(tg, **kwargs), None, "fidelity: full", compiled)
    candidate = compiled.extra.get("replicas")
    if candidate is None:
        reason = f"the {strategy.kind} strategy proposes no representative replicas"
    elif fidelity == "auto" and tg.ranks < AUTO_MIN_RANKS:
        reason = f"{tg.ranks} ranks, fewer than {AUTO_MIN_RANKS} (auto simulates them all)"
    else:
        devices = [cluster.device_of(node).name for node in compiled.rank_nodes]
        out = fold(tg, candidate, durations, devices)
        if isinstance(out, str):
            reason = f"not symmetric: {out}"
        else:
            folded = out
            reason = (f"{len(out.ranks)} representative ranks for {tg.ranks} (symmetric "
                      "programs and devices; flows certified at run time)")
    if folded is not None:
        try:
            return (*execute(tg, folded=folded, **kwargs), folded, reason, compiled)
        except SymmetryBroken as exc:
            reason = f"not symmetric on the network: {exc}"
    if fidelity == "replicas":
        raise InfeasibleError(f"representative replicas cannot stand for this run: {reason}; "
                              "use system.fidelity: full or auto")
    return (*execute(tg, **kwargs), None, reason, compiled)


def records_level(system: SystemSpec, ranks: int) -> str:
    """``full`` or ``summary``: what ``system.records`` means for a run of ``ranks`` ranks."""
    from simulator.replicas import AUTO_MIN_RANKS
    if system.records != "auto":
        return system.records
    return "full" if ranks < AUTO_MIN_RANKS else "summary"


def calibration_metrics(cluster: Cluster, nodes) -> dict[str, str]:
    """Where the efficiency factors of the devices a run used come from (devices.json
    ``calibration``): ``calibration`` (one entry per device) and ``placeholder_devices``."""
    used: dict[str, Any] = {}
    for node in nodes:
        device = cluster.device_of(node)
        used.setdefault(device.name, device)
    return {"calibration": "; ".join(f"{n}: {d.calibration_label()}" for n, d in used.items()),
            "placeholder_devices": ",".join(n for n, d in used.items() if d.placeholder)}


def _total_nodes_hint(strategy) -> int:
    return getattr(strategy, "total_workers", strategy.workers)


def _iteration_table(ops: pd.DataFrame, compiled: Compiled, rep_op=None) -> pd.DataFrame:
    ends = ops.groupby("op")["end_s"].max()
    rows = []
    previous = 0.0
    for it in sorted(compiled.iteration_ops):
        ids = compiled.iteration_ops[it]
        if rep_op is not None:  # a representative run: each op ends when its representative
            ids = sorted({int(rep_op[i]) for i in ids})
        end = float(ends.loc[ids].max())
        rows.append({"iteration": it, "start_s": previous, "end_s": end,
                     "duration_s": end - previous})
        previous = end
    return pd.DataFrame(rows, columns=["iteration", "start_s", "end_s", "duration_s"])


def _device_table(ops: pd.DataFrame, compiled: Compiled, cluster: Cluster,
                  rep_rank: np.ndarray) -> pd.DataFrame:
    """Per rank: compute busy time and utilisation over the run, and energy.

    Energy follows the power model of :mod:`simulator.costmodels.power`: a device draws its busy
    (board) power while it computes and its idle power otherwise; time spent only communicating
    counts as idle. Each rank has one compute stream, so busy time is the sum of its compute ops.
    """
    busy = ops[ops["kind"] == "compute"].assign(d=lambda f: f["end_s"] - f["start_s"])
    per_rank = busy.groupby("rank")["d"].sum()
    end = float(ops["end_s"].max()) if len(ops) else 0.0
    rows = []
    for rank, node in enumerate(compiled.rank_nodes):
        device = cluster.device_of(node)
        compute = float(per_rank.get(int(rep_rank[rank]), 0.0))
        idle = max(end - compute, 0.0)
        rows.append({"rank": rank, "node": str(node), "device": device.name,
                     "compute_busy_s": compute,
                     "compute_utilisation": compute / end if end > 0 else 0.0,
                     "busy_power_W": device.busy_power_W, "idle_power_W": device.idle_power_W,
                     "energy_J": device.busy_power_W * compute + device.idle_power_W * idle})
    return pd.DataFrame(rows)


def _with_op_energy(ops: pd.DataFrame, devices: pd.DataFrame) -> pd.DataFrame:
    """Each compute op's energy: its device's busy power times its duration."""
    power = devices["busy_power_W"].to_numpy()[ops["rank"].to_numpy()]
    energy = power * (ops["end_s"] - ops["start_s"]).to_numpy()
    return ops.assign(energy_J=energy * (ops["kind"] == "compute").to_numpy())


def _energy_metrics(ops: pd.DataFrame, devices: pd.DataFrame, iteration_s: float,
                    last: int, global_batch: int, rep_rank: np.ndarray) -> dict[str, float]:
    """Energy of one steady-state iteration over all devices, and per sample (a rank that a
    representative stands for is as busy as it)."""
    it = ops[(ops["iteration"] == last) & (ops["kind"] == "compute")]
    busy = (it["end_s"] - it["start_s"]).groupby(it["rank"]).sum()
    busy = busy.reindex(rep_rank[devices["rank"].to_numpy()], fill_value=0.0).to_numpy()
    idle = (iteration_s - busy).clip(min=0.0)
    energy = float((devices["busy_power_W"].to_numpy() * busy
                    + devices["idle_power_W"].to_numpy() * idle).sum())
    return {"energy_per_iteration_J": energy, "energy_per_sample_J": energy / global_batch}


def _metrics(iterations, ops, devices, flows, compiled, strategy, workers) -> dict[str, Any]:
    n_it = len(iterations)
    if n_it >= 2:
        iteration_s = float((iterations["end_s"].iloc[-1] - iterations["end_s"].iloc[0])
                            / (n_it - 1))
        last = int(iterations["iteration"].iloc[-1])
    else:
        iteration_s = float(iterations["end_s"].iloc[0])
        last = int(iterations["iteration"].iloc[0])
    it_ops = ops[(ops["iteration"] == last) & (ops["kind"] == "compute")
                 & ops["rank"].isin(workers)]
    compute_s = float((it_ops["end_s"] - it_ops["start_s"]).groupby(it_ops["rank"]).sum().max())
    moved = float(flows["bytes"].sum()) / max(n_it, 1) if len(flows) else 0.0
    return {
        "workers": strategy.workers,
        "global_batch": compiled.global_batch,
        "iteration_s": iteration_s,
        "samples_per_s": compiled.global_batch / iteration_s if iteration_s > 0 else float("inf"),
        "compute_s": compute_s,
        "exposed_comm_s": max(iteration_s - compute_s, 0.0),
        "bytes_per_iteration": moved,
        "iterations": n_it,
    }


RESULT_TABLES = ("ops", "iterations", "devices", "links", "flows")


def result_tables(result: SimResult) -> dict[str, pd.DataFrame]:
    """The tidy tables of a result by name, strategy-specific ones included."""
    out = {name: getattr(result, name) for name in RESULT_TABLES}
    out.update(result.tables)
    return out


#: Scaling baselines: one worker, one server's GPUs, or the smallest worker count asked for.
BASELINES = ("1", "server", "smallest")


def scaling_table(workload: WorkloadSpec, system: SystemSpec, strategy, workers: list[int], *,
                  seed: int = 0, on_overflow: str = "raise", baseline: str = "1"
                  ) -> tuple[pd.DataFrame, dict[int, SimResult]]:
    """Simulate each worker count; speedup and scaling efficiency against a baseline run
    (throughput ratio, so weak and strong scaling read alike): one worker (``baseline="1"``),
    the GPUs of one server of the topology (``"server"``) or the smallest count of ``workers``
    (``"smallest"``). A strategy that cannot run on one worker (tensor x pipeline parallelism
    needs tp x pp) is compared with its smallest run. ``baseline_workers`` says which, and
    efficiency is ``speedup / (workers / baseline)``. ``on_overflow`` as in :func:`simulate`
    (``"flag"`` keeps the rows that do not fit, with ``fits_memory`` False)."""
    if baseline not in BASELINES:
        raise UnknownNameError("scaling baseline", str(baseline), list(BASELINES),
                               field="baseline")
    cache = CostCache(workload, system.cost_model)
    wanted = sorted(set(workers))
    base_n = 1
    if baseline == "smallest":
        base_n = wanted[0]
    elif baseline == "server":
        base_n = resolve_cluster(system, max(wanted)).gpus_per_server
    try:
        one = with_workers(strategy, base_n)
    except SpecError:
        one, baseline = None, wanted[0]
    else:
        baseline = base_n
    results = {n: simulate(workload, system, with_workers(strategy, n), seed=seed,
                           cost_cache=cache, on_overflow=on_overflow) for n in wanted}
    if baseline not in results:
        results[baseline] = simulate(workload, system, one, seed=seed, cost_cache=cache,
                              on_overflow=on_overflow)
    base = results[baseline].metrics["samples_per_s"]
    rows = []
    for n in wanted:
        m = dict(results[n].metrics)
        m["speedup"] = m["samples_per_s"] / base
        m["scaling_efficiency"] = m["speedup"] / (n / baseline)
        m["baseline_workers"] = baseline
        rows.append(m)
    columns = ["workers", "global_batch", "iteration_s", "samples_per_s", "speedup",
               "scaling_efficiency", "compute_s", "exposed_comm_s", "bytes_per_iteration"]
    frame = pd.DataFrame(rows)
    return frame[columns + [c for c in frame.columns if c not in columns]], results
