"""The memory model: exact bytes for tiny nets, ZeRO's published figures, Korthikanti et al.'s
activation formulas, pipeline microbatches in flight, the out-of-memory error and its path
through simulate(), the trace and the CLI."""
from __future__ import annotations

import doctest
import importlib

import pytest

from simulator.catalog import get_device
from simulator.cli import main
from simulator.errors import InfeasibleError, SpecError, UnknownNameError
from simulator.memory import (MEMORY_COLUMNS, MemoryBreakdown, OutOfMemoryError,
                              activation_memory, bytes_per_param, check_fits,
                              check_memory_table, gpt_layer_activation_bytes,
                              in_flight_microbatches, layer_activation_bytes, local_params,
                              memory_table, model_state_bytes, training_memory,
                              transformer_activation_bytes)
from simulator.simulate import simulate
from simulator.specs import DataParallelSpec, ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.trace import chrome_trace
from simulator.units import GiB
from workloads import build_graph, load_net

GB = 1e9


def inp(*shape):
    return {"type": "Input", "parents": [], "tensor": list(shape)}


def tiny_net(batch: int = 2) -> dict:
    """conv 3x3 (3 -> 8, SAME) - ReLU - max pool 2x2/2 - flatten - FC 10 - dropout - softmax."""
    return {"name": "tiny", "layers": {
        "data": inp(batch, 4, 4, 3),
        "conv": {"type": "Convolution", "parents": ["data"], "filter": [3, 3, 3, 8],
                 "strides": [1, 1, 1, 1], "padding": "SAME"},
        "relu": {"type": "Activation", "parents": ["conv"], "function": "relu"},
        "pool": {"type": "Pooling", "parents": ["relu"], "ksize": [1, 2, 2, 1],
                 "strides": [1, 2, 2, 1], "padding": "VALID"},
        "flat": {"type": "Flatten", "parents": ["pool"]},
        "fc": {"type": "InnerProduct", "parents": ["flat"], "num_outputs": 10},
        "drop": {"type": "Dropout", "parents": ["fc"], "dropout_keep_prob": 0.5},
        "prob": {"type": "Softmax", "parents": ["drop"]},
    }}


def gpt_net(layers: int, *, seq: int, hidden: int, heads: int, batch: int = 1,
            attention_dropout: float = 0.1) -> dict:
    """GPT layers as Korthikanti et al. (2022, section 4.1) count them, with attention dropout
    and Megatron-LM's tensor-parallel marks."""
    net = {"tokens": inp(batch, seq),
           "emb": {"type": "Embedding", "parents": ["tokens"], "vocab": 1000, "dim": hidden,
                   "tensor_parallel": "vocab"}}
    prev = "emb"
    for i in range(layers):
        net[f"layer{i}"] = {"type": "Block", "parents": [prev], "endpoint": "res2", "layers": {
            "ln1": {"type": "LayerNorm", "parents": []},
            "qkv": {"type": "InnerProduct", "parents": ["ln1"], "num_outputs": 3 * hidden,
                    "tensor_parallel": "column"},
            "attn": {"type": "Attention", "parents": ["qkv"], "heads": heads,
                     "head_dim": hidden // heads, "dropout": attention_dropout,
                     "tensor_parallel": "heads"},
            "proj": {"type": "InnerProduct", "parents": ["attn"], "num_outputs": hidden,
                     "tensor_parallel": "row"},
            "drop1": {"type": "Dropout", "parents": ["proj"], "dropout_keep_prob": 0.9},
            "res1": {"type": "Elementwise", "parents": [prev, "drop1"]},
            "ln2": {"type": "LayerNorm", "parents": ["res1"]},
            "fc1": {"type": "InnerProduct", "parents": ["ln2"], "num_outputs": 4 * hidden,
                    "tensor_parallel": "column"},
            "gelu": {"type": "Activation", "parents": ["fc1"], "function": "gelu"},
            "fc2": {"type": "InnerProduct", "parents": ["gelu"], "num_outputs": hidden,
                    "tensor_parallel": "row"},
            "drop2": {"type": "Dropout", "parents": ["fc2"], "dropout_keep_prob": 0.9},
            "res2": {"type": "Elementwise", "parents": ["res1", "drop2"]}}}
        prev = f"layer{i}"
    return {"name": "gpt", "layers": net}


def layer_bytes(per_layer: dict, prefix: str) -> float:
    return sum(v for k, v in per_layer.items() if k.startswith(prefix))


# --- model states ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, optimizer, expected", [
    ("fp16", "adam", (2, 2, 12)),       # Rajbhandari et al., section 3.1: 16 bytes in all
    ("bf16", "adam", (2, 2, 12)),
    ("fp32", "adam", (4, 4, 8)),
    ("fp32", "momentum", (4, 4, 4)),
    ("fp32", "sgd", (4, 4, 0)),
    ("fp16", "sgd", (2, 2, 4)),         # the fp32 master copy only
])
def test_bytes_per_parameter(dtype, optimizer, expected):
    assert bytes_per_param(dtype, optimizer) == expected


def test_zero_figure_1_of_rajbhandari_et_al():
    """7.5B parameters, 64 data-parallel GPUs, fp16 + Adam: 120, 31.4, 16.6 and 1.9 GB."""
    psi, nd = 7.5e9, 64
    totals = [sum(model_state_bytes(psi, dtype="fp16", optimizer="adam", zero_stage=z, dp=nd))
              for z in (0, 1, 2, 3)]
    assert totals == [16 * psi, 4 * psi + 12 * psi / nd, 2 * psi + 14 * psi / nd, 16 * psi / nd]
    assert [round(t / GB, 1) for t in totals] == [120.0, 31.4, 16.6, 1.9]


def test_zero_partitions_hold_whole_elements():
    w, g, o = model_state_bytes(10, dtype="fp32", optimizer="adam", zero_stage=3, dp=4)
    assert (w, g, o) == (4 * 3, 4 * 3, 8 * 3)


def test_tensor_parallel_splits_marked_layers_and_replicates_the_rest():
    h, t = 64, 4
    g = build_graph(gpt_net(1, seq=8, hidden=h, heads=4))
    ln = 2 * h
    qkv, proj = h * 3 * h + 3 * h, h * h + h
    fc1, fc2 = h * 4 * h + 4 * h, 4 * h * h + h
    emb = 1000 * h
    assert g.total_params == emb + 2 * ln + qkv + proj + fc1 + fc2
    # column and vocab layers split whole; a row layer's bias stays whole; LayerNorms replicated
    expected = emb / t + 2 * ln + qkv / t + (h * h / t + h) + fc1 / t + (4 * h * h / t + h)
    assert local_params(g.layers, tp=t) == expected
    assert local_params(g.layers, tp=1) == g.total_params


# --- activations -------------------------------------------------------------------------------

def test_tiny_net_activation_bytes_by_hand():
    g = build_graph(tiny_net(batch=2))
    per = layer_activation_bytes(g, dtype="fp32")
    assert per == {
        "data": 0.0,
        "conv": 2 * 4 * 4 * 3 * 4,     # its input, for the weight gradient
        "relu": 2 * 4 * 4 * 8 * 4,     # its output
        "pool": 2 * 2 * 2 * 8 * 4,     # input (the ReLU's output, counted) and output
        "flat": 0.0,                   # a view
        "fc": 0.0,                     # its input is the pool's output, viewed: counted
        "drop": 2 * 10 * 1,            # a 1-byte mask
        "prob": 2 * 10 * 4,            # its output
    }
    half = layer_activation_bytes(g, dtype="fp16")
    assert half["drop"] == per["drop"] and half["conv"] == per["conv"] / 2


def test_tiny_net_training_memory_by_hand():
    g = build_graph(tiny_net(batch=2))
    params = (3 * 3 * 3 * 8 + 8) + (2 * 2 * 8 * 10 + 10)
    assert g.total_params == params
    m = training_memory(g, dtype="fp32", optimizer="adam")
    assert m == MemoryBreakdown(weights=4 * params, gradients=4 * params, optimizer=8 * params,
                                activations=384 + 1024 + 256 + 20 + 80)
    assert m.total == 16 * params + 1764
    two = training_memory(g, dtype="fp32", optimizer="adam", in_flight_microbatches=2)
    assert two.activations == 2 * 1764 and two.weights == m.weights


def test_layers_before_any_parameter_keep_nothing():
    net = {"name": "n", "layers": {
        "data": inp(1, 4, 4, 3),
        "drop": {"type": "Dropout", "parents": ["data"]},
        "relu": {"type": "Activation", "parents": ["drop"], "function": "relu"},
        "conv": {"type": "Convolution", "parents": ["relu"], "filter": [1, 1, 3, 2],
                 "strides": [1, 1, 1, 1], "padding": "VALID"}}}
    per = layer_activation_bytes(build_graph(net), dtype="fp32")
    assert per == {"data": 0.0, "drop": 0.0, "relu": 0.0, "conv": 4 * 4 * 3 * 4}


@pytest.mark.parametrize("tp", [1, 2, 4])
@pytest.mark.parametrize("sequence_parallel", [False, True])
@pytest.mark.parametrize("recompute", ["none", "selective", "full"])
def test_gpt_layer_matches_korthikanti_et_al(tp, sequence_parallel, recompute):
    """Eq. 1 and 2 of Korthikanti et al. (and their sequence-parallel, selective and full
    recomputation forms), exactly, for the middle layer of a 3-layer GPT."""
    s, h, a, b = 32, 64, 4, 2
    g = build_graph(gpt_net(3, seq=s, hidden=h, heads=a, batch=b))
    acts = activation_memory(g, dtype="fp16", tp=tp, sequence_parallel=sequence_parallel,
                             recompute=recompute)
    expected = gpt_layer_activation_bytes(seq_len=s, batch=b, hidden=h, heads=a, tp=tp,
                                          sequence_parallel=sequence_parallel,
                                          recompute=recompute)
    assert layer_bytes(acts.per_layer, "layer1/") == expected
    if recompute == "none" and tp == 1:
        assert expected == s * b * h * (34 + 5 * a * s / h)
    if recompute == "full":  # the rematerialised layer, once: everything but its input
        full = activation_memory(g, dtype="fp16", tp=tp, sequence_parallel=sequence_parallel)
        assert acts.recompute_bytes == layer_bytes(full.per_layer, "layer1/") - expected


def test_generated_gpt_layer_is_eq_1():
    """A generated GPT layer (attention dropout included, as Megatron-LM trains) keeps exactly
    Korthikanti et al.'s eq. 1 (with tensor parallelism: eq. 2)."""
    transformer = pytest.importorskip("workloads.transformer")
    s, h, a, b = 64, 128, 4, 2
    g = transformer.transformer_graph(arch="gpt", layers=2, hidden=h, heads=a, seq_len=s,
                                      vocab=1000, batch=b)
    for tp in (1, 2, 4):
        per = activation_memory(g, dtype="fp16", tp=tp).per_layer
        eq = gpt_layer_activation_bytes(seq_len=s, batch=b, hidden=h, heads=a, tp=tp)
        assert layer_bytes(per, "layer1/") == eq


def test_closed_form_from_the_transformer_root_object():
    transformer = pytest.importorskip("workloads.transformer")
    g = transformer.transformer_graph(arch="gpt", layers=3, hidden=64, heads=4, seq_len=32,
                                      vocab=100)
    per = gpt_layer_activation_bytes(seq_len=32, batch=2, hidden=64, heads=4, tp=2,
                                     recompute="selective")
    assert transformer_activation_bytes(g, microbatch=2, tp=2, recompute="selective") == 3 * per
    with pytest.raises(SpecError, match="no 'transformer' root object"):
        transformer_activation_bytes(build_graph(tiny_net()), microbatch=1)


def test_full_recomputation_keeps_block_inputs_of_a_resnet():
    g = load_net("resnet50", batch=4)
    none = activation_memory(g, dtype="fp32")
    full = activation_memory(g, dtype="fp32", recompute="full")
    assert 0 < full.saved_bytes < 0.5 * none.saved_bytes
    assert 0 < full.recompute_bytes == max(full.blocks.values())
    # the largest block's rematerialised bytes are part of what full recomputation needs
    assert full.saved_bytes + full.recompute_bytes < none.saved_bytes


def test_unknown_recompute_policy_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="valid: full, none, selective"):
        activation_memory(build_graph(tiny_net()), dtype="fp32", recompute="some")


# --- pipelines ---------------------------------------------------------------------------------

def test_in_flight_microbatches_per_schedule():
    p, m = 4, 8
    assert [in_flight_microbatches("1f1b", p, i, m) for i in range(p)] == [4, 3, 2, 1]
    assert [in_flight_microbatches("1f1b", p, i, 2) for i in range(p)] == [2, 2, 2, 1]
    assert [in_flight_microbatches("gpipe", p, i, m) for i in range(p)] == [8] * 4
    for v in (2, 4):  # Korthikanti et al.: the first stage holds 1 + (p-1)/(p*v) times more
        first = in_flight_microbatches("interleaved", p, 0, m, chunks=v)
        assert first == pytest.approx(p * (1 + (p - 1) / (p * v)))
        assert in_flight_microbatches("interleaved", p, p - 1, m, chunks=v) == ((v - 1) * p + 1) / v
    assert in_flight_microbatches("interleaved", p, 2, m, chunks=1) == 2
    assert in_flight_microbatches("interleaved", p, 0, 1, chunks=2) == 1.0


@pytest.mark.parametrize("kwargs, field", [
    ({"schedule": "zigzag"}, "schedule"), ({"stage_index": 4}, "stage_index"),
    ({"chunks": 2}, "chunks"), ({"microbatches": 0}, "microbatches"),
])
def test_in_flight_microbatches_rejects_bad_input(kwargs, field):
    args = {"schedule": "1f1b", "stages": 4, "stage_index": 0, "microbatches": 8, **kwargs}
    with pytest.raises(SpecError) as info:
        in_flight_microbatches(**args)
    assert info.value.field == field


def test_a_pipeline_stage_holds_its_layers_times_its_microbatches():
    g = build_graph(gpt_net(4, seq=16, hidden=32, heads=2))
    stage1 = [l for l in g.layers if l.block in ("layer2", "layer3")]
    per_mb = activation_memory(stage1, dtype="fp16").saved_bytes
    k = in_flight_microbatches("1f1b", 2, 1, 8)
    m = training_memory(stage1, dtype="fp16", optimizer="adam", in_flight_microbatches=k)
    assert m.activations == k * per_mb == 1 * per_mb
    assert m.weights == 2 * sum(l.params for l in stage1)
    # the stage input comes from the previous stage; it is kept like any layer input
    assert per_mb == 2 * gpt_layer_activation_bytes(seq_len=16, batch=1, hidden=32, heads=2)


# --- out of memory -----------------------------------------------------------------------------

def test_gpt3_weights_do_not_fit_one_v100():
    m = training_memory(params=175e9, dtype="fp16", optimizer="adam")
    with pytest.raises(OutOfMemoryError) as info:
        check_fits(m, get_device("V100"), rank=3, node=("gpu", 0, 3))
    err = info.value
    assert isinstance(err, InfeasibleError)
    assert str(err) == ("rank 3 on ('gpu', 0, 3) (V100, 16.0 GiB) needs 2607.7 GiB (weights "
                        "326.0, gradients 326.0, optimizer 1955.8, activations 0.0): over by "
                        "2591.7 GiB")
    assert err.overflow_bytes == 16 * 175e9 - 16 * GiB
    assert err.ranks == (3,) and err.device == "V100"


def test_reserve_and_workspace_appear_in_the_message():
    device = get_device("V100")
    m = MemoryBreakdown(weights=4 * GiB, gradients=4 * GiB, optimizer=7 * GiB,
                        activations=0.5 * GiB, workspace=0.25 * GiB)
    check_fits(m, device, rank=0, node="n")  # 15.75 GiB of 16 fits
    with pytest.raises(OutOfMemoryError) as info:
        check_fits(m, device, rank=0, node="n", reserve_bytes=0.5 * GiB)
    assert str(info.value) == ("rank 0 on n (V100, 16.0 GiB, 512.0 MiB reserved) needs 15.8 "
                               "GiB (weights 4.0, gradients 4.0, optimizer 7.0, activations 0.5, "
                               "workspace 0.2): over by 256.0 MiB")


def test_ranks_sharing_a_device_add_up():
    v100 = get_device("V100")
    half = MemoryBreakdown(weights=5 * GiB, gradients=0, optimizer=0, activations=4 * GiB)
    table = memory_table([(0, "a", v100, half), (1, "b", v100, half), (2, "a", v100, half)])
    assert list(table.columns) == list(MEMORY_COLUMNS)
    with pytest.raises(OutOfMemoryError) as info:
        check_memory_table(table)
    assert str(info.value).startswith("ranks 0, 2 on a (V100, 16.0 GiB) need 18.0 GiB")
    check_memory_table(table.iloc[:2])


# --- integration -------------------------------------------------------------------------------

SWITCH = SystemSpec(topology="single_switch(servers={servers}, server='titan_node', "
                             "cpu_hosts={servers})", gpus_per_server=1)  # K20X, 6 GiB


def test_data_parallel_run_reports_its_memory():
    workload = WorkloadSpec(net="alexnet_owt", batch=32, optimizer="adam")
    result = simulate(workload, SWITCH, DataParallelSpec(workers=4, iterations=1))
    table = result.tables["memory"]
    params = load_net("alexnet_owt", batch=1).total_params
    acts = activation_memory(load_net("alexnet_owt", batch=32), dtype="fp32").saved_bytes
    assert list(table.columns) == list(MEMORY_COLUMNS) and list(table["rank"]) == [0, 1, 2, 3]
    assert (table["weights_bytes"] == 4 * params).all()
    assert (table["optimizer_bytes"] == 8 * params).all()
    assert (table["activations_bytes"] == acts).all()
    assert (table["capacity_bytes"] == get_device("K20X").memory_bytes).all()
    assert result.metrics["peak_memory_bytes"] == 16 * params + acts
    assert result.metrics["fits_memory"] and result.metrics["memory_overflow_bytes"] == 0
    zero = simulate(workload, SWITCH, DataParallelSpec(workers=4, iterations=1, zero_stage=2))
    t2 = zero.tables["memory"]
    assert (t2["optimizer_bytes"] == 8 * -(-params // 4)).all()
    assert (t2["gradients_bytes"] == 4 * -(-params // 4)).all()
    assert (t2["weights_bytes"] == 4 * params).all()


def test_accumulation_keeps_one_microbatch_of_activations():
    workload = WorkloadSpec(net="alexnet_owt", batch=32)
    result = simulate(workload, SWITCH, DataParallelSpec(workers=2, accumulation=4,
                                                         iterations=1))
    acts = activation_memory(load_net("alexnet_owt", batch=8), dtype="fp32").saved_bytes
    assert (result.tables["memory"]["activations_bytes"] == acts).all()


def test_parameter_server_workers_hold_no_optimizer_state():
    workload = WorkloadSpec(net="alexnet_owt", batch=16, dtype="fp16", optimizer="momentum")
    system = SystemSpec(topology=SWITCH.topology, gpus_per_server=1, device="V100")
    result = simulate(workload, system, ParameterServerSpec(workers=2, shards=2, iterations=1))
    table = result.tables["memory"].set_index("rank")
    params = load_net("alexnet_owt", batch=1).total_params
    assert table.loc[0, "optimizer_bytes"] == 0 and table.loc[0, "weights_bytes"] == 2 * params
    shard = -(-params // 2)
    assert table.loc[2, "optimizer_bytes"] == (4 + 4) * shard  # momentum + fp32 master copy
    assert table.loc[3, "gradients_bytes"] == 2 * shard and table.loc[3, "device"] == "CPU"


def test_an_impossible_batch_fails_before_it_runs():
    workload = WorkloadSpec(net="alexnet_owt", batch=4096)  # ~10.9 GiB on a 6 GiB K20X
    with pytest.raises(OutOfMemoryError) as info:
        simulate(workload, SWITCH, DataParallelSpec(workers=2))
    text = str(info.value)
    assert text.startswith("rank 0 on ('gpu', 0, 0) (K20X, 6.0 GiB) needs 10.9 GiB (weights 0.2, "
                           "gradients 0.2, optimizer 0.0, activations 10.6): over by 4.9 GiB")
    assert "(1 other device also overflow)" in text
    flagged = simulate(workload, SWITCH, DataParallelSpec(workers=2, iterations=1),
                       on_overflow="flag")
    assert not flagged.metrics["fits_memory"]
    assert flagged.metrics["memory_overflow_bytes"] == pytest.approx(info.value.overflow_bytes)


def test_cli_prints_an_overflow_as_one_line_with_exit_code_3(capsys, tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text("workload: {net: alexnet_owt, batch: 4096}\n"
                      "system: {topology: \"single_switch(servers={servers}, "
                      "server='titan_node')\", gpus_per_server: 1}\n"
                      "strategy: {kind: data_parallel, workers: 1}\n")
    code = main(["simulate", str(config)])
    out = capsys.readouterr()
    assert code == 3 and out.out == ""
    assert out.err.count("\n") == 1
    assert out.err.startswith("paleosim: infeasible: rank 0 on ('gpu', 0, 0) (K20X, 6.0 GiB) "
                              "needs 10.9 GiB")


def test_trace_has_a_memory_counter_per_rank():
    result = simulate(WorkloadSpec(net="alexnet_owt", batch=8), SWITCH,
                      DataParallelSpec(workers=2, iterations=1))
    counters = [e for e in chrome_trace(result)["traceEvents"]
                if e["ph"] == "C" and e["name"] == "memory (bytes)"]
    table = result.tables["memory"]
    assert [e["pid"] for e in counters] == [0, 1] and all(e["ts"] == 0 for e in counters)
    assert counters[1]["args"] == {"weights": table.loc[1, "weights_bytes"],
                                   "gradients": table.loc[1, "gradients_bytes"],
                                   "optimizer": 0.0,
                                   "activations": table.loc[1, "activations_bytes"],
                                   "workspace": 0.0}


def test_zero_stage_is_validated():
    with pytest.raises(SpecError) as info:
        DataParallelSpec(zero_stage=4)
    assert info.value.field == "strategy.zero_stage"
    with pytest.raises(SpecError):
        DataParallelSpec(zero_stage=True)


@pytest.mark.parametrize("module", ["states", "activations", "transformer", "pipeline",
                                    "breakdown", "__init__"])
def test_docstring_examples_hold(module):
    name = "simulator.memory" + ("" if module == "__init__" else f".{module}")
    failed, tried = doctest.testmod(importlib.import_module(name))
    assert failed == 0 and (tried > 0 or module == "activations")
