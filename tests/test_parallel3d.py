"""TP x PP x DP: rank layout, spec validation, data-parallel and ZeRO traffic per iteration,
tied embeddings, stage-to-stage scatter/gather, memory, the combined bubble, determinism."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import topologies
from simulator.costmodel import RooflineCostModel
from simulator.catalog import get_device
from simulator.errors import InfeasibleError, SpecError, UnknownNameError
from simulator.simulate import simulate
from simulator.specs import SystemSpec, WorkloadSpec
from simulator.strategies.parallel3d_metrics import parallel_metrics
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from workloads import build_graph
from workloads.transformer import transformer_spec

LAYERS, HIDDEN, HEADS, SEQ, VOCAB = 4, 256, 8, 128, 1024
SERVER = SystemSpec(topology="server(server='dgx_a100')")
TWO_SERVERS = SystemSpec(topology="single_switch(servers=2, server='dgx_a100')")


def gpt_dict() -> dict:
    return transformer_spec(arch="gpt", layers=LAYERS, hidden=HIDDEN, heads=HEADS, seq_len=SEQ,
                            vocab=VOCAB)


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("nets") / "gpt.json"
    path.write_text(json.dumps(gpt_dict()))
    return str(path)


@pytest.fixture(scope="module")
def mlp_chain(tmp_path_factory):
    """Identical Megatron MLP blocks (column then row): equal stages under tensor parallelism."""
    width = 512
    layers = {"data": {"type": "Input", "tensor": [1, 16, width]},
              "flat": {"type": "Reshape", "parents": ["data"], "output_shape": [1, 16, width]}}
    previous = "flat"
    for i in range(16):
        layers[f"b{i}"] = {"type": "Block", "parents": [previous], "endpoint": "down", "layers": {
            "up": {"type": "InnerProduct", "parents": [], "num_outputs": 4 * width,
                   "tensor_parallel": "column"},
            "down": {"type": "InnerProduct", "parents": ["up"], "num_outputs": width,
                     "tensor_parallel": "row"}}}
        previous = f"b{i}"
    path = tmp_path_factory.mktemp("nets") / "mlp.json"
    path.write_text(json.dumps({"name": "mlp16", "layers": layers}))
    return str(path)


@pytest.fixture(scope="module")
def ideal(tmp_path_factory):
    graph = topologies.single_switch(servers=4, server="dgx_a100")
    for _, _, attrs in graph.edges(data=True):
        attrs["bandwidth_Bps"] = 1e18
        attrs["latency_s"] = 0.0
    path = tmp_path_factory.mktemp("topo") / "ideal.json"
    topologies.save(graph, path)
    return SystemSpec(topology=str(path))


def run(net, *, batch, system=SERVER, dtype="fp16", optimizer="adam", **strategy):
    strategy.setdefault("iterations", 1)
    workload = WorkloadSpec(net=net, batch=batch, dtype=dtype, optimizer=optimizer)
    return simulate(workload, system, Parallel3DSpec(**strategy))


def collectives(result, phase):
    ops = result.ops
    sel = ops[(ops["kind"] == "collective") & (ops["phase"] == phase)]
    return sel.drop_duplicates("op")


def groups_of(result, phase) -> set[tuple[int, ...]]:
    ops = result.ops
    sel = ops[ops["phase"] == phase]
    return {tuple(sorted(g)) for g in sel.groupby("op")["rank"].apply(tuple)}


# -- layout -------------------------------------------------------------------------------------
def test_megatron_rank_layout(gpt):
    result = run(gpt, batch=4, tp=2, pp=2, dp=2, microbatches=2, iterations=1)
    # rank = stage * (dp * tp) + d * tp + t
    assert groups_of(result, "tp_forward") == {(0, 1), (2, 3), (4, 5), (6, 7)}
    assert groups_of(result, "dp_allreduce") == {(0, 2), (1, 3), (4, 6), (5, 7)}
    sends = result.ops[result.ops["phase"] == "pp_forward"]
    assert set(zip(sends["rank"], sends["peer"])) == {(r, r + 4) for r in range(4)}
    assert Parallel3DSpec(tp=2, pp=2, dp=2).rank(1, 1, 0) == 6


def test_spec_validation_names_the_field():
    cases = [
        (dict(tp=2, pp=2, dp=2, workers=6), "strategy.workers"),
        (dict(tp=2, pp=3, workers=16), "strategy.workers"),
        (dict(pp=2, schedule="interleaved"), "strategy.chunks"),
        (dict(pp=2, chunks=2), "strategy.chunks"),
        (dict(pp=4, schedule="interleaved", chunks=2, microbatches=6), "strategy.microbatches"),
        (dict(pp=2, zero_stage=2), "strategy.zero_stage"),
        (dict(zero_stage=4), "strategy.zero_stage"),
        (dict(tp=0), "strategy.tp"),
        (dict(tp=2, granularity="pass"), "strategy.granularity"),
        (dict(overlap_dp=True, granularity="pass"), "strategy.granularity"),
        (dict(bucket_bytes=0), "strategy.bucket_bytes"),
        (dict(sequence_parallel="yes"), "strategy.sequence_parallel"),
    ]
    for kwargs, field in cases:
        with pytest.raises(SpecError, match=field.replace(".", r"\.")):
            Parallel3DSpec(**kwargs)
    with pytest.raises(UnknownNameError, match="1f1b"):
        Parallel3DSpec(schedule="pipedream")
    with pytest.raises(UnknownNameError, match="strategy.dp_algorithm"):
        Parallel3DSpec(zero_stage=1, dp_algorithm="tree")   # no tree reduce-scatter
    assert Parallel3DSpec(tp=2, pp=2, workers=16).dp == 4
    assert Parallel3DSpec(tp=2, pp=2, dp=3).workers == 12


def test_batch_must_split_into_microbatches(gpt):
    with pytest.raises(SpecError, match="workload.batch"):
        run(gpt, batch=6, dp=4)
    with pytest.raises(SpecError, match="workload.batch"):
        run(gpt, batch=8, pp=2, microbatches=3)
    with pytest.raises(SpecError, match="workload.batch"):
        run(gpt, batch=8, pp=2, microbatches=2, micro_batch=2)
    result = run(gpt, batch=8, pp=2, micro_batch=2)
    assert (result.taskgraph.meta["microbatches"], result.taskgraph.meta["micro_batch"]) == (4, 2)
    assert result.metrics["global_batch"] == 8


# -- data-parallel and ZeRO traffic -------------------------------------------------------------
def local_gradient_bytes(tp: int) -> float:
    """Gradient bytes one rank of a pp=1 job holds, from the memory model's own count."""
    from simulator.memory import local_params
    graph = build_graph(gpt_dict())
    return 2 * local_params(graph.layers, tp=tp)


@pytest.mark.parametrize("tp", [1, 2])
def test_data_parallel_all_reduce_moves_the_rank_gradients(gpt, tp):
    result = run(gpt, batch=4, tp=tp, dp=2, microbatches=2, system=TWO_SERVERS)
    reductions = collectives(result, "dp_allreduce")
    assert len(reductions) == tp
    assert set(reductions["nbytes"]) == {local_gradient_bytes(tp)}
    if tp == 1:
        assert set(reductions["nbytes"]) == {2 * build_graph(gpt_dict()).total_params}


def test_zero_1_reduce_scatters_gradients_and_all_gathers_parameters(gpt):
    grads = local_gradient_bytes(1)
    plain = run(gpt, batch=8, dp=4, microbatches=2)
    zero = run(gpt, batch=8, dp=4, microbatches=2, zero_stage=1)
    assert list(collectives(zero, "dp_reducescatter")["nbytes"]) == [grads]
    assert list(collectives(zero, "dp_allgather")["nbytes"]) == [grads]
    assert collectives(zero, "dp_allreduce").empty
    # the optimizer steps over a quarter of the parameters
    params = build_graph(gpt_dict()).total_params
    device = get_device("A100-80GB")
    update = zero.ops[(zero.ops["phase"] == "update") & (zero.ops["rank"] == 0)]
    expected = RooflineCostModel().update_time_s(math.ceil(params / 4), device, dtype="fp16",
                                                 optimizer="adam")
    assert float((update["end_s"] - update["start_s"]).iloc[0]) == pytest.approx(expected,
                                                                   rel=1e-12)
    full = plain.ops[(plain.ops["phase"] == "update") & (plain.ops["rank"] == 0)]
    assert float((full["end_s"] - full["start_s"]).iloc[0]) > 3.9 * expected


def test_zero_2_reduce_scatters_every_microbatch(gpt):
    m = 3
    result = run(gpt, batch=2 * m, dp=2, microbatches=m, zero_stage=2)
    scatters = collectives(result, "dp_reducescatter")
    assert len(scatters) == m
    assert set(scatters["nbytes"]) == {local_gradient_bytes(1)}
    assert len(collectives(result, "dp_allgather")) == 1


def test_zero_3_gathers_parameters_twice_and_scatters_gradients_once(gpt):
    grads = local_gradient_bytes(1)
    result = run(gpt, batch=2, dp=2, microbatches=1, zero_stage=3)
    gathers = collectives(result, "zero_allgather")
    scatters = collectives(result, "zero_reducescatter")
    assert gathers["nbytes"].sum() == pytest.approx(2 * grads, rel=1e-12)
    assert scatters["nbytes"].sum() == pytest.approx(grads, rel=1e-12)
    assert len(gathers) == 2 * LAYERS and len(scatters) == LAYERS   # one per transformer layer
    assert collectives(result, "dp_allreduce").empty
    assert collectives(result, "dp_reducescatter").empty


def test_overlapped_buckets_hide_gradient_reduction(gpt):
    # tp=8 fills a server, so the two replicas reduce over the 10 GbE fabric
    slow = SystemSpec(topology="single_switch(servers=2, server='dgx_a100', link='eth10')")
    kw = dict(batch=32, dp=2, tp=8, microbatches=2, system=slow)
    after = run(gpt, **kw)
    overlapped = run(gpt, overlap_dp=True, bucket_bytes=2e5, **kw)
    buckets = collectives(overlapped, "dp_allreduce")
    assert len(buckets) > 3
    assert buckets["nbytes"].sum() == pytest.approx(
        collectives(after, "dp_allreduce")["nbytes"].sum(), rel=1e-12)
    ops = overlapped.ops
    backward = ops[(ops["rank"] == 0) & ops["phase"].str.startswith("backward")]
    assert buckets["start_s"].min() < backward["end_s"].max()
    assert overlapped.metrics["iteration_s"] < after.metrics["iteration_s"]


def test_tied_embeddings_are_all_reduced_between_first_and_last_stage(gpt):
    result = run(gpt, batch=4, tp=2, pp=2, microbatches=2)
    tied = collectives(result, "tied_allreduce")
    assert groups_of(result, "tied_allreduce") == {(0, 2), (1, 3)}
    assert set(tied["nbytes"]) == {VOCAB * HIDDEN / 2 * 2}   # vocabulary split, fp16


# -- stage-to-stage traffic ---------------------------------------------------------------------
@pytest.mark.parametrize("scatter,sp,per_rank,gathers", [
    (True, False, 1 / 4, True), (False, False, 1, False), (True, True, 1 / 4, False)])
def test_scatter_gather_of_stage_outputs(gpt, scatter, sp, per_rank, gathers):
    b = 2
    result = run(gpt, batch=2 * b, tp=4, pp=2, microbatches=2, scatter_gather=scatter,
                 sequence_parallel=sp)
    sends = result.ops[result.ops["phase"] == "pp_forward"]
    assert set(sends["nbytes"]) == {b * SEQ * HIDDEN * 2 * per_rank}
    assembled = collectives(result, "pp_allgather")
    assert len(assembled) == (2 * 2 if gathers else 0)    # (forward + backward) x microbatches
    if gathers:
        assert set(assembled["nbytes"]) == {b * SEQ * HIDDEN * 2}


# -- the combined bubble, memory, determinism ---------------------------------------------------
@pytest.mark.parametrize("schedule,v", [("1f1b", 1), ("interleaved", 2)])
def test_bubble_of_tp_pp_dp_on_an_ideal_network(mlp_chain, ideal, schedule, v):
    p, m = 4, 8
    result = run(mlp_chain, batch=2 * m, system=ideal, tp=2, pp=p, dp=2, microbatches=m,
                 schedule=schedule, chunks=v, partition="uniform")
    assert parallel_metrics(result)["bubble_fraction"] == pytest.approx((p - 1) / (v * m),
                                                                        rel=0.02)


def test_memory_table_per_rank(gpt):
    result = run(gpt, batch=8, tp=2, pp=2, microbatches=4)
    table = result.tables["memory"]
    assert list(table["rank"]) == list(range(4))
    first, last = table.iloc[0], table.iloc[2]
    # 1F1B: stage 0 holds p = 2 microbatches of activations, the last stage one
    assert first["activations_bytes"] > 1.5 * last["activations_bytes"]
    assert result.metrics["fits_memory"]
    zero = run(gpt, batch=8, dp=2, microbatches=4, zero_stage=1).tables["memory"]
    plain = run(gpt, batch=8, dp=2, microbatches=4).tables["memory"]
    assert zero["optimizer_bytes"].iloc[0] == pytest.approx(plain["optimizer_bytes"].iloc[0] / 2,
                                                            rel=1e-3)


def test_configurations_that_do_not_fit_are_infeasible(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(json.dumps(transformer_spec(arch="gpt", layers=16, hidden=8192, heads=64,
                                               seq_len=2048, vocab=51200)))
    with pytest.raises(InfeasibleError, match="over by"):
        run(str(big), batch=8, pp=2, microbatches=8)


def test_same_inputs_same_results_bit_for_bit(gpt):
    kw = dict(batch=16, tp=2, pp=2, dp=2, microbatches=4, schedule="interleaved", chunks=2,
              recompute="selective", sequence_parallel=True, overlap_dp=True,
              system=TWO_SERVERS, iterations=2)
    a, b = run(gpt, **kw), run(gpt, **kw)
    pd.testing.assert_frame_equal(a.ops, b.ops)
    assert a.metrics == b.metrics
    assert parallel_metrics(a) == parallel_metrics(b)


@pytest.mark.parametrize("kw", [
    dict(tp=2, pp=2, dp=2, microbatches=4, schedule="interleaved", chunks=2, overlap_dp=True),
    dict(tp=2, pp=2, dp=2, microbatches=2, schedule="gpipe", zero_stage=1, recompute="full"),
    dict(tp=4, pp=2, microbatches=4, sequence_parallel=True, granularity="fused"),
    dict(tp=2, dp=4, microbatches=2, zero_stage=3, recompute="selective"),
    dict(tp=2, dp=4, microbatches=3, zero_stage=2, overlap_dp=True, granularity="fused"),
    dict(pp=2, dp=2, microbatches=4, schedule="interleaved", chunks=2, tp_comm="isolated"),
    dict(tp=2, pp=2, dp=2, microbatches=2, tp_comm="isolated", granularity="pass",
         scatter_gather=False),
])
def test_every_layer_runs_once_per_microbatch_on_every_replica(gpt, kw):
    """Work is conserved: summed over ranks, each pass's FLOPs are dp x m microbatches' worth,
    layers replicated over the tensor-parallel group counting once per rank."""
    m, tp, dp = kw["microbatches"], kw.get("tp", 1), kw.get("dp", 1)
    b = 2
    result = run(gpt, batch=dp * m * b, system=TWO_SERVERS, iterations=2, **kw)
    graph = build_graph(gpt_dict(), batch=b)
    sp = kw.get("sequence_parallel", False)

    def copies(layer):
        split = layer.fields.get("tensor_parallel") or layer.type in ("Activation", "Softmax")
        return 1 if split or sp else tp
    ops = result.ops[(result.ops["iteration"] == 1) & (result.ops["kind"] == "compute")]
    for phases, work in ((("forward",), ("forward",)),
                         (("backward_data", "backward_filter", "backward"),
                          ("backward_data", "backward_filter"))):
        expected = dp * m * sum(copies(layer) * sum(layer.work[p].flops for p in work)
                                for layer in graph.layers)
        assert ops[ops["phase"].isin(phases)]["flops"].sum() == pytest.approx(expected,
                                                                            rel=1e-9)
    assert len(result.iterations) == 2


def test_replicas_on_different_gpus_run_at_their_own_speed(gpt, tmp_path):
    graph = topologies.single_switch(servers=2, server="dgx_a100")
    for node, attrs in graph.nodes(data=True):
        if attrs.get("role") == "gpu" and attrs.get("server") == 1:
            attrs["device"] = "V100-SXM3"
    path = tmp_path / "mixed.json"
    topologies.save(graph, path)
    # tp=8 x dp=2: replica 0 on the A100 server, replica 1 on the V100 one
    result = run(gpt, batch=8, tp=8, dp=2, microbatches=2, system=SystemSpec(topology=str(path)))
    forward = result.ops[result.ops["phase"] == "forward"]
    seconds = (forward["end_s"] - forward["start_s"]).groupby(forward["rank"]).sum()
    assert seconds.loc[8:].min() > seconds.loc[:7].max()
    assert (result.devices["device"] == "V100-SXM3").sum() == 8
