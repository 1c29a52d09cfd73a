"""Transformer workloads (workloads/transformer): parameter counts and training FLOPs against
Megatron-LM's closed forms and published counts, the graph's structure (names, GQA widths,
tensor-parallel fields, the root's hyper-parameters), presets by name, `paleosim generate
transformer`."""
from __future__ import annotations

import json
import re

import pytest

from simulator.cli import main
from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph, layer_types, load_net, shipped_nets
from workloads.transformer import (HYPER_KEYS, gpt_flops_formula, gpt_params_formula,
                                   hyperparameters, llama_ffn, preset, preset_info, preset_spec,
                                   presets, recomputed_layers, summarize, training_flops,
                                   transformer_graph, transformer_spec)
from workloads.zoo import to_json

# Load every op module before reaching into one: importing workloads.ops_dense alone fills the
# layer registry with its four types only, and workloads.ops then never loads the others.
layer_types()
from workloads.ops_dense import SOFTMAX_FLOPS  # noqa: E402

GPT_PRESETS = [n for n in presets() if n.startswith(("megatron-gpt-", "ptdp-gpt-"))]
LLAMA_PRESETS = [n for n in presets() if n.startswith("llama")]


def dims(name: str) -> dict:
    p = preset(name)
    return {k: p[k] for k in ("layers", "hidden", "seq_len", "vocab")}


def gpt_exact_params(*, layers: int, hidden: int, seq_len: int, vocab: int, **_) -> int:
    """Per layer 12h² + 13h, embeddings (V + s)h, final LayerNorm 2h, tied head 0."""
    h = hidden
    return layers * (12 * h * h + 13 * h) + (vocab + seq_len) * h + 2 * h


def llama_exact_params(*, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int,
                       vocab: int, **_) -> int:
    """Per layer: Q and O (h x h each), K and V (h x kv_heads*head_dim each), three SwiGLU
    matrices (h x ffn), two RMSNorm scales; untied embedding and LM head; final RMSNorm."""
    h = hidden
    kv = kv_heads * (h // heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * ffn + 2 * h
    return layers * per_layer + 2 * vocab * h + h


# ---------------------------------------------------------------------------------------------
# The presets table

def test_the_published_models_are_presets():
    names = set(presets())
    assert {"megatron-gpt-1.16b", "megatron-gpt-2.03b", "megatron-gpt-4.24b",
            "megatron-gpt-8.67b", "ptdp-gpt-1.7b", "ptdp-gpt-7.5b", "ptdp-gpt-39.1b",
            "ptdp-gpt-145.6b", "ptdp-gpt-1t", "gpt3-175b", "llama2-7b", "llama2-70b",
            "llama3-8b", "llama3-70b", "llama3-405b", "bert-base", "bert-large"} <= names
    assert list(presets()) == sorted(names)
    assert not names & set(shipped_nets())


@pytest.mark.parametrize("name", presets())
def test_every_preset_cites_its_source(name):
    info = preset_info(name)
    assert info["confidence"] in ("high", "medium")
    assert info["reference"] and len(info["citation"]) > 40
    if info["confidence"] != "high":
        assert "medium" in info["notes"]
    assert set(HYPER_KEYS) <= set(info)


def test_preset_values_as_published():
    """Spot checks against the sources quoted in the task (and public_results.csv)."""
    assert preset("megatron-gpt-1.16b") == {
        "arch": "gpt", "layers": 24, "hidden": 1920, "heads": 15, "kv_heads": 15, "ffn": 7680,
        "seq_len": 1024, "vocab": 51200}
    assert preset("ptdp-gpt-1t") == {
        "arch": "gpt", "layers": 128, "hidden": 25600, "heads": 160, "kv_heads": 160,
        "ffn": 102400, "seq_len": 2048, "vocab": 51200}
    assert preset("gpt3-175b")["vocab"] == 50257      # published, not Megatron's padded 50304
    assert "50304" in preset_info("gpt3-175b")["notes"]
    assert preset("llama3-405b") == {
        "arch": "llama", "layers": 126, "hidden": 16384, "heads": 128, "kv_heads": 8,
        "ffn": 53248, "seq_len": 8192, "vocab": 128256}
    batches = {n: preset_info(n)["global_batch"] for n in (
        "megatron-gpt-1.16b", "ptdp-gpt-1.7b", "ptdp-gpt-7.5b", "ptdp-gpt-39.1b",
        "ptdp-gpt-145.6b", "ptdp-gpt-1t")}
    assert batches == {"megatron-gpt-1.16b": 8, "ptdp-gpt-1.7b": 512, "ptdp-gpt-7.5b": 512,
                       "ptdp-gpt-39.1b": 1536, "ptdp-gpt-145.6b": 2304, "ptdp-gpt-1t": 3072}


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown transformer preset 'gpt5'; valid: "
                                               "bert-base, bert-large, gpt3-175b"):
        preset("gpt5")


# ---------------------------------------------------------------------------------------------
# Parameters

@pytest.mark.parametrize("name", GPT_PRESETS + ["gpt3-175b"])
def test_gpt_params_equal_megatron_formula_plus_the_final_layernorm(name):
    """Exact count = formula + 2h (the final LayerNorm the formula omits); so within 1%, in fact
    within 3.3e-6 relative (megatron-gpt-1.16b) down to 5.1e-8 (ptdp-gpt-1t)."""
    d = dims(name)
    g = load_net(name)
    assert g.total_params == gpt_exact_params(**d)
    formula = gpt_params_formula(**d)
    assert g.total_params - formula == pytest.approx(2 * d["hidden"], rel=1e-6)
    assert abs(g.total_params / formula - 1) < 4e-6


@pytest.mark.parametrize("name", GPT_PRESETS)
def test_gpt_params_round_to_the_published_size(name):
    """Megatron-LM's tables print sizes to 2 (README) or 1 decimal (SC21 Table 1) in billions."""
    published = preset_info(name)["published_params"]
    number = re.fullmatch(r"(\d+)(?:\.(\d+))?B", published)
    decimals = len(number.group(2) or "")
    assert round(load_net(name).total_params / 1e9, decimals) == float(published[:-1])


def test_llama_params_equal_the_hugging_face_counts():
    """Checkpoint parameter counts (Hugging Face ``num_parameters()``), exact."""
    published = {"llama2-7b": 6_738_415_616, "llama2-13b": 13_015_864_320,
                 "llama3-8b": 8_030_261_248, "llama3-70b": 70_553_706_496}
    for name, count in published.items():
        assert load_net(name).total_params == count, name


@pytest.mark.parametrize("name", LLAMA_PRESETS)
def test_llama_params_as_derived_from_the_architecture(name):
    g = load_net(name)
    assert g.total_params == llama_exact_params(**preset(name))
    derived = {"llama2-70b": 68_976_648_192, "llama3-405b": 405_853_388_800}
    if name in derived:
        assert g.total_params == derived[name]


def test_bert_counts_the_encoder_and_a_tied_head():
    """BERT-base: HF BertModel's 109,482,240 minus the pooler (768² + 768); BERT-large likewise
    (335,141,888 - 1,049,600). Embeddings: tokens, 512 positions, 2 segment types."""
    for name, (h, hf_bert_model) in {"bert-base": (768, 109_482_240),
                                     "bert-large": (1024, 335_141_888)}.items():
        p = preset(name)
        g = load_net(name)
        expected = (p["layers"] * (12 * h * h + 13 * h) + (30522 + 512 + 2) * h + 2 * h)
        assert g.total_params == expected == hf_bert_model - (h * h + h)
    assert load_net("bert-base").total_params == 108_891_648


# ---------------------------------------------------------------------------------------------
# Training FLOPs

def attention_softmax_flops(g, name: str, *, passes: int) -> float:
    p = preset(name)
    return passes * SOFTMAX_FLOPS * g.batch * p["heads"] * p["seq_len"] ** 2 * p["layers"]


@pytest.mark.parametrize("name", GPT_PRESETS + ["gpt3-175b"])
def test_training_flops_equal_megatron_formula_at_the_published_batch(name):
    """Matrix products (op_class "matmul") forward + backward + the recomputed forward of every
    transformer layer vs 96 B s l h² (1 + s/(6h) + V/(16 l h)): within 1%, and the difference is
    exactly the attention softmax (5 FLOPs per score, three passes), which the formula omits.
    Measured: 7.7e-5 (ptdp-gpt-1t) to 1.2e-3 (ptdp-gpt-1.7b) relative."""
    batch = preset_info(name)["global_batch"]
    g = load_net(name, batch=batch)
    assert g.batch == batch
    ours = training_flops(g)
    formula = gpt_flops_formula(batch=batch, **dims(name))
    assert abs(ours / formula - 1) < 0.01
    assert ours - formula == pytest.approx(attention_softmax_flops(g, name, passes=3), rel=1e-6)


@pytest.mark.parametrize("name", ["megatron-gpt-1.16b", "ptdp-gpt-7.5b"])
def test_training_flops_without_recomputation_equal_the_72_formula(name):
    g = load_net(name, batch=4)
    ours = training_flops(g, recompute=False)
    formula = gpt_flops_formula(batch=4, recompute=False, **dims(name))
    assert ours - formula == pytest.approx(attention_softmax_flops(g, name, passes=2), rel=1e-6)


def test_recomputation_reruns_the_layers_not_the_head():
    g = load_net("megatron-gpt-1.16b")
    again = recomputed_layers(g)
    assert "layer0/qkv" in again and "layer23/res2" in again
    assert not again & {"embed", "pos_embed", "ln_f", "lm_head", "loss"}
    extra = training_flops(g) - training_flops(g, recompute=False)
    assert extra == sum(g[n].work["forward"].flops for n in again if g[n].op_class == "matmul")
    # the LM head: 2 B s h V forward, twice that backward, counted three times in all
    head = g["lm_head"]
    assert head.work["forward"].flops == 2 * 1024 * 1920 * 51200
    assert sum(w.flops for w in head.work.values()) == 3 * head.work["forward"].flops


def test_training_flops_scale_with_the_batch():
    g = load_net("llama2-7b")
    assert training_flops(g.with_batch(6)) == pytest.approx(6 * training_flops(g), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Structure

def test_gpt_layer_names_and_order():
    g = transformer_graph(arch="gpt", layers=2, hidden=64, heads=4, seq_len=16, vocab=100)
    names = [layer.name for layer in g.layers]
    assert names[:6] == ["tokens", "positions", "embed", "pos_embed", "embed_sum", "embed_drop"]
    assert names[6:18] == [f"layer0/{c}" for c in (
        "ln1", "qkv", "attn", "proj", "drop1", "res1", "ln2", "fc1", "act", "fc2", "drop2",
        "res2")]
    assert names[-3:] == ["ln_f", "lm_head", "loss"]
    assert g["layer1/ln1"].parents == ("layer0/res2",)
    assert g["layer1/res1"].parents == ("layer1/drop1", "layer0/res2")
    assert g["layer1/res2"].parents == ("layer1/drop2", "layer1/res1")
    assert g["lm_head"].output_shape == (1, 16, 100)
    assert g["lm_head"].fields["tied_to"] == "embed" and g["lm_head"].params == 0
    assert g["layer0/attn"].attrs["causal"] is True
    assert g["layer0/act"].attrs["function"] == "gelu"
    assert g["layer0/drop1"].attrs["keep_prob"] == pytest.approx(0.9)


def test_llama_layer_is_swiglu_without_biases_or_dropout():
    g = load_net("llama2-7b")
    kids = [layer.name.split("/")[1] for layer in g.layers if layer.block == "layer0"]
    assert kids == ["ln1", "qkv", "attn", "proj", "res1", "ln2", "gate", "up", "act", "mul",
                    "down", "res2"]
    assert "pos_embed" not in g and not any(layer.type == "Dropout" for layer in g.layers)
    assert all(layer.attrs["bias"] is False for layer in g.layers if layer.type == "InnerProduct")
    assert all(layer.attrs["rms"] for layer in g.layers if layer.type == "LayerNorm")
    assert g["layer0/mul"].parents == ("layer0/act", "layer0/up")
    assert g["layer0/act"].attrs["function"] == "silu"
    assert g["lm_head"].params == 32000 * 4096 and "tied_to" not in g["lm_head"].fields
    assert g["layer0/gate"].output_shape == (1, 4096, 11008)


@pytest.mark.parametrize("name, heads, kv, head_dim", [
    ("llama2-7b", 32, 32, 128), ("llama2-70b", 64, 8, 128), ("llama3-8b", 32, 8, 128),
    ("llama3-405b", 128, 8, 128)])
def test_grouped_query_attention_widths(name, heads, kv, head_dim):
    g = load_net(name)
    s = preset(name)["seq_len"]
    assert g["layer0/qkv"].output_shape == (1, s, (heads + 2 * kv) * head_dim)
    assert g["layer0/attn"].output_shape == (1, s, heads * head_dim)
    assert (g["layer0/attn"].attrs["heads"], g["layer0/attn"].attrs["kv_heads"]) == (heads, kv)
    h = heads * head_dim
    assert g["layer0/qkv"].params == h * (heads + 2 * kv) * head_dim


def test_bert_is_bidirectional_with_segments():
    g = load_net("bert-base")
    assert all(not layer.attrs["causal"] for layer in g.layers if layer.type == "Attention")
    assert g["embed_sum"].parents == ("embed", "pos_embed", "type_embed")
    assert g["type_embed"].params == 2 * 768
    assert sum(layer.type == "Input" for layer in g.layers) == 3


@pytest.mark.parametrize("name", ["ptdp-gpt-1.7b", "llama3-8b"])
def test_tensor_parallel_fields(name):
    g = load_net(name)
    marked = {layer.name.split("/")[-1]: layer.fields["tensor_parallel"]
              for layer in g.layers if "tensor_parallel" in layer.fields
              and layer.block in (None, "layer0")}
    mlp = ({"gate": "column", "up": "column", "down": "row"} if name.startswith("llama")
           else {"fc1": "column", "fc2": "row"})
    assert marked == {"embed": "vocab", "qkv": "column", "attn": "heads", "proj": "row",
                      "lm_head": "column", **mlp}
    # every transformer layer carries the same marks
    per_layer = sum("tensor_parallel" in layer.fields for layer in g.layers
                    if layer.block == "layer1")
    assert per_layer == len(mlp) + 3


def test_root_records_the_hyperparameters():
    g = load_net("llama3-70b", batch=2)
    hyper = hyperparameters(g)
    assert hyper == {"arch": "llama", "layers": 80, "hidden": 8192, "heads": 64,
                     "seq_len": 8192, "vocab": 128256, "ffn": 28672, "kv_heads": 8,
                     "dropout": 0.0, "head_dim": 128, "causal": True,
                     "tied_embeddings": False, "preset": "llama3-70b"}
    assert sum(layer.block == "layer79" for layer in g.layers) == 12
    with pytest.raises(SpecError, match="not a transformer net"):
        hyperparameters(load_net("alexnet"))


def test_defaults_and_overrides():
    spec = transformer_spec(arch="llama", layers=1, hidden=4096, heads=32, seq_len=8, vocab=10)
    assert spec["transformer"]["ffn"] == llama_ffn(4096) == 11008
    assert llama_ffn(5120) == 13824                      # Llama 13B's published width
    gpt = transformer_spec(layers=1, hidden=64, heads=4, seq_len=8, vocab=10, dropout=0.0,
                           batch=3, name="tiny")
    assert gpt["name"] == "tiny" and gpt["transformer"]["ffn"] == 256
    assert not any(layer["type"] == "Dropout" for layer in gpt["layers"].values())
    assert build_graph(gpt).batch == 3
    assert transformer_spec(layers=1, hidden=64, heads=4, kv_heads=2, seq_len=8,
                            vocab=10)["name"] == "gpt-l1-h64-a4-kv2-s8"


def test_preset_spec_batch_and_sequence():
    g = build_graph(preset_spec("llama3-8b", batch=2, seq_len=4096))
    assert g["tokens"].output_shape == (2, 4096)
    assert g.name == "llama3-8b" and hyperparameters(g)["seq_len"] == 4096
    # a GPT's learned positions follow the sequence length
    g = build_graph(preset_spec("ptdp-gpt-1.7b", seq_len=1024))
    assert g["pos_embed"].params == 1024 * 2304


@pytest.mark.parametrize("kwargs, field, got", [
    ({"hidden": 100, "heads": 3}, "heads", "got 3"),
    ({"kv_heads": 3}, "kv_heads", "got 3"),
    ({"layers": 0}, "layers", "got 0"),
    ({"vocab": 2.5}, "vocab", "got 2.5"),
    ({"dropout": 1.0}, "dropout", "got 1.0"),
])
def test_bad_hyperparameters_name_the_field_and_value(kwargs, field, got):
    base = {"layers": 2, "hidden": 64, "heads": 4, "seq_len": 8, "vocab": 10}
    with pytest.raises(SpecError) as err:
        transformer_spec(**(base | kwargs))
    assert err.value.field == field and got in str(err.value)


def test_unknown_arch_lists_the_archs():
    with pytest.raises(UnknownNameError, match="unknown transformer arch 't5'; valid: bert, "
                                               "gpt, llama"):
        transformer_spec(arch="t5", layers=1, hidden=8, heads=1, seq_len=2, vocab=3)


def test_same_inputs_same_text_and_json_round_trip(tmp_path):
    a = to_json(preset_spec("gpt3-175b", batch=4))
    assert a == to_json(preset_spec("gpt3-175b", batch=4))
    path = tmp_path / "gpt3.json"
    path.write_text(a)
    from_file = load_net(path)
    by_name = load_net("gpt3-175b", batch=4)
    assert from_file.total_params == by_name.total_params
    assert training_flops(from_file) == training_flops(by_name)


# ---------------------------------------------------------------------------------------------
# Loading by name

def test_load_net_resolves_presets_and_keeps_shipped_nets():
    g = load_net("gpt3-175b", batch=8)
    assert (g.name, g.batch, g.source) == ("gpt3-175b", 8, "gpt3-175b")
    assert g["tokens"].output_shape == (8, 2048)
    assert load_net("ptdp-gpt-1t").batch == 1
    assert load_net("vgg16").total_params == 138_357_544


def test_unknown_net_lists_shipped_nets_and_presets():
    with pytest.raises(UnknownNameError) as err:
        load_net("gpt-17")
    assert "vgg16" in err.value.valid and "llama3-405b" in err.value.valid
    assert err.value.valid == sorted([*shipped_nets(), *presets()])


def test_the_largest_preset_builds():
    """The 1T-parameter model: 128 blocks of 12 layers plus 9 others. (Its load time is measured
    by hand, not here: see the report; about 0.06 s.)"""
    g = load_net("ptdp-gpt-1t", batch=3072)
    assert len(g) == 128 * 12 + 9
    assert round(g.total_params / 1e12, 3) == 1.008


# ---------------------------------------------------------------------------------------------
# `paleosim generate transformer`

def test_cli_preset_summary(capsys):
    assert main(["generate", "transformer", "--preset", "ptdp-gpt-1.7b", "--batch", "512",
                 "--summary", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    g = load_net("ptdp-gpt-1.7b", batch=512)
    assert row == summarize(g)
    assert row["params"] == g.total_params and row["batch"] == 512
    assert abs(row["train_flops"] / row["train_flops_formula"] - 1) < 0.01


def test_cli_writes_a_loadable_custom_net(tmp_path, capsys):
    out = tmp_path / "tiny.json"
    assert main(["generate", "transformer", "--arch", "llama", "--layers", "2", "--hidden",
                 "512", "--heads", "8", "--kv-heads", "2", "--seq-len", "64", "--vocab", "1000",
                 "--batch", "4", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_text() == to_json(transformer_spec(
        arch="llama", layers=2, hidden=512, heads=8, kv_heads=2, seq_len=64, vocab=1000,
        batch=4))
    g = load_net(out)
    assert g.batch == 4 and g["layer1/qkv"].output_shape == (4, 64, (8 + 4) * 64)
    assert g.total_params == llama_exact_params(layers=2, hidden=512, heads=8, kv_heads=2,
                                                ffn=llama_ffn(512), vocab=1000)


def test_cli_prints_json_and_lists_presets(capsys):
    assert main(["generate", "transformer", "--arch", "bert", "--layers", "1", "--hidden", "8",
                 "--heads", "2", "--seq-len", "4", "--vocab", "11", "--name", "b"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["name"] == "b" and spec["transformer"]["causal"] is False
    assert main(["generate", "transformer", "--list", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("preset,arch,layers,hidden,heads,kv_heads,ffn,seq_len,vocab")
    assert [line.split(",")[0] for line in lines[1:]] == list(presets())


@pytest.mark.parametrize("argv, needle", [
    (["--preset", "gpt3-175b", "--layers", "3"], "--layers: cannot be combined with --preset"),
    (["--hidden", "64", "--heads", "4", "--seq-len", "8", "--vocab", "10"], "--layers: is "
                                                                             "required"),
    (["--preset", "gpt5"], "unknown transformer preset 'gpt5'"),
    (["--layers", "1", "--hidden", "10", "--heads", "3", "--seq-len", "2", "--vocab", "5"],
     "heads: heads=3 must divide hidden=10"),
])
def test_cli_errors_are_one_line_exit_2(argv, needle, capsys):
    assert main(["generate", "transformer", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
