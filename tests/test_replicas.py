"""Representative replicas (simulator.replicas): exactly the full simulation where the symmetry
is exact, and never silently used where it is not."""
from __future__ import annotations

import json
from dataclasses import replace

import networkx as nx
import numpy as np
import pytest
import simpy

import topologies
from simulator.errors import InfeasibleError, SpecError, SymmetryBroken
from simulator.network import Network
from simulator.replicas import AUTO_MIN_RANKS, fold, translations
from simulator.simulate import simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from topologies import add_link
from workloads.transformer import transformer_spec

ALEXNET = WorkloadSpec(net="alexnet_owt", batch=32)


def system(topology: str, fidelity: str, **kwargs) -> SystemSpec:
    return SystemSpec(topology=topology, fidelity=fidelity, **kwargs)


def both(workload, topology, strategy, **kwargs):
    """The full and the representative simulation of one question."""
    full = simulate(workload, system(topology, "full", **kwargs), strategy)
    reps = simulate(workload, system(topology, "replicas", **kwargs), strategy)
    return full, reps


def assert_same_run(full, reps):
    """Every figure a user reads is the full run's, exactly."""
    assert reps.metrics["fidelity"] == "replicas"
    assert full.metrics["fidelity"] == "full"
    for name in ("iteration_s", "compute_s", "exposed_comm_s", "simulated_s",
                 "energy_per_iteration_J"):
        if name in full.metrics:
            assert reps.metrics[name] == full.metrics[name], name
    assert list(reps.iterations["duration_s"]) == list(full.iterations["duration_s"])
    link_bytes = lambda r: r.links.set_index(["src", "dst"])["bytes"].sort_index()
    assert np.array_equal(link_bytes(reps).to_numpy(), link_bytes(full).to_numpy())
    # the representatives' operations are the full run's operations, start and end
    # (a strategy that emits representatives directly numbers them its own way: match them by
    # what they are)
    what = ["rank", "stream", "kind", "name", "phase", "microbatch", "iteration"]
    named = lambda r: r.ops.sort_values("op", kind="stable").assign(
        nth=lambda f: f.groupby(what).cumcount())[what + ["nth", "start_s", "end_s"]]
    merged = named(reps).merge(named(full), on=what + ["nth"], suffixes=("", "_full"))
    assert len(merged) == len(reps.ops)
    assert (merged["start_s"] == merged["start_s_full"]).all()
    assert (merged["end_s"] == merged["end_s_full"]).all()


@pytest.mark.parametrize("oversubscription", [1.0, 4.0])
def test_data_parallel_replicas_equal_the_full_run_on_a_fat_tree(oversubscription):
    topology = (f"fat_tree(k=4, oversubscription={oversubscription}, server='dgx_a100', "
                "routing='dmodk')")
    full, reps = both(ALEXNET, topology, DataParallelSpec(workers=16, algorithm="ring"))
    assert_same_run(full, reps)
    assert reps.metrics["simulated_ranks"] == 1
    assert full.metrics["simulated_ranks"] == 16
    assert set(reps.ops["rank"]) == {0}
    # every copy's bytes still cross the fabric: the links carry the full run's traffic
    assert reps.links["bytes"].sum() == full.links["bytes"].sum() > 0


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("nets") / "gpt.json"
    path.write_text(json.dumps(transformer_spec(arch="gpt", layers=4, hidden=256, heads=8,
                                                seq_len=128, vocab=1024)))
    return str(path)


@pytest.mark.parametrize("tp_comm", ["isolated", "network"])
@pytest.mark.parametrize("topology", [
    "single_switch(servers=4, server='dgx_a100')",
    "fat_tree(k=4, oversubscription=4, server='dgx_a100', routing='dmodk')"])
def test_parallel3d_replicas_equal_the_full_run(gpt, topology, tp_comm):
    workload = WorkloadSpec(net=gpt, batch=16, dtype="fp16", optimizer="adam")
    strategy = Parallel3DSpec(tp=2, pp=2, dp=4, microbatches=4, iterations=1, tp_comm=tp_comm)
    full, reps = both(workload, topology, strategy)
    assert_same_run(full, reps)
    assert reps.metrics["simulated_ranks"] == 2  # one rank per stage
    assert full.metrics["simulated_ranks"] == 16


def test_translations_are_the_coordinates_set_to_zero():
    # ranks laid out (pp, dp, tp) = (2, 2, 2): the representative has dp = tp = 0
    rep = translations((2, 2, 2), (1, 2))
    assert rep.tolist() == [0, 0, 0, 0, 4, 4, 4, 4]
    assert translations((2, 3), (0,)).tolist() == [0, 1, 2, 0, 1, 2]


def test_auto_simulates_small_runs_in_full_and_says_why():
    result = simulate(ALEXNET, SystemSpec(topology="single_switch(servers=2, server='dgx_a100')"),
                      DataParallelSpec(workers=16))
    assert result.metrics["fidelity"] == "full"
    assert result.metrics["fidelity_reason"] == (
        f"16 ranks, fewer than {AUTO_MIN_RANKS} (auto simulates them all)")


@pytest.fixture(scope="module")
def tiny_mlp(tmp_path_factory):
    layers = {"data": {"type": "Input", "tensor": [1, 256]},
              "fc1": {"type": "InnerProduct", "parents": ["data"], "num_outputs": 256},
              "fc2": {"type": "InnerProduct", "parents": ["fc1"], "num_outputs": 10}}
    path = tmp_path_factory.mktemp("nets") / "mlp.json"
    path.write_text(json.dumps({"name": "mlp", "layers": layers}))
    return str(path)


def test_auto_folds_a_large_symmetric_run(tiny_mlp):
    workload = WorkloadSpec(net=tiny_mlp, batch=8)
    topology = "single_switch(servers=32, server='dgx_a100')"
    strategy = DataParallelSpec(workers=AUTO_MIN_RANKS, algorithm="ring")
    auto = simulate(workload, SystemSpec(topology=topology), strategy)
    full = simulate(workload, system(topology, "full"), strategy)
    assert auto.metrics["fidelity"] == "replicas"
    assert auto.metrics["fidelity_reason"].startswith(f"1 representative ranks for {AUTO_MIN_RANKS}")
    assert auto.metrics["iteration_s"] == full.metrics["iteration_s"]


def test_a_strategy_without_a_candidate_runs_in_full():
    result = simulate(ALEXNET, system("single_switch(servers=2, server='p2.8xlarge', cpu_hosts=2)", "auto"),
                      ParameterServerSpec(workers=8, shards=2))
    assert result.metrics["fidelity"] == "full"
    assert "proposes no representative replicas" in result.metrics["fidelity_reason"]
    with pytest.raises(InfeasibleError, match="proposes no representative replicas"):
        simulate(ALEXNET, system("single_switch(servers=2, server='p2.8xlarge', cpu_hosts=2)", "replicas"),
                 ParameterServerSpec(workers=8, shards=2))


@pytest.fixture(scope="module")
def one_slow_gpu(tmp_path_factory):
    """Two p2.8xlarge servers, one of whose sixteen K80s is a V100: a heterogeneous cluster."""
    graph = topologies.single_switch(servers=2, server="p2.8xlarge")
    gpus = sorted((n for n, a in graph.nodes(data=True) if a.get("role") == "gpu"), key=str)
    graph.nodes[gpus[5]]["device"] = "V100"
    path = tmp_path_factory.mktemp("topo") / "mixed.json"
    topologies.save(graph, path)
    return str(path)


def test_a_different_device_refuses_the_fold(one_slow_gpu, monkeypatch):
    strategy = DataParallelSpec(workers=16, algorithm="ring")
    with pytest.raises(InfeasibleError, match="rank 5 runs on a V100, its representative 0 on a "
                                              "K80"):
        simulate(ALEXNET, system(one_slow_gpu, "replicas"), strategy)
    monkeypatch.setattr("simulator.replicas.AUTO_MIN_RANKS", 1)
    auto = simulate(ALEXNET, system(one_slow_gpu, "auto"), strategy)
    assert auto.metrics["fidelity"] == "full"
    assert auto.metrics["fidelity_reason"] == (
        "not symmetric: rank 5 runs on a V100, its representative 0 on a K80")


def test_fold_refuses_a_rank_whose_duration_differs():
    result = simulate(ALEXNET, system("single_switch(servers=1, server='p2.8xlarge')", "full"),
                      DataParallelSpec(workers=4, algorithm="ring"))
    tg = result.taskgraph
    durations = np.array([op.duration_s for op in tg.ops], dtype=float)
    devices = ["K80"] * tg.ranks
    assert not isinstance(fold(tg, [0] * tg.ranks, durations, devices), str)
    slow = next(op.id for op in tg.ops if op.rank == 3 and op.duration_s > 0)
    durations[slow] *= 1.2  # one straggling kernel on rank 3
    reason = fold(tg, [0] * tg.ranks, durations, devices)
    assert isinstance(reason, str) and reason.startswith("rank 3's compute")
    assert "takes" in reason
    assert isinstance(fold(tg, [0, 0, 2, 0], durations, devices), str)  # 2 is not its own rep


def test_ecmp_collisions_fall_back_to_the_full_run(gpt, monkeypatch):
    """On a hashed fabric some data-parallel groups' flows share uplinks and others do not: the
    copies would not run at one rate, and the run says so instead of pretending."""
    topology = "fat_tree(k=8, oversubscription=1, server='dgx_a100', routing='ecmp')"
    workload = WorkloadSpec(net=gpt, batch=16, dtype="fp16", optimizer="adam")
    strategy = Parallel3DSpec(tp=8, pp=1, dp=4, microbatches=4, iterations=1)
    with pytest.raises(InfeasibleError, match="not symmetric on the network: mirrored flow "
                       "collective:gradients:dp_allreduce:0:0: copy 0 of 8 would run faster"):
        simulate(workload, system(topology, "replicas"), strategy)
    monkeypatch.setattr("simulator.replicas.AUTO_MIN_RANKS", 1)  # auto tries it at 32 ranks
    auto = simulate(workload, system(topology, "auto"), strategy)
    full = simulate(workload, system(topology, "full"), strategy)
    assert auto.metrics["fidelity"] == "full"
    assert auto.metrics["fidelity_reason"].startswith("not symmetric on the network: mirrored flow")
    assert auto.metrics["iteration_s"] == full.metrics["iteration_s"]
    # the same question on the deterministic d-mod-k routing is symmetric, and exact
    full, reps = both(workload, topology.replace("ecmp", "dmodk"), strategy)
    assert_same_run(full, reps)


def chain_of_two_bottlenecks() -> nx.Graph:
    """h0 - h1 at 1 GB/s and h2 - h3 at 2 GB/s: two flows that a mirrored flow cannot couple."""
    g = nx.Graph(name="pairs")
    for i in range(4):
        g.add_node(("cpu", i), role="cpu", device="CPU")
    add_link(g, ("cpu", 0), ("cpu", 1), bandwidth_Bps=1e9, latency_s=0.0, kind="ethernet")
    add_link(g, ("cpu", 2), ("cpu", 3), bandwidth_Bps=2e9, latency_s=0.0, kind="ethernet")
    add_link(g, ("cpu", 1), ("cpu", 2), bandwidth_Bps=1e9, latency_s=0.0, kind="ethernet")
    return g


def test_a_mirrored_flow_over_symmetric_parts_runs_at_their_rate():
    g = chain_of_two_bottlenecks()
    g.edges[("cpu", 2), ("cpu", 3)]["bandwidth_Bps"] = 1e9
    env = simpy.Environment()
    net = Network(env, g)
    done = net.transfer_group([(("cpu", 0), ("cpu", 1), None), (("cpu", 2), ("cpu", 3), None)],
                              1e9, parts=(1, 1), keys=["a", "b"])
    env.run(done)
    assert env.now == pytest.approx(1.0, rel=1e-12)


def test_a_mirrored_flow_over_asymmetric_parts_is_refused():
    env = simpy.Environment()
    net = Network(env, chain_of_two_bottlenecks())
    done = net.transfer_group([(("cpu", 0), ("cpu", 1), None), (("cpu", 2), ("cpu", 3), None)],
                              1e9, parts=(1, 1), keys=["a", "b"])
    with pytest.raises(SymmetryBroken):
        env.run(done)


def test_fidelity_is_validated():
    with pytest.raises(SpecError, match="fidelity"):
        SystemSpec(topology="server(server='dgx_a100')", fidelity="some")


def compile_both(workload, topology, strategy):
    """The representative emission and the fold of the full emission of one question."""
    from simulator.cluster import resolve_cluster
    from simulator.engine import sample_durations
    from simulator.strategies.common import CostCache
    from simulator.strategies.registry import compiler
    system = SystemSpec(topology=topology, fidelity="replicas")
    cluster = resolve_cluster(system, strategy.workers)
    compile_ = compiler(strategy.kind)
    direct = compile_(workload, cluster, strategy, CostCache(workload, system.cost_model))
    full = compile_(workload, cluster.at_fidelity("full"), strategy,
                    CostCache(workload, system.cost_model))
    tg = full.taskgraph
    devices = [cluster.device_of(n).name for n in full.rank_nodes]
    folded = fold(tg, full.extra["replicas"], sample_durations(tg, seed=0, jitter_cv=0.0), devices)
    assert not isinstance(folded, str), folded
    return direct, full, folded


@pytest.mark.parametrize("options", [
    dict(tp_comm="isolated", granularity="pass"),
    dict(tp_comm="isolated", granularity="pass", scatter_gather=True),
    dict(tp_comm="network", granularity="layer"),
    dict(tp_comm="network", granularity="layer", scatter_gather=True),
    dict(tp_comm="network", granularity="layer", sequence_parallel=True),
    dict(tp_comm="network", schedule="gpipe", overlap_dp=False),
    dict(tp_comm="isolated", schedule="interleaved", chunks=2, granularity="fused"),
    dict(tp_comm="network", zero_stage=1),
    dict(tp_comm="network", zero_stage=2, overlap_dp=False, pp=1, dp=8, microbatches=2),
    dict(tp_comm="isolated", zero_stage=2, bucket_bytes=1e5, pp=1, dp=8, microbatches=2),
])
def test_representative_emission_is_the_fold_of_the_full_emission(gpt, options):
    workload = WorkloadSpec(net=gpt, batch=16, dtype="fp16", optimizer="adam")
    strategy = Parallel3DSpec(**{"tp": 2, "pp": 2, "dp": 4, "microbatches": 4, "iterations": 2,
                                 **options})
    direct, full, folded = compile_both(workload, "single_switch(servers=2, server='dgx_a100')",
                                        strategy)
    emitted = direct.extra["folded"]
    assert emitted.emitted and len(direct.taskgraph.ops) < len(full.taskgraph.ops)
    assert direct.taskgraph.ops == folded.taskgraph.ops
    copies = lambda f: {i: [(c.rank, c.peer, c.group, c.nbytes) for c in m]
                        for i, m in f.mirrors.items()}
    assert copies(emitted) == copies(folded)
    assert emitted.arrivals == folded.arrivals
    for it, ids in full.iteration_ops.items():
        mapped = sorted({int(folded.rep_of_op[i]) for i in ids})
        assert sorted(direct.iteration_ops[it]) == [int(np.flatnonzero(
            np.asarray(folded.original) == m)[0]) for m in mapped]
