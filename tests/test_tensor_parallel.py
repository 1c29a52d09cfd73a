"""Megatron tensor parallelism: the collectives of each transformer layer (count, kind, bytes),
sequence parallelism, the per-rank share of the work, recomputation, impossible degrees, and the
isolated pricing of tensor-parallel collectives against the full network."""
from __future__ import annotations

import json

import pytest

from simulator.errors import SpecError
from simulator.simulate import simulate
from simulator.specs import SystemSpec, WorkloadSpec
from simulator.strategies.parallel3d_metrics import parallel_metrics
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from workloads.transformer import gpt_flops_formula, transformer_spec

LAYERS, HIDDEN, HEADS, SEQ, VOCAB = 3, 256, 16, 128, 1024
SERVER = SystemSpec(topology="server(server='dgx_a100')")


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    out = {}
    for arch in ("gpt", "llama"):
        path = folder / f"{arch}.json"
        path.write_text(json.dumps(transformer_spec(arch=arch, layers=LAYERS, hidden=HIDDEN,
                                                    heads=HEADS, seq_len=SEQ, vocab=VOCAB)))
        out[arch] = str(path)
    path = folder / "gpt_6heads.json"
    path.write_text(json.dumps(transformer_spec(arch="gpt", layers=2, hidden=192, heads=6,
                                                seq_len=SEQ, vocab=VOCAB)))
    out["six_heads"] = str(path)
    return out


def run(net, *, batch=2, system=SERVER, dtype="fp16", **strategy):
    strategy.setdefault("iterations", 1)
    workload = WorkloadSpec(net=net, batch=batch, dtype=dtype, optimizer="adam")
    return simulate(workload, system, Parallel3DSpec(**strategy))


def tp_collectives(result, rank=0):
    ops = result.ops
    return ops[(ops["rank"] == rank) & ops["phase"].str.startswith("tp_")].sort_values("op")


def test_two_allreduces_forward_and_two_backward_per_layer(nets):
    b = 2
    result = run(nets["gpt"], batch=b, tp=2)
    activation = b * SEQ * HIDDEN * 2   # [b, s, h] at fp16
    comm = tp_collectives(result)
    assert set(comm["kind"]) == {"collective"} and set(comm["collective"]) == {"allreduce"}
    assert set(comm["nbytes"]) == {activation}
    assert set(comm["stream"]) == {"compute"}     # on the critical path
    forward = comm[comm["phase"] == "tp_forward"]["name"].tolist()
    backward = comm[comm["phase"] == "tp_backward"]["name"].tolist()
    # the vocabulary-parallel embedding reduces its output; the LM head's input gradient is
    # reduced; each layer: after the attention projection and the second MLP matrix (forward),
    # of the input gradients of the QKV projection and the first MLP matrix (backward)
    assert forward == ["embed"] + [f"layer{i}/{n}" for i in range(LAYERS)
                                   for n in ("proj", "fc2")]
    assert backward == ["lm_head"] + [f"layer{i}/{n}" for i in reversed(range(LAYERS))
                                      for n in ("fc1", "qkv")]
    groups = result.ops[result.ops["phase"] == "tp_forward"]
    assert set(groups["rank"]) == {0, 1}


def test_sequence_parallelism_replaces_each_allreduce_by_reduce_scatter_and_all_gather(nets):
    plain = tp_collectives(run(nets["gpt"], tp=4))
    sp = tp_collectives(run(nets["gpt"], tp=4, sequence_parallel=True))
    for phase in ("tp_forward", "tp_backward"):
        allreduces = plain[plain["phase"] == phase]
        mine = sp[sp["phase"] == phase]
        assert (mine["collective"] == "reducescatter").sum() == len(allreduces)
        assert (mine["collective"] == "allgather").sum() == len(allreduces)
        assert mine["nbytes"].sum() == 2 * allreduces["nbytes"].sum()
    forward = sp[sp["phase"] == "tp_forward"]
    first_layer = forward[forward["name"].str.startswith("layer0/")]
    assert list(zip(first_layer["name"], first_layer["collective"])) == [
        ("layer0/qkv", "allgather"), ("layer0/proj", "reducescatter"),
        ("layer0/fc1", "allgather"), ("layer0/fc2", "reducescatter")]


def test_llama_gate_and_up_share_one_all_reduce(nets):
    comm = tp_collectives(run(nets["llama"], tp=2))
    backward = comm[comm["phase"] == "tp_backward"]["name"].tolist()
    per_layer = [n for n in backward if n.startswith("layer0/")]
    assert per_layer == ["layer0/gate", "layer0/qkv"]   # gate and up read the same ln2 output
    assert (comm["phase"] == "tp_forward").sum() == 1 + 2 * LAYERS


def flops_by_layer(result, rank=0, phase="forward"):
    ops = result.ops
    own = ops[(ops["rank"] == rank) & (ops["phase"] == phase)]
    return own.groupby("name")["flops"].sum()


@pytest.mark.parametrize("sp", [False, True])
def test_split_layers_do_one_tth_of_the_work(nets, sp):
    t = 4
    full = flops_by_layer(run(nets["gpt"], tp=1))
    mine = flops_by_layer(run(nets["gpt"], tp=t, sequence_parallel=sp))
    for name in ("layer1/qkv", "layer1/attn", "layer1/proj", "layer1/fc1", "layer1/act",
                 "layer1/fc2", "lm_head", "loss"):
        assert mine[name] == pytest.approx(full[name] / t, rel=1e-12)
    for name in ("layer1/ln1", "layer1/res1", "layer1/drop2", "ln_f"):
        assert mine[name] == pytest.approx(full[name] / (t if sp else 1), rel=1e-12)


def test_split_layer_time_on_the_roofline_is_a_tth(nets):
    """The roofline is linear in the work, so a quarter of the work takes a quarter of the
    time; replicated layers keep their full time."""
    def seconds(result):
        ops = result.ops
        own = ops[(ops["rank"] == 0) & (ops["phase"] == "forward")]
        return (own["end_s"] - own["start_s"]).groupby(own["name"]).sum()
    one, four = seconds(run(nets["gpt"], tp=1)), seconds(run(nets["gpt"], tp=4))
    assert four["layer2/fc1"] == pytest.approx(one["layer2/fc1"] / 4, rel=1e-12)
    assert four["layer2/ln2"] == pytest.approx(one["layer2/ln2"], rel=1e-12)


def test_full_recomputation_adds_exactly_one_forward_of_every_layer_block(nets):
    none = run(nets["gpt"], tp=2)
    full = run(nets["gpt"], tp=2, recompute="full")
    ops = full.ops[full.ops["rank"] == 0]
    forward = ops[(ops["phase"] == "forward") & ops["name"].str.startswith("layer")]
    again = ops[ops["phase"] == "recompute"]
    assert sorted(again["name"]) == sorted(forward["name"])
    assert (again["end_s"] - again["start_s"]).sum() == pytest.approx(
        (forward["end_s"] - forward["start_s"]).sum(), rel=1e-12)
    assert again["flops"].sum() == pytest.approx(forward["flops"].sum(), rel=1e-12)
    # Megatron's checkpointed layers re-run their forward all-reduces too
    comm = tp_collectives(full)
    assert (comm["phase"] == "tp_recompute").sum() == 2 * LAYERS
    extra = full.metrics["compute_s"] - none.metrics["compute_s"]
    assert extra == pytest.approx((again["end_s"] - again["start_s"]).sum(), rel=1e-9)


def test_selective_recomputation_reruns_only_the_attention_cores(nets):
    result = run(nets["gpt"], tp=2, recompute="selective")
    ops = result.ops[result.ops["rank"] == 0]
    again = ops[ops["phase"] == "recompute"]
    assert sorted(again["name"]) == [f"layer{i}/attn" for i in range(LAYERS)]
    assert not (ops["phase"] == "tp_recompute").any()


def test_impossible_tensor_parallel_degrees(nets, tmp_path):
    with pytest.raises(SpecError, match=r"strategy\.tp.*heads"):
        run(nets["six_heads"], tp=4)
    with pytest.raises(SpecError, match=r"strategy\.tp.*spans"):   # 16 > 8 GPUs per server
        run(nets["gpt"], tp=16, system=SystemSpec(topology="single_switch(servers=2, "
                                                           "server='dgx_a100')"))
    chain = tmp_path / "mlp.json"
    chain.write_text(json.dumps({"name": "mlp", "layers": {
        "data": {"type": "Input", "tensor": [1, 64]},
        "fc": {"type": "InnerProduct", "parents": ["data"], "num_outputs": 64}}}))
    with pytest.raises(SpecError, match=r"strategy\.tp.*tensor_parallel"):
        run(str(chain), tp=2)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"name": "twice", "layers": {
        "data": {"type": "Input", "tensor": [1, 64]},
        "a": {"type": "InnerProduct", "parents": ["data"], "num_outputs": 64,
              "tensor_parallel": "column"},
        "b": {"type": "InnerProduct", "parents": ["a"], "num_outputs": 64,
              "tensor_parallel": "column"}}}))
    with pytest.raises(SpecError, match=r"layers\.b\.tensor_parallel"):
        run(str(twice), tp=2)


def test_tp_across_servers_when_allowed(nets):
    system = SystemSpec(topology="single_switch(servers=2, server='dgx_a100')")
    inside = run(nets["gpt"], tp=8, dp=2, batch=4, system=system)
    across = run(nets["gpt"], tp=16, batch=4, system=system, tp_inside_server=False)
    assert across.metrics["iteration_s"] > inside.metrics["iteration_s"]


def test_isolated_tp_collectives_match_the_network_inside_servers(nets):
    # tensor parallelism inside each DGX A100 (NVSwitch), pipeline stages on two servers whose
    # traffic leaves by the NICs: the collectives have their links to themselves
    system = SystemSpec(topology="single_switch(servers=2, server='dgx_a100')")
    kw = dict(batch=8, tp=8, pp=2, microbatches=4, recompute="full", iterations=2)
    network = run(nets["gpt"], system=system, **kw)
    isolated = run(nets["gpt"], system=system, tp_comm="isolated", **kw)
    fused = run(nets["gpt"], system=system, tp_comm="isolated", granularity="pass", **kw)
    expected = network.metrics["iteration_s"]
    assert isolated.metrics["iteration_s"] == pytest.approx(expected, rel=1e-9)
    assert fused.metrics["iteration_s"] == pytest.approx(expected, rel=1e-9)
    stand_ins = isolated.ops[isolated.ops["phase"].str.startswith("tp_")]
    assert set(stand_ins["kind"]) == {"delay"}
    assert len(fused.ops) < len(isolated.ops) / 4


def test_model_tflops_per_gpu_uses_megatrons_formula(nets):
    for recompute, full in (("full", True), ("none", False)):
        result = run(nets["gpt"], batch=4, tp=2, pp=2, microbatches=2, recompute=recompute,
                     iterations=2)
        flops = gpt_flops_formula(batch=4, layers=LAYERS, hidden=HIDDEN, seq_len=SEQ,
                                  vocab=VOCAB, recompute=full)
        expected = flops / (result.metrics["iteration_s"] * 4) / 1e12
        assert parallel_metrics(result)["model_tflops_per_gpu"] == pytest.approx(expected,
                                                                                 rel=1e-12)
