"""Pipeline parallelism: schedules (exact orders from the papers' rules), stage partitions, the
simulated bubble against (p-1)/m and (p-1)/(v m) on an ideal network, stage-to-stage traffic,
and the ``pipeline`` alias kind."""
from __future__ import annotations

import itertools
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import topologies
from simulator.errors import SpecError
from simulator.simulate import simulate
from simulator.specs import SystemSpec, WorkloadSpec, strategy_from_dict
from simulator.strategies.parallel3d_metrics import parallel_metrics
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from simulator.strategies.partition import balanced, partition_units, split_units
from simulator.strategies.pipeline import PipelineSpec
from simulator.strategies.schedules import (Action, emission_order, gpipe, in_flight,
                                            interleaved, one_f_one_b, schedule)
from workloads import build_graph

WIDTH = 512


def chain_net(blocks: int, width: int = WIDTH) -> dict:
    """Identical Blocks of one fully connected layer: equal pipeline stages. A free Reshape
    after the input keeps the first block's backward-data (it is not fed by an Input)."""
    layers = {"data": {"type": "Input", "tensor": [1, width]},
              "flat": {"type": "Reshape", "parents": ["data"], "output_shape": [1, width]}}
    previous = "flat"
    for i in range(blocks):
        layers[f"b{i}"] = {"type": "Block", "parents": [previous], "endpoint": "fc",
                           "layers": {"fc": {"type": "InnerProduct", "parents": [],
                                             "num_outputs": width}}}
        previous = f"b{i}"
    return {"name": f"chain{blocks}", "layers": layers}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("nets") / "chain24.json"
    path.write_text(json.dumps(chain_net(24)))
    return str(path)


@pytest.fixture(scope="module")
def ideal(tmp_path_factory):
    """32 GPUs whose every link is practically infinite and has no latency."""
    graph = topologies.single_switch(servers=4, server="dgx_a100")
    for _, _, attrs in graph.edges(data=True):
        attrs["bandwidth_Bps"] = 1e18
        attrs["latency_s"] = 0.0
    path = tmp_path_factory.mktemp("topo") / "ideal.json"
    topologies.save(graph, path)
    return SystemSpec(topology=str(path))


def run(net, system, *, batch, dtype="fp16", **strategy):
    workload = WorkloadSpec(net=net, batch=batch, dtype=dtype)
    return simulate(workload, system, Parallel3DSpec(**strategy))


def actions_of(ops: pd.DataFrame, rank: int, layer_stage=None) -> list[str]:
    """A rank's compute stream as F/B actions, e.g. ['F0', 'F1', 'B0', ...] (with a chunk
    letter when ``layer_stage`` maps layer names to chunks)."""
    own = ops[(ops["rank"] == rank) & (ops["stream"] == "compute")
              & ops["phase"].isin(["forward", "backward_data", "backward_filter"])]
    own = own.sort_values("start_s", kind="stable")
    out: list[str] = []
    for row in own.itertuples():
        label = ("F" if row.phase == "forward" else "B") + str(row.microbatch)
        if layer_stage is not None:
            label += "ab"[layer_stage[row.name]]
        if not out or out[-1] != label:
            out.append(label)
    return out


# -- schedules --------------------------------------------------------------------------------
def labels(actions: list[Action], chunks: bool = False) -> str:
    return " ".join(f"{a.kind}{a.microbatch}" + ("ab"[a.chunk] if chunks else "")
                    for a in actions)


def test_gpipe_runs_every_forward_then_every_backward():
    for k in range(2):
        assert labels(gpipe(2, 4, k)) == "F0 F1 F2 F3 B0 B1 B2 B3"


def test_1f1b_order_for_two_stages_and_four_microbatches():
    # warm-up of p - k - 1 forwards, then one forward one backward, then the drain
    # (PipeDream-Flush; Narayanan et al. SC21, Figure 4 top)
    assert labels(one_f_one_b(2, 4, 0)) == "F0 F1 B0 F2 B1 F3 B2 B3"
    assert labels(one_f_one_b(2, 4, 1)) == "F0 B0 F1 B1 F2 B2 F3 B3"
    assert labels(one_f_one_b(4, 8, 0)) == "F0 F1 F2 F3 B0 F4 B1 F5 B2 F6 B3 F7 B4 B5 B6 B7"


def test_interleaved_order_for_two_stages_four_microbatches_two_chunks():
    # microbatches in groups of p, chunk after chunk; warm-up 2(p-k-1) + (v-1)p chunk forwards
    assert labels(interleaved(2, 4, 2, 0), chunks=True) == (
        "F0a F1a F0b F1b F2a B0b F3a B1b F2b B0a F3b B1a B2b B3b B2a B3a")
    assert labels(interleaved(2, 4, 2, 1), chunks=True) == (
        "F0a F1a F0b B0b F1b B1b F2a B0a F3a B1a F2b B2b F3b B3b B2a B3a")


@pytest.mark.parametrize("name,p,m,v", [("gpipe", 4, 8, 1), ("1f1b", 4, 8, 1),
                                        ("1f1b", 8, 3, 1), ("interleaved", 4, 8, 2),
                                        ("interleaved", 3, 6, 4), ("interleaved", 2, 2, 3)])
def test_every_schedule_runs_each_pass_once_and_can_be_ordered(name, p, m, v):
    actions = schedule(name, p, m, v)
    for device in actions:
        assert sorted(device) == sorted(Action(kind, mb, c) for kind in "FB"
                                        for mb in range(m) for c in range(v))
    assert len(emission_order(actions, p, v)) == 2 * p * m * v


@pytest.mark.parametrize("p,m", [(4, 8), (4, 2), (8, 16), (3, 1)])
def test_1f1b_keeps_at_most_p_minus_k_microbatches_in_flight(p, m):
    for k, device in enumerate(schedule("1f1b", p, m)):
        assert in_flight(device) == min(p - k, m)
    assert all(in_flight(device) == m for device in schedule("gpipe", p, m))


def test_schedule_errors_name_the_field():
    with pytest.raises(SpecError, match="strategy.microbatches"):
        interleaved(4, 6, 2, 0)
    with pytest.raises(SpecError, match="strategy.chunks"):
        schedule("1f1b", 4, 8, 2)
    with pytest.raises(SpecError, match="strategy.schedule"):
        schedule("zigzag", 4, 8)


# -- partitions --------------------------------------------------------------------------------
def test_units_of_a_transformer_keep_embeddings_first_and_the_head_last():
    from workloads.transformer import transformer_spec
    graph = build_graph(transformer_spec(arch="gpt", layers=3, hidden=64, heads=4, seq_len=16,
                                         vocab=100))
    units = partition_units(graph)
    assert [u.name for u in units] == ["layer0", "layer1", "layer2"]
    names = [[graph.layers[i].name for i in u.layers] for u in units]
    assert {"tokens", "embed", "pos_embed", "embed_sum"} <= set(names[0])
    assert {"ln_f", "lm_head", "loss"} <= set(names[-1])
    assert sum(len(u.layers) for u in units) == len(graph.layers)


def test_balanced_partition_minimises_the_largest_stage():
    assert balanced([1, 1, 1, 1, 1, 1], 3) == [2, 2, 2]
    assert balanced([5, 1, 1, 1, 1, 1], 2) == [1, 5]
    assert balanced([1, 2, 3, 4, 5, 6, 7, 8, 9], 3) == [5, 2, 2]   # 15 | 13 | 17
    assert split_units([1.0] * 10, 4, "uniform") == [3, 3, 2, 2]
    assert split_units([1.0] * 5, 2, "explicit", [4, 1]) == [4, 1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=9), st.integers(1, 4))
def test_balanced_partition_equals_brute_force(costs, stages):
    stages = min(stages, len(costs))
    counts = balanced(costs, stages)
    assert len(counts) == stages and sum(counts) == len(costs) and min(counts) >= 1

    def worst(split):
        out, start = 0, 0
        for c in split:
            out = max(out, sum(costs[start:start + c]))
            start += c
        return out
    best = min(worst([b - a for a, b in zip((0,) + cut, cut + (len(costs),))])
               for cut in itertools.combinations(range(1, len(costs)), stages - 1))
    assert worst(counts) == best


def test_partition_errors(chain, ideal):
    with pytest.raises(SpecError, match="strategy.pp"):
        run(chain, ideal, batch=16, pp=16, chunks=2, schedule="interleaved", microbatches=16,
            iterations=1)
    with pytest.raises(SpecError, match="stage_layers"):
        run(chain, ideal, batch=4, pp=2, partition="explicit", stage_layers=[20, 3],
            microbatches=4, iterations=1)
    with pytest.raises(SpecError, match="stage_layers"):
        Parallel3DSpec(pp=2, partition="explicit")


def test_explicit_partition_is_followed(chain, ideal):
    result = run(chain, ideal, batch=4, pp=2, partition="explicit", stage_layers=[20, 4],
                 microbatches=4, iterations=1)
    assert [len(s) for s in result.taskgraph.meta["stage_units"]] == [20, 4]
    busy = result.ops[result.ops["phase"] == "forward"].groupby("rank")["flops"].sum()
    assert busy[0] == pytest.approx(5 * busy[1], rel=1e-12)


# -- the simulated bubble -----------------------------------------------------------------------
@pytest.mark.parametrize("name,p,m,v", [
    ("gpipe", 4, 8, 1), ("gpipe", 2, 3, 1), ("1f1b", 4, 8, 1), ("1f1b", 8, 16, 1),
    ("1f1b", 4, 2, 1), ("interleaved", 4, 8, 2), ("interleaved", 2, 4, 3),
    ("interleaved", 4, 16, 3), ("interleaved", 8, 8, 3)])
def test_bubble_fraction_on_an_ideal_network(chain, ideal, name, p, m, v):
    result = run(chain, ideal, batch=2 * m, pp=p, microbatches=m, schedule=name, chunks=v,
                 partition="uniform", iterations=1)
    expected = (p - 1) / (v * m)  # Narayanan et al. SC21, section 2.2
    assert parallel_metrics(result)["bubble_fraction"] == pytest.approx(expected, rel=0.02)


def test_iteration_time_is_m_plus_p_minus_1_stage_times(chain, ideal):
    p, m = 4, 8
    result = run(chain, ideal, batch=m, pp=p, microbatches=m, partition="uniform", iterations=1)
    ops = result.ops
    stage0 = ops[(ops["rank"] == 0) & ops["phase"].isin(["forward", "backward_data",
                                                         "backward_filter"])]
    per_microbatch = float((stage0["end_s"] - stage0["start_s"]).sum()) / m
    pipe = parallel_metrics(result)["pipeline_s"]
    assert pipe == pytest.approx((m + p - 1) * per_microbatch, rel=1e-9)


@pytest.mark.parametrize("name", ["gpipe", "1f1b"])
def test_simulated_order_of_passes_follows_the_schedule(chain, ideal, name):
    result = run(chain, ideal, batch=4, pp=2, microbatches=4, schedule=name,
                 partition="uniform", iterations=1)
    for k in range(2):
        assert actions_of(result.ops, k) == [f"{a.kind}{a.microbatch}"
                                             for a in schedule(name, 2, 4)[k]]


def test_simulated_interleaved_order(chain, ideal):
    result = run(chain, ideal, batch=4, pp=2, microbatches=4, schedule="interleaved", chunks=2,
                 partition="uniform", iterations=1)
    stage_units = result.taskgraph.meta["stage_units"]   # virtual stage j = chunk * p + device
    chunk_of = {f"{u}/fc": j // 2 for j, units in enumerate(stage_units) for u in units}
    for k in range(2):
        expected = [f"{a.kind}{a.microbatch}" + "ab"[a.chunk]
                    for a in schedule("interleaved", 2, 4, 2)[k]]
        assert actions_of(result.ops, k, chunk_of) == expected


def test_1f1b_in_flight_microbatches_measured_on_the_timeline(chain, ideal):
    p, m = 4, 8
    result = run(chain, ideal, batch=m, pp=p, microbatches=m, partition="uniform", iterations=1)
    for k in range(p):
        live = peak = 0
        for label in actions_of(result.ops, k):
            live += 1 if label[0] == "F" else -1
            peak = max(peak, live)
        assert peak == p - k


# -- traffic between stages ---------------------------------------------------------------------
def test_activations_and_gradients_cross_each_boundary_once_per_microbatch(chain, ideal):
    p, m, b = 4, 8, 3
    result = run(chain, ideal, batch=m * b, pp=p, microbatches=m, partition="uniform",
                 iterations=1)
    transfers = result.ops[result.ops["kind"] == "transfer"]
    assert len(transfers) == 2 * m * (p - 1)
    assert set(transfers["nbytes"]) == {b * WIDTH * 2}   # [b, width] at fp16
    forward = transfers[transfers["phase"] == "pp_forward"]
    assert sorted(zip(forward["rank"], forward["peer"])) == sorted(
        [(k, k + 1) for k in range(p - 1)] * m)
    backward = transfers[transfers["phase"] == "pp_backward"]
    assert sorted(zip(backward["rank"], backward["peer"])) == sorted(
        [(k + 1, k) for k in range(p - 1)] * m)


def test_slow_links_between_stages_add_to_the_bubble(chain, ideal):
    # dp=8 puts pipeline device k on server k (ranks k*8 .. k*8+7), so every stage-to-stage
    # transfer crosses the fabric: free on the ideal network, not on 10 GbE
    slow = SystemSpec(topology="single_switch(servers=4, server='dgx_a100', link='eth10')")
    kwargs = dict(batch=8 * 64, pp=4, dp=8, microbatches=8, partition="uniform", iterations=1)
    free = parallel_metrics(run(chain, ideal, **kwargs))["bubble_fraction"]
    costly = parallel_metrics(run(chain, slow, **kwargs))["bubble_fraction"]
    assert free == pytest.approx(3 / 8, rel=1e-6)
    assert costly > 1.2 * free


# -- the alias kind, configs, determinism -------------------------------------------------------
def test_pipeline_kind_compiles_like_parallel3d_with_tp_1(chain, ideal):
    workload = WorkloadSpec(net=chain, batch=8, dtype="fp16")
    alias = simulate(workload, ideal, PipelineSpec(pp=4, microbatches=4, iterations=1))
    full = simulate(workload, ideal, Parallel3DSpec(pp=4, microbatches=4, iterations=1))
    assert alias.strategy.workers == 4
    cols = ["op", "rank", "stream", "kind", "name", "phase", "microbatch", "start_s", "end_s",
            "nbytes"]
    pd.testing.assert_frame_equal(alias.ops[cols], full.ops[cols])


def test_strategy_from_a_config_section():
    spec = strategy_from_dict({"kind": "parallel3d", "tp": 2, "pp": 4, "workers": 16,
                               "microbatches": 8, "partition": "explicit",
                               "stage_layers": [2, 2, 2, 2]})
    assert (spec.dp, spec.stage_layers) == (2, (2, 2, 2, 2))
    alias = strategy_from_dict({"kind": "pipeline", "pp": 4, "dp": 2})
    assert alias.workers == 8
    with pytest.raises(SpecError, match="strategy.workers"):
        strategy_from_dict({"kind": "parallel3d", "tp": 2, "pp": 4, "dp": 2, "workers": 12})


def test_same_inputs_same_timeline(chain):
    system = SystemSpec(topology="single_switch(servers=2, server='dgx_a100')")
    a = run(chain, system, batch=16, pp=4, dp=4, microbatches=4, overlap_dp=True)
    b = run(chain, system, batch=16, pp=4, dp=4, microbatches=4, overlap_dp=True)
    pd.testing.assert_frame_equal(a.ops, b.ops)
    assert a.metrics == b.metrics


def test_granularity_changes_the_operations_not_the_times(chain, ideal):
    kw = dict(batch=16, pp=4, dp=2, microbatches=8, recompute="full", partition="uniform",
              iterations=2)
    results = {g: run(chain, ideal, granularity=g, **kw) for g in ("layer", "fused", "pass")}
    times = {g: r.metrics["iteration_s"] for g, r in results.items()}
    assert times["fused"] == pytest.approx(times["layer"], rel=1e-12)
    assert times["pass"] == pytest.approx(times["layer"], rel=1e-12)
    assert len(results["pass"].ops) < len(results["fused"].ops) < len(results["layer"].ops)
    compute = {g: r.metrics["compute_s"] for g, r in results.items()}
    assert compute["pass"] == pytest.approx(compute["layer"], rel=1e-12)
