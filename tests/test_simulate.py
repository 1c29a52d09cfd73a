"""Training simulations: results that must differ where real systems differ, determinism, and the
iteration accounting."""
from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

import topologies
from simulator.simulate import scaling_table, simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.errors import SpecError
from simulator.strategies.common import CostCache, buckets

ALEXNET = WorkloadSpec(net="alexnet_owt", batch=32)  # 50M parameters: communication-heavy


def fat_tree(oversubscription: float) -> SystemSpec:
    return SystemSpec(topology=f"fat_tree(k=4, oversubscription={oversubscription}, "
                               "server='p2.8xlarge')")


def test_ring_allreduce_is_slower_on_an_oversubscribed_fat_tree():
    strategy = DataParallelSpec(workers=128, algorithm="ring")
    full = simulate(ALEXNET, fat_tree(1.0), strategy).metrics
    over = simulate(ALEXNET, fat_tree(2.0), strategy).metrics
    assert full["compute_s"] == pytest.approx(over["compute_s"], rel=1e-12)
    assert over["iteration_s"] > 1.5 * full["iteration_s"]
    assert over["exposed_comm_s"] > 1.5 * full["exposed_comm_s"]


def test_a_single_parameter_server_saturates_its_nic():
    # fast GPUs (V100 in place of the nodes' K20X), so the server's NIC is the bottleneck early
    # (a Titan-like node with GPUDirect RDMA, so the only bottleneck is the server's NIC)
    node = "{{'gpu': 'K20X', 'gpus': 1, 'pcie': 'pcie2_x16', 'nics': 1, 'nic': 'gemini'}}"
    system = SystemSpec(topology="single_switch(servers={servers}, server=" + node + ", "
                                 "cpu_hosts=1)", gpus_per_server=1, device="V100")
    table, results = scaling_table(ALEXNET, system, ParameterServerSpec(shards=1), [4, 8, 16])
    speedup = dict(zip(table["workers"], table["speedup"]))
    assert speedup[16] < 1.25 * speedup[8] < 1.6 * speedup[4]
    # every worker's gradient enters the server through its link, and the parameters leave by
    # it; the pulls run concurrently (one connection per worker), so they all end together and
    # no push of the next iteration overlaps them: push + pull + compute + the server's sum of
    # the 16 pushes (memory-bound on its CPU), plus its optimizer step and latencies (under 1%)
    result = results[16]
    graph = result.cluster.graph
    host = topologies.cpu_hosts(graph)[0]
    path = nx.shortest_path(graph, host, ("switch", "tor", 0))
    bandwidth = min(graph.edges[a, b]["bandwidth_Bps"] for a, b in zip(path, path[1:]))
    grad_bytes = 49_566_504 * 4
    summed = result.cluster.device_of(host).sum_time_s(grad_bytes, 16)
    bound = 2 * 16 * grad_bytes / bandwidth + result.metrics["compute_s"] + summed
    assert bound <= result.metrics["iteration_s"] <= 1.01 * bound


def test_more_parameter_server_shards_relieve_the_hot_spot():
    system = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', "
                                 "cpu_hosts=4)", gpus_per_server=1, device="V100")
    one = simulate(ALEXNET, system, ParameterServerSpec(workers=16, shards=1)).metrics
    four = simulate(ALEXNET, system, ParameterServerSpec(workers=16, shards=4)).metrics
    assert four["iteration_s"] < 0.5 * one["iteration_s"]


def test_bucketed_overlap_hides_communication_behind_backward():
    system = SystemSpec(topology="single_switch(servers={servers}, server='p2.8xlarge')",
                        gpus_per_server=8)
    workload = WorkloadSpec(net="resnet50", batch=32)
    off = simulate(workload, system, DataParallelSpec(workers=16, overlap=False)).metrics
    on = simulate(workload, system, DataParallelSpec(workers=16, overlap=True)).metrics
    assert on["compute_s"] == pytest.approx(off["compute_s"], rel=1e-12)
    assert on["iteration_s"] < off["iteration_s"]
    assert on["exposed_comm_s"] < 0.8 * off["exposed_comm_s"]


def test_same_inputs_same_results_bit_for_bit():
    system = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', "
                                 "cpu_hosts=2)", gpus_per_server=1)
    strategy = ParameterServerSpec(workers=6, shards=2, mode="async", jitter_cv=0.2)
    a = simulate(ALEXNET, system, strategy, seed=3)
    b = simulate(ALEXNET, system, strategy, seed=3)
    pd.testing.assert_frame_equal(a.ops, b.ops)
    pd.testing.assert_frame_equal(a.flows, b.flows)
    assert a.metrics == b.metrics
    c = simulate(ALEXNET, system, strategy, seed=4)
    assert not a.ops.equals(c.ops)


def test_iteration_accounting_for_one_worker():
    system = SystemSpec(topology="server(server='dgx1_v100')")
    result = simulate(WorkloadSpec(net="resnet50", batch=16), system,
                      DataParallelSpec(workers=1, iterations=3))
    ops = result.ops
    compute = ops[(ops["iteration"] == 2) & (ops["kind"] == "compute")]
    duration = (compute["end_s"] - compute["start_s"]).sum()
    assert result.metrics["iteration_s"] == pytest.approx(duration, rel=1e-12)
    assert result.metrics["exposed_comm_s"] == pytest.approx(0.0, abs=1e-12)
    assert list(result.iterations["iteration"]) == [0, 1, 2]
    assert result.metrics["samples_per_s"] == pytest.approx(16 / duration)


def test_strong_scaling_splits_the_global_batch():
    system = SystemSpec(topology="server(server='dgx1_v100')")
    result = simulate(WorkloadSpec(net="resnet50", batch=30), system,
                      DataParallelSpec(workers=4, scaling="strong"))
    assert result.metrics["global_batch"] == 30


def test_backup_workers_do_not_wait_for_the_slowest():
    system = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', "
                                 "cpu_hosts=1)", gpus_per_server=1)
    sync = ParameterServerSpec(workers=8, shards=1, jitter_cv=0.5, iterations=4)
    backup = ParameterServerSpec(workers=7, backup_workers=1, shards=1, mode="backup",
                                 jitter_cv=0.5, iterations=4)
    workload = WorkloadSpec(net="resnet50", batch=32)
    a = simulate(workload, system, sync, seed=1).metrics
    b = simulate(workload, system, backup, seed=1).metrics
    assert b["iteration_s"] < a["iteration_s"]


def test_too_many_workers_for_the_topology_is_a_clear_error():
    system = SystemSpec(topology="server(server='dgx1_v100')")
    with pytest.raises(SpecError, match=r"strategy.workers: the topology has 8 GPUs, 9 asked"):
        simulate(ALEXNET, system, DataParallelSpec(workers=9))


def test_async_parameter_server_records_staleness():
    system = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', "
                                 "cpu_hosts=2)", gpus_per_server=1)
    alone = simulate(ALEXNET, system, ParameterServerSpec(workers=1, shards=2, mode="async",
                                                          iterations=3))
    assert (alone.tables["staleness"]["staleness"] == 0).all()
    crowd = simulate(ALEXNET, system, ParameterServerSpec(workers=4, shards=2, mode="async",
                                                          jitter_cv=0.3, iterations=4), seed=2)
    table = crowd.tables["staleness"]
    assert len(table) == 4 * 2 * 4  # workers x shards x iterations
    assert (table["staleness"] >= 0).all() and table["staleness"].max() >= 1
    for _, shard in table.groupby("shard"):
        assert list(shard["applied_to_version"]) == list(range(len(shard)))
    assert crowd.metrics["max_staleness"] == table["staleness"].max()


def test_gradient_accumulation_runs_microbatches_and_reduces_once():
    system = SystemSpec(topology="server(server='dgx1_v100')")
    result = simulate(WorkloadSpec(net="resnet50", batch=32), system,
                      DataParallelSpec(workers=2, accumulation=4, iterations=1))
    ops = result.ops
    assert sorted(ops[ops["kind"] == "compute"]["microbatch"].unique()) == [0, 1, 2, 3]
    collectives = ops[ops["kind"] == "collective"]
    grads = CostCache(result.workload, "roofline").grad_bytes()
    assert collectives["op"].nunique() == len(buckets(grads, 25e6))  # once, not per microbatch
    first_reduce = collectives["start_s"].min()
    last_mb = ops[(ops["microbatch"] == 3) & (ops["phase"] == "forward")]
    assert first_reduce >= last_mb["start_s"].min()


def test_energy_per_operation_device_and_iteration():
    system = SystemSpec(topology="server(server='dgx1_v100')")
    result = simulate(WorkloadSpec(net="resnet50", batch=16), system,
                      DataParallelSpec(workers=2, iterations=2))
    v100_busy, v100_idle = 300.0, 45.0  # catalog: board power and idle estimate
    ops = result.ops
    compute = ops[ops["kind"] == "compute"]
    assert compute["energy_J"].to_numpy() == pytest.approx(
        v100_busy * (compute["end_s"] - compute["start_s"]).to_numpy())
    assert (ops[ops["kind"] != "compute"]["energy_J"] == 0).all()
    end = ops["end_s"].max()
    for row in result.devices.itertuples(index=False):
        busy = compute[compute["rank"] == row.rank]
        busy_s = (busy["end_s"] - busy["start_s"]).sum()
        assert row.energy_J == pytest.approx(v100_busy * busy_s + v100_idle * (end - busy_s))
    last = compute[compute["iteration"] == 1]
    busy = (last["end_s"] - last["start_s"]).groupby(last["rank"]).sum()
    it = result.metrics["iteration_s"]
    expected = sum(v100_busy * b + v100_idle * (it - b) for b in busy)
    assert result.metrics["energy_per_iteration_J"] == pytest.approx(expected)
    assert result.metrics["energy_per_sample_J"] == pytest.approx(expected / 32)
