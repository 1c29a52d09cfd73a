"""Model and hybrid parallelism in the discrete-event simulator.

Exact expectations: a two-device split of a tiny chain on one ideal link (forward, transfer,
forward, by hand), the bytes Paleo's @self/@all wiring moves, and agreement with the
Paleo-compatible estimator where both are exact (model parallelism on two devices, hybrid on
one worker), each difference named. Then Krizhevsky's one weird trick on the K20 server in both
of his variants, placement errors, configs and determinism.
"""
from __future__ import annotations

import json
import math

import networkx as nx
import pandas as pd
import pytest

import topologies
from simulator.catalog import get_device, get_paleo_device
from simulator.cli import main
from simulator.config import load_config
from simulator.errors import SpecError, UnknownNameError
from simulator.paleo import estimate
from simulator.paleo.placement import fetch_ms, fetch_terms
from simulator.simulate import scaling_table, simulate
from simulator.specs import SystemSpec, WorkloadSpec, strategy_from_dict, with_workers
from simulator.strategies.common import CostCache
from simulator.strategies.hybrid import HybridSpec, stages
from simulator.strategies.model_parallel import (ModelParallelSpec, placement_table,
                                                 resolve_placement, resplit)
from workloads import load_net
from conftest import PALEO_NETS, REPO, requires_shared

B = 1e9        # bytes/s of the ideal link
ALPHA = 2e-6   # s


def fc(parent, n):
    return {"type": "InnerProduct", "parents": [parent] if isinstance(parent, str) else parent,
            "num_outputs": n}


def net_file(tmp_path, layers, name="tiny"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "layers": layers}))
    return str(path)


def pair_topology(tmp_path, *, bandwidth=B, latency=ALPHA, device="V100"):
    """Two GPUs joined by one full-duplex link and nothing else."""
    g = nx.Graph(name="pair")
    for i in range(2):
        g.add_node(("gpu", i, 0), role="gpu", device=device, server=i, index=0)
    topologies.add_link(g, ("gpu", 0, 0), ("gpu", 1, 0), bandwidth_Bps=bandwidth,
                        latency_s=latency, kind="link")
    path = tmp_path / "pair.json"
    topologies.save(g, path)
    return str(path)


def op(ops, rank, name, phase, iteration=0):
    rows = ops[(ops["rank"] == rank) & (ops["name"] == name) & (ops["phase"] == phase)
               & (ops["iteration"] == iteration)]
    assert len(rows) == 1, (rank, name, phase, rows)
    return rows.iloc[0]


# ---------------------------------------------------------------------------------------------
# model parallelism: exact timelines on an ideal link

def test_two_device_chain_forward_transfer_forward_by_hand(tmp_path):
    layers = {"data": {"type": "Input", "parents": [], "tensor": [8, 1, 1, 256]},
              "fc1": fc("data", 512), "fc2": fc("fc1", 64)}
    workload = WorkloadSpec(net=net_file(tmp_path, layers), batch=8)
    system = SystemSpec(topology=pair_topology(tmp_path))
    result = simulate(workload, system, ModelParallelSpec(workers=2, placement={"fc2": 1}))
    costs = CostCache(workload, "roofline").costs(8, get_device("V100"))
    f1, f2 = costs.forward_s[1], costs.forward_s[2]
    bd1, bd2 = costs.backward_data_s[1], costs.backward_data_s[2]
    bf1, bf2 = costs.backward_filter_s[1], costs.backward_filter_s[2]
    assert bd1 == 0 and min(f1, f2, bd2, bf1, bf2) > 0   # fc1 is fed by the input
    transfer = ALPHA + 8 * 512 * 4 / B                    # one hop: latency + bytes / bandwidth
    ops = result.ops
    assert op(ops, 0, "fc1", "forward")["end_s"] == pytest.approx(f1, rel=1e-12)
    act = op(ops, 0, "fc1", "activation")
    assert (act["peer"], act["nbytes"]) == (1, 8 * 512 * 4)
    assert act["end_s"] == pytest.approx(f1 + transfer, rel=1e-12)
    assert op(ops, 1, "fc2", "forward")["start_s"] == pytest.approx(f1 + transfer, rel=1e-12)
    grad_start = f1 + transfer + f2 + bd2
    grad = op(ops, 1, "fc1", "gradient")
    assert grad["start_s"] == pytest.approx(grad_start, rel=1e-12)
    assert op(ops, 0, "fc1", "backward_filter")["end_s"] == pytest.approx(
        grad_start + transfer + bf1, rel=1e-12)
    # fc2's filter gradient overlaps the transfer of fc1's gradient
    assert op(ops, 1, "fc2", "backward_filter")["start_s"] == pytest.approx(grad_start,
                                                                           rel=1e-12)
    model = CostCache(workload, "roofline").model
    u0 = model.update_time_s(256 * 512 + 512, get_device("V100"), dtype="fp32", optimizer="sgd")
    u1 = model.update_time_s(512 * 64 + 64, get_device("V100"), dtype="fp32", optimizer="sgd")
    end = max(grad_start + transfer + bf1 + u0, grad_start + bf2 + u1)
    assert result.iterations["end_s"].iloc[0] == pytest.approx(end, rel=1e-12)
    assert result.metrics["global_batch"] == 8
    assert result.metrics["bytes_per_iteration"] == 2 * 8 * 512 * 4


def test_independent_branches_on_two_devices_run_concurrently(tmp_path):
    layers = {"data": {"type": "Input", "parents": [], "tensor": [16, 1, 1, 1024]},
              "a": fc("data", 2048), "b": fc("data", 2048),
              "c": {"type": "Concatenate", "parents": ["a", "b"], "dim": -1}}
    workload = WorkloadSpec(net=net_file(tmp_path, layers), batch=16)
    result = simulate(workload, SystemSpec(topology=pair_topology(tmp_path)),
                      ModelParallelSpec(workers=2, placement={"b": 1}))
    ops = result.ops
    a, b = op(ops, 0, "a", "forward"), op(ops, 1, "b", "forward")
    assert a["start_s"] == 0 and b["start_s"] == 0       # the input is host-fed on each device
    transfer = ALPHA + 16 * 2048 * 4 / B
    assert op(ops, 0, "c", "forward")["start_s"] == pytest.approx(
        max(a["end_s"], b["end_s"] + transfer), rel=1e-12)
    one = simulate(workload, SystemSpec(topology=pair_topology(tmp_path)),
                   ModelParallelSpec(workers=1, placement={"b": 1}))  # the 1-device baseline
    assert set(one.ops["rank"]) == {0}
    assert result.metrics["compute_s"] < one.metrics["compute_s"]


# ---------------------------------------------------------------------------------------------
# placement

def test_default_placement_is_paleos_and_user_keys_override_it():
    g = load_net("alexnet_owt_4gpu")
    default = resolve_placement(g, ModelParallelSpec(workers=4))
    assert default["parallel_fc67/fc7@3"] == 3 and default["parallel_fc67/fc6@0"] == 0
    assert {default[n] for n in ("data", "conv1", "pool5", "concat7", "fc8")} == {0}
    placed = resolve_placement(g, ModelParallelSpec(workers=4, placement={
        "conv*": 1, "conv5": 2, "parallel_fc67": 3, "parallel_fc67/fc7": 0, "concat7..": 2}))
    assert placed["conv1"] == 1 and placed["conv4"] == 1
    assert placed["conv5"] == 2                            # a name beats a pattern
    assert placed["parallel_fc67/fc6@2"] == 3              # the block
    assert placed["parallel_fc67/fc7@1"] == 0              # a copy's name without @s
    assert [placed[n] for n in ("concat7", "fc8", "softmax")] == [2, 2, 2]   # a range
    table = placement_table(g, ModelParallelSpec(workers=4))
    assert table.set_index("layer").loc["pool5", "output_bytes_per_sample"] == 5 * 5 * 256 * 4


def test_vgg16_in_two_halves_by_a_range(tmp_path):
    strategy = ModelParallelSpec(workers=2, placement={"conv4_1..": 1})
    result = simulate(WorkloadSpec(net="vgg16", batch=4), SystemSpec(topology="dgx1_v100"),
                      strategy)
    moved = result.ops[result.ops["kind"] == "transfer"]
    assert sorted(set(moved["name"])) == ["pool3"]         # the one edge that crosses
    assert moved["nbytes"].tolist() == [4 * 28 * 28 * 256 * 4] * 4   # 2 iterations, fwd + bwd


def test_ranges_of_blocks_and_unknown_names_in_a_large_net():
    g = load_net("inception_v3", batch=1)
    placed = resolve_placement(g, ModelParallelSpec(workers=3, placement={
        "Mixed_6a..Mixed_6e": 1, "Mixed_6c": 2}))
    assert placed["Mixed_6a/Branch_0/Conv2d_1a_3x3"] == 1 and placed["Mixed_6e/concat"] == 1
    assert placed["Mixed_6c/Branch_3/Conv2d_0b_1x1"] == 2      # a block beats a range
    assert placed["Mixed_5d/concat"] == 0 and placed["Mixed_7a/concat"] == 0
    with pytest.raises(SpecError) as info:     # too many names to list: the closest ones
        resolve_placement(g, ModelParallelSpec(workers=3, placement={"Mixed_9": 1}))
    assert not isinstance(info.value, UnknownNameError)
    assert info.value.field == "strategy.placement.Mixed_9" and "Mixed_7c" in str(info.value)


@pytest.mark.parametrize("placement, field, exc", [
    ({"conv9": 1}, "strategy.placement.conv9", UnknownNameError),
    ({"nothing*": 1}, "strategy.placement.nothing*", UnknownNameError),
    ({"conv1..convX": 1}, "strategy.placement.conv1..convX", UnknownNameError),
    ({"conv*": 0, "*1": 1}, "strategy.placement.*1", SpecError),      # disagreeing patterns
])
def test_placement_keys_that_match_badly_name_the_field(placement, field, exc):
    with pytest.raises(exc) as info:
        resolve_placement(load_net("alexnet_owt_2gpu"),
                          ModelParallelSpec(workers=2, placement=placement))
    assert info.value.field == field
    assert field.split(".", 2)[2] in str(info.value)


@pytest.mark.parametrize("placement, value", [
    ({"conv1": 2}, 2), ({"conv1": -1}, -1), ({"conv1": "1"}, "1"), ({"conv1": True}, True)])
def test_device_index_outside_the_workers_is_a_spec_error(placement, value):
    with pytest.raises(SpecError) as info:
        ModelParallelSpec(workers=2, placement=placement)
    assert info.value.field == "strategy.placement.conv1" and info.value.value == value


def test_default_placement_needs_a_device_per_split():
    with pytest.raises(SpecError) as info:
        resolve_placement(load_net("alexnet_owt_4gpu"), ModelParallelSpec(workers=2))
    assert info.value.field == "strategy.workers" and "parallel_fc67/fc6@2" in str(info.value)
    with pytest.raises(SpecError) as info:
        ModelParallelSpec(workers=2, placement=[1, 2])
    assert info.value.field == "strategy.placement"


def test_placement_round_trips_through_a_saved_config():
    spec = strategy_from_dict({"kind": "model_parallel", "workers": 2,
                               "placement": {"conv4_1..": 1, "fc*": 0}})
    assert spec.placement == (("conv4_1..", 1), ("fc*", 0))
    again = strategy_from_dict({"kind": "model_parallel", "workers": 2,
                                "placement": [list(p) for p in spec.placement]})
    assert again == spec and with_workers(spec, 1).workers == 1
    assert spec.scaling == "strong" and HybridSpec().scaling == "weak"


# ---------------------------------------------------------------------------------------------
# the bytes Paleo's wiring implies, and the Paleo-compatible estimator where both are exact

def test_alexnet_owt_4gpu_moves_exactly_what_its_wiring_implies():
    """pool5 -> fc6@1..3 (3 sends), dropout6@all -> concat6@s (4 x 3 sends),
    dropout7@1..3 -> concat7 (3 sends), each once forward and once backward."""
    result = simulate(WorkloadSpec(net="alexnet_owt_4gpu", batch=128),
                      SystemSpec(topology="k20_server"), ModelParallelSpec(workers=4))
    pool5 = 128 * 5 * 5 * 256 * 4
    split = 128 * 1024 * 4
    per_direction = 3 * pool5 + 12 * split + 3 * split
    assert per_direction == 17_694_720
    moved = result.ops[(result.ops["kind"] == "transfer") & (result.ops["iteration"] == 1)]
    assert moved.groupby("phase")["nbytes"].sum().to_dict() == {
        "activation": per_direction, "gradient": per_direction}
    assert (moved["phase"] == "activation").sum() == 18
    assert result.metrics["bytes_per_iteration"] == 2 * per_direction
    assert result.flows["bytes"].sum() == 2 * 2 * per_direction


@requires_shared
@pytest.mark.parametrize("k", [2, 4, 8])
def test_paleos_own_model_parallel_nets_run_as_ours_do(k):
    """Paleo's alex_v2_Kgpu.json files (read unchanged) and our alexnet_owt_Kgpu nets have the
    same layers and wiring, so they give the same timelines, in both modes."""
    system = SystemSpec(topology="k20_server")
    for strategy in (ModelParallelSpec(workers=k), HybridSpec(workers=k, fc_batch="sequential")):
        paleo = simulate(WorkloadSpec(net=str(PALEO_NETS / f"alex_v2_{k}gpu.json"), batch=128),
                         system, strategy)
        ours = simulate(WorkloadSpec(net=f"alexnet_owt_{k}gpu", batch=128), system, strategy)
        assert paleo.metrics["bytes_per_iteration"] > 0
        assert paleo.metrics["iteration_s"] == ours.metrics["iteration_s"]
        assert paleo.metrics["bytes_per_iteration"] == ours.metrics["bytes_per_iteration"]


def test_two_way_model_parallel_equals_paleos_bounds_less_its_concat7_fetch(tmp_path):
    """One link at Paleo's fetch bandwidth (K20 memory "GB/s" as GiB/s x ppp_comm), no latency,
    Paleo's per-layer costs: the forward and backward spans equal Paleo's model-mode lower
    bounds minus the fetch Paleo charges concat7 for dropout7@0 and @1. The first term is bug B3
    (split 0 lives on device 0); the second is hidden because split 1 runs one dropout6 fetch
    ahead (its remote half arrives while split 0 still waits for pool5's), so dropout7@1
    arrives exactly when dropout7@0 is done."""
    paleo_k20 = get_paleo_device("K20")
    bandwidth = paleo_k20.mem_bandwidth_gbps_label * 2 ** 30 * 0.75
    system = SystemSpec(topology=pair_topology(tmp_path, bandwidth=bandwidth, latency=0.0,
                                               device="K20"),
                        cost_model="paleo:cuda-convnet2")
    result = simulate(WorkloadSpec(net="alexnet_owt_2gpu", batch=128), system,
                      ModelParallelSpec(workers=2, iterations=1))
    ops = result.ops
    forward_end = ops.loc[ops["phase"] == "forward", "end_s"].max()
    backward_end = ops.loc[ops["phase"].str.startswith("backward"), "end_s"].max()
    paleo = estimate("alexnet_owt_2gpu", device="K20", ppp_comp=0.46, ppp_comm=0.75,
                     parallel="model").set_index("bound").loc["lowerbound"]
    graph = load_net("alexnet_owt_2gpu")
    fetch = fetch_ms(fetch_terms(graph), len(graph.layers), device=paleo_k20, ppp_comm=0.75)
    concat7 = fetch[[layer.name for layer in graph.layers].index("concat7")]
    assert concat7 > 0
    assert forward_end * 1e3 == pytest.approx(paleo["time_fwd_ms"] - concat7, rel=1e-9)
    assert (backward_end - forward_end) * 1e3 == pytest.approx(
        paleo["time_bwd_ms"] - concat7, rel=1e-9)


def test_one_worker_hybrid_equals_paleos_hybrid_less_its_phantom_fetches():
    """K = 1: no communication, so the simulator runs Paleo's per-layer times back to back;
    Paleo still charges fc6@0 and concat7 remote fetches (bug B3) at the network bandwidth,
    once in the forward and once in the backward sum."""
    for fc_batch in ("all", "sequential"):
        result = simulate(WorkloadSpec(net="alexnet_owt_1gpu", batch=128),
                          SystemSpec(topology="k20_server", cost_model="paleo:cuda-convnet2"),
                          HybridSpec(workers=1, fc_batch=fc_batch))
        paleo = estimate("alexnet_owt_1gpu", device="K20", network="pcie2", ppp_comp=0.46,
                         ppp_comm=0.75, parallel="hybrid", hybrid_workers=1)
        graph = load_net("alexnet_owt_1gpu")
        fetch = fetch_ms(fetch_terms(graph), len(graph.layers), device=get_paleo_device("K20"),
                         ppp_comm=0.75, network_gbit_per_s=64.0).sum()
        total = paleo.set_index("part").loc["total", "time_ms"]
        assert fetch > 0 and result.metrics["bytes_per_iteration"] == 0
        assert result.metrics["iteration_s"] * 1e3 == pytest.approx(total - 2 * fetch,
                                                                    rel=1e-9)


# ---------------------------------------------------------------------------------------------
# hybrid parallelism: Krizhevsky's one weird trick

def test_stages_of_alexnet_owt():
    g = resplit(load_net("alexnet_owt_1gpu"), 4)
    assert g.total_params == load_net("alexnet_owt_4gpu").total_params
    st = stages(g, 4)
    names = [layer.name for layer in g.layers]
    assert [names[i] for i in st.inputs] == ["pool5"]
    assert [names[i] for i in st.post] == ["concat7", "fc8", "softmax"]
    assert names[st.pre[0]] == "conv1" and len(st.mp) == 4 * 5
    assert sorted(st.groups) == ["parallel_fc67/dropout6", "parallel_fc67/dropout7"]


def test_hybrid_two_workers_moves_what_the_exchanges_imply():
    """K = 2, B = 128, fc_batch all: ring all-reduce of the DP weights (conv + fc8), ring
    all-gather and reduce-scatter of pool5 and of dropout6 (at 256 examples), and the direct
    all-to-all of dropout7 both ways."""
    result = simulate(WorkloadSpec(net="alexnet_owt_2gpu", batch=128),
                      SystemSpec(topology="k20_server"), HybridSpec(workers=2))
    dp_weights = 4 * (23_296 + 307_392 + 663_936 + 884_992 + 590_080 + 4_097_000)
    pool5 = 128 * 5 * 5 * 256 * 4                 # per worker
    half = 256 * 2048 * 4                          # one split's dropout6 / dropout7 output
    expected = (2 * dp_weights                     # ring all-reduce: 2 ranks x 2(n-1)/n S
                + 2 * 2 * pool5                    # all-gather + reduce-scatter, each rank sends
                + 2 * 2 * half                     # its half of the gathered buffer
                + 2 * half)                        # all-to-all: each sends half its split, twice
    assert result.metrics["bytes_per_iteration"] == expected
    assert result.metrics["global_batch"] == 256


def test_hybrid_resplits_the_block_for_any_worker_count():
    system = SystemSpec(topology="k20_server")
    a = simulate(WorkloadSpec(net="alexnet_owt_8gpu", batch=32), system, HybridSpec(workers=2))
    b = simulate(WorkloadSpec(net="alexnet_owt_2gpu", batch=32), system, HybridSpec(workers=2))
    pd.testing.assert_frame_equal(a.ops, b.ops)
    with pytest.raises(SpecError) as info:
        simulate(WorkloadSpec(net="alexnet_owt", batch=32), system, HybridSpec(workers=2))
    assert info.value.field == "workload.net"


@pytest.fixture(scope="module")
def owt_runs():
    """Both variants on the K20 server for K = 1, 2, 4, 8 (fc6/fc7 split K ways)."""
    runs = {}
    for fc_batch in ("all", "sequential"):
        for k in (1, 2, 4, 8):
            runs[(k, fc_batch)] = simulate(WorkloadSpec(net=f"alexnet_owt_{k}gpu", batch=128),
                                           SystemSpec(topology="k20_server"),
                                           HybridSpec(workers=k, fc_batch=fc_batch))
    return runs


def test_sequential_fc_batches_cost_more_compute_and_save_at_most_the_boundary_time(owt_runs):
    """K batches of B through the FC layers cost at least one batch of K*B (a roofline is
    subadditive in the batch, and the FC weights take K steps instead of one); what the
    sequential variant can win back is at most the time the all variant spends in its
    boundary and block exchanges, which it can overlap."""
    for k in (2, 4, 8):
        every, seq = owt_runs[(k, "all")], owt_runs[(k, "sequential")]
        assert seq.metrics["compute_s"] >= every.metrics["compute_s"]
        ops = every.ops
        exchanges = ops[(ops["rank"] == 0) & (ops["iteration"] == 1) & ops["phase"].isin(
            ["boundary", "boundary_grad", "exchange", "exchange_grad"])]
        exchange_s = float((exchanges["end_s"] - exchanges["start_s"]).sum())
        assert exchange_s > 0
        assert seq.metrics["iteration_s"] >= every.metrics["iteration_s"] - exchange_s


def test_one_weird_trick_speedups_follow_krizhevskys_trend(owt_runs):
    """Throughput speedups (K*B images per iteration) rise with K and stay near K (a K-way FC
    split on K*B examples may beat K slightly: each split reads 1/K of the weights), and the FC
    layers taking all K*B examples at once beat K batches in sequence, as in Krizhevsky's Table 1
    (arXiv 1404.5997: 6.25x vs 6.16x at K=8). Those published values are low-confidence
    recollections, so only their trend is checked here; the validation table reports the errors."""
    speedup = {key: run.metrics["samples_per_s"] / owt_runs[(1, key[1])].metrics["samples_per_s"]
               for key, run in owt_runs.items()}
    for variant in ("all", "sequential"):
        values = [speedup[(k, variant)] for k in (1, 2, 4, 8)]
        assert values == sorted(values)
        assert all(0.75 * k <= s <= 1.02 * k for k, s in zip((1, 2, 4, 8), values))
    for k in (2, 4, 8):
        assert speedup[(k, "all")] > speedup[(k, "sequential")]


def test_same_inputs_give_bit_identical_results():
    system = SystemSpec(topology="k20_server")
    for workload, strategy in (
            (WorkloadSpec(net="alexnet_owt_4gpu", batch=64), ModelParallelSpec(workers=4)),
            (WorkloadSpec(net="alexnet_owt_4gpu", batch=64), HybridSpec(workers=4)),
            (WorkloadSpec(net="alexnet_owt_4gpu", batch=64),
             HybridSpec(workers=4, fc_batch="sequential", overlap=False))):
        a, b = simulate(workload, system, strategy), simulate(workload, system, strategy)
        pd.testing.assert_frame_equal(a.ops, b.ops)
        pd.testing.assert_frame_equal(a.flows, b.flows)
        assert a.metrics == b.metrics


def test_gradient_overlap_hides_the_all_reduce(owt_runs):
    overlapped = owt_runs[(8, "all")]
    serial = simulate(WorkloadSpec(net="alexnet_owt_8gpu", batch=128),
                      SystemSpec(topology="k20_server"), HybridSpec(workers=8, overlap=False))
    assert serial.metrics["compute_s"] == pytest.approx(overlapped.metrics["compute_s"],
                                                        rel=1e-12)
    assert serial.metrics["iteration_s"] > overlapped.metrics["iteration_s"]


@pytest.mark.parametrize("fields, field", [
    ({"fc_batch": "half"}, "strategy.fc_batch"), ({"algorithm": "nope"}, "strategy.algorithm"),
    ({"bucket_bytes": -1}, "strategy.bucket_bytes"), ({"workers": 0}, "strategy.workers"),
    ({"overlap": "yes"}, "strategy.overlap")])
def test_hybrid_spec_errors_name_the_field(fields, field):
    with pytest.raises(SpecError) as info:
        strategy_from_dict({"kind": "hybrid", **fields})
    assert info.value.field == field


# ---------------------------------------------------------------------------------------------
# configs and the CLI

@pytest.mark.parametrize("path", sorted((REPO / "experiments" / "configs").glob("owt_*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_owt_configs_load_and_run(path):
    config = load_config(path)
    strategy = config.strategy
    table, _ = scaling_table(config.workload, config.system, strategy, [strategy.workers])
    assert table["iteration_s"].iloc[0] > 0 and math.isfinite(table["speedup"].iloc[0])


def test_simulate_command_runs_a_hybrid_scaling(tmp_path, capsys):
    config = tmp_path / "owt.yaml"
    config.write_text("workload: {net: alexnet_owt_2gpu, batch: 32}\n"
                      "system: {topology: k20_server}\n"
                      "strategy: {kind: hybrid, workers: 2, fc_batch: sequential}\n")
    assert main(["simulate", str(config), "--workers", "1,2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["workers"] for r in rows] == [1, 2] and rows[0]["speedup"] == 1.0
    assert [r["global_batch"] for r in rows] == [32, 64]


def test_each_device_holds_the_memory_of_its_own_layers():
    graph = load_net("vgg16", batch=8)
    result = simulate(WorkloadSpec(net="vgg16", batch=8), SystemSpec(topology="k20_server"),
                      ModelParallelSpec(workers=2, placement={"conv4_1..": 1}))
    table = result.tables["memory"].set_index("rank")
    names = [layer.name for layer in graph.layers]
    second = set(names[names.index("conv4_1"):])
    params = {0: 0, 1: 0}
    for layer in graph.layers:
        params[1 if layer.name in second else 0] += layer.params
    for rank in (0, 1):
        assert table.loc[rank, "weights_bytes"] == 4 * params[rank]  # fp32 weights
    assert result.metrics["peak_memory_bytes"] == table["total_bytes"].max()


def test_hybrid_workers_hold_the_conv_stage_and_their_fc_split():
    result = simulate(WorkloadSpec(net="alexnet_owt_4gpu", batch=128),
                      SystemSpec(topology="k20_server"), HybridSpec(workers=4, fc_batch="all"))
    table = result.tables["memory"]
    graph = load_net("alexnet_owt_4gpu", batch=128)
    dp = sum(layer.params for layer in graph.layers if layer.split is None)
    mp = sum(layer.params for layer in graph.layers if layer.split == 0)
    assert set(table["weights_bytes"]) == {4 * (dp + mp)}  # fp32, every worker alike
