"""Model graph: Paleo's files load with Paleo's shapes and counts; shape inference rules; the
extended layer types; work counts per phase."""
from __future__ import annotations

import pytest

from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph, layer_types
from workloads.spec import read_json
from conftest import PALEO_NETS, requires_shared


def net(layers: dict, name: str = "t") -> dict:
    return {"name": name, "layers": layers}


def inp(*shape):
    return {"type": "Input", "parents": [], "tensor": list(shape)}


def conv(parent, filt, strides=(1, 1), padding="SAME", **extra):
    return {"type": "Convolution", "parents": [parent], "filter": list(filt),
            "strides": [1, strides[0], strides[1], 1], "padding": padding, **extra}


# Paleo's own nets: params and conv+FC forward GFLOP per image, from the specification's table
# (PALEO_COST_MODEL.md section 1.6, figures from running `paleo summary`).
PALEO_TABLE = {
    "alex_v2": (50_303_912, 1.473, 15),
    "alex_v2_1gpu": (49_566_504, 1.261, 15),
    "alex_v2_2gpu": (49_566_504, 1.261, None),
    "alex_v2_4gpu": (49_566_504, 1.261, None),
    "alex_v2_8gpu": (49_566_504, 1.261, None),
    "inception_v3": (23_734_312, 11.275, 126),
    "nin": (7_595_176, 1.939, None),
    "overfeat": (145_704_424, 5.294, None),
    "vgg16": (138_357_544, 30.941, None),
}


@requires_shared
@pytest.mark.parametrize("name", sorted(PALEO_TABLE))
def test_paleo_nets_load_with_paleo_counts(name):
    params, gflop, nodes = PALEO_TABLE[name]
    g = build_graph(read_json(PALEO_NETS / f"{name}.json"), source=f"{name}.json")
    assert g.total_params == params
    assert round(2 * g.forward_macs / g.batch / 1e9, 3) == gflop
    if nodes is not None:
        assert len(g) == nodes


@requires_shared
def test_vgg16_forward_macs_per_image():
    g = build_graph(read_json(PALEO_NETS / "vgg16.json"), batch=1)
    assert g.forward_macs == 15_470_264_320


@requires_shared
def test_model_parallel_expansion_of_alex_v2_4gpu():
    g = build_graph(read_json(PALEO_NETS / "alex_v2_4gpu.json"))
    fc6 = [layer for layer in g if layer.name.startswith("parallel_fc67/fc6@")]
    assert [layer.split for layer in fc6] == [0, 1, 2, 3]
    assert all(layer.splits == 4 and layer.parents == ("pool5",) for layer in fc6)
    assert fc6[0].output_shape == (128, 1, 1, 1024)  # 4096 filters split 4 ways
    concat6 = g["parallel_fc67/concat6@2"]
    assert concat6.parents == tuple(f"parallel_fc67/dropout6@{s}" for s in range(4))
    assert concat6.output_shape == (128, 1, 1, 4096)
    assert g["parallel_fc67/dropout6@1"].parents == ("parallel_fc67/fc6@1",)
    assert g["concat7"].parents == tuple(f"parallel_fc67/dropout7@{s}" for s in range(4))


@requires_shared
def test_block_names_and_endpoint_parents_in_inception():
    g = build_graph(read_json(PALEO_NETS / "inception_v3.json"))
    assert g["Mixed_7c/concat"].output_shape == (64, 8, 8, 2048)
    branch = g["Mixed_5b/Branch_1/Conv2d_0b_5x5"]
    assert branch.parents == ("Mixed_5b/Branch_1/Conv2d_0a_1x1",)
    assert branch.block == "Mixed_5b"


def test_rebatch_reinfers_every_shape():
    g = build_graph(net({"data": inp(8, 32, 32, 3), "c": conv("data", (3, 3, 3, 16))}))
    assert g.batch == 8 and g["c"].output_shape == (8, 32, 32, 16)
    g2 = g.with_batch(3)
    assert g2["c"].output_shape == (3, 32, 32, 16)
    assert g2["c"].macs * 8 == g["c"].macs * 3


@pytest.mark.parametrize("padding, size, expected", [
    ("SAME", 224, 112), ("VALID", 224, 109), ([3, 3], 224, 112), ([0, 0], 224, 109),
    ("SAME", 7, 4), ("VALID", 7, 1),
])
def test_conv_output_sizes(padding, size, expected):
    g = build_graph(net({"data": inp(1, size, size, 3),
                         "c": conv("data", (7, 7, 3, 8), (2, 2), padding)}))
    assert g["c"].output_shape == (1, expected, expected, 8)


def test_same_padding_pad_before_follows_tensorflow():
    g = build_graph(net({"data": inp(1, 224, 224, 3),
                         "c": conv("data", (7, 7, 3, 8), (2, 2), "SAME")}))
    assert g["c"].attrs["pad_hw"] == (2, 2)  # total (112-1)*2+7-224 = 5, 2 before, 3 after


def test_caffe_ceil_mode_pooling():
    layers = {"data": inp(1, 112, 112, 64),
              "p": {"type": "Pooling", "parents": ["data"], "ksize": [1, 3, 3, 1],
                    "strides": [1, 2, 2, 1], "padding": [0, 0], "ceil_mode": True},
              "q": {"type": "Pooling", "parents": ["data"], "ksize": [1, 3, 3, 1],
                    "strides": [1, 2, 2, 1], "padding": [0, 0]}}
    g = build_graph(net(layers))
    assert g["p"].output_shape == (1, 56, 56, 64)  # ceil((112-3)/2)+1
    assert g["q"].output_shape == (1, 55, 55, 64)  # floor


def test_ceil_mode_clips_a_window_that_starts_in_the_padding():
    # PyTorch/Caffe: 4 -> k2 s2 p1 ceil gives 3, not 4 (the 4th window would start in the padding)
    layers = {"data": inp(1, 4, 4, 1),
              "p": {"type": "Pooling", "parents": ["data"], "ksize": [1, 2, 2, 1],
                    "strides": [1, 2, 2, 1], "padding": [1, 1], "ceil_mode": True}}
    assert build_graph(net(layers))["p"].output_shape == (1, 3, 3, 1)


def test_grouped_and_depthwise_convolution():
    layers = {"data": inp(2, 27, 27, 96),
              "g": conv("data", (5, 5, 96, 256), groups=2, padding=[2, 2]),
              "dw": conv("data", (3, 3, 96, 96), groups=96, bias=False)}
    g = build_graph(net(layers))
    assert g["g"].params == 5 * 5 * 48 * 256 + 256
    assert g["g"].macs == 2 * 27 * 27 * 256 * 48 * 25
    assert g["dw"].params == 3 * 3 * 96
    assert g["dw"].macs == 2 * 27 * 27 * 96 * 9


def test_dilated_convolution_output_size():
    g = build_graph(net({"data": inp(1, 32, 32, 4),
                         "c": conv("data", (3, 3, 4, 4), padding="VALID",
                                   dilations=[1, 2, 2, 1])}))
    assert g["c"].output_shape == (1, 28, 28, 4)  # effective kernel 5


def test_conv_work_per_phase_and_no_data_gradient_after_input():
    layers = {"data": inp(4, 8, 8, 3), "c1": conv("data", (3, 3, 3, 16), bias=False),
              "c2": conv("c1", (3, 3, 16, 16), bias=False)}
    g = build_graph(net(layers))
    c1, c2 = g["c1"], g["c2"]
    assert c1.fed_by_input and not c2.fed_by_input
    assert c1.work["backward_data"].flops == 0
    assert c2.work["backward_data"].flops == c2.work["forward"].flops == 2 * c2.macs
    assert c2.work["backward_filter"].flops == 2 * c2.macs
    assert c2.work["forward"].read_elems == 4 * 8 * 8 * 16 + 3 * 3 * 16 * 16
    assert c2.work["forward"].write_elems == 4 * 8 * 8 * 16


def test_paleo_fused_batch_norm_epilogue_is_charged():
    plain = build_graph(net({"data": inp(1, 8, 8, 3), "c": conv("data", (1, 1, 3, 4))}))
    bn = build_graph(net({"data": inp(1, 8, 8, 3),
                          "c": conv("data", (1, 1, 3, 4), normalizer_fn="batch_norm",
                                    activation_fn="relu")}))
    out = 8 * 8 * 4
    assert bn["c"].work["forward"].flops == plain["c"].work["forward"].flops + out * (1 + 7)
    assert bn["c"].params == plain["c"].params


def test_transformer_layers():
    layers = {
        "tokens": inp(2, 16),
        "emb": {"type": "Embedding", "parents": ["tokens"], "vocab": 100, "dim": 32},
        "ln": {"type": "LayerNorm", "parents": ["emb"]},
        "qkv": {"type": "InnerProduct", "parents": ["ln"], "num_outputs": 3 * 32},
        "attn": {"type": "Attention", "parents": ["qkv"], "heads": 4, "head_dim": 8},
        "proj": {"type": "InnerProduct", "parents": ["attn"], "num_outputs": 32},
        "res": {"type": "Elementwise", "parents": ["emb", "proj"]},
        "head": {"type": "InnerProduct", "parents": ["res"], "num_outputs": 100, "bias": False,
                 "tied_to": "emb"},
        "sm": {"type": "Softmax", "parents": ["head"]},
    }
    g = build_graph(net(layers))
    assert g["emb"].output_shape == (2, 16, 32)
    assert g["qkv"].output_shape == (2, 16, 96)
    assert g["attn"].output_shape == (2, 16, 32)
    assert g["attn"].macs == 2 * (2 * 4 * 16 * 16) * 8
    assert g["sm"].output_shape == (2, 16, 100)
    assert g["head"].params == 0 and g["head"].macs == 2 * 16 * 32 * 100
    assert g.total_params == 100 * 32 + 2 * 32 + (32 * 96 + 96) + (32 * 32 + 32)


def test_grouped_query_attention_width():
    layers = {"x": inp(1, 4, (8 + 2 * 2) * 16),
              "a": {"type": "Attention", "parents": ["x"], "heads": 8, "kv_heads": 2,
                    "head_dim": 16}}
    assert build_graph(net(layers))["a"].output_shape == (1, 4, 128)


def test_batchnorm_and_layernorm_params():
    layers = {"data": inp(1, 4, 4, 10), "bn": {"type": "BatchNorm", "parents": ["data"]},
              "bn0": {"type": "BatchNorm", "parents": ["data"], "affine": False},
              "rms": {"type": "LayerNorm", "parents": ["data"], "rms": True}}
    g = build_graph(net(layers))
    assert (g["bn"].params, g["bn0"].params, g["rms"].params) == (20, 0, 10)


def test_reshape_keeps_batch_and_infers_minus_one():
    layers = {"data": inp(5, 2, 3, 4),
              "r": {"type": "Reshape", "parents": ["data"], "output_shape": [64, -1]},
              "r2": {"type": "Reshape", "parents": ["data"], "output_shape": [-1, 6, 4]}}
    g = build_graph(net(layers))
    assert g["r"].output_shape == (5, 24)
    assert g["r2"].output_shape == (5, 6, 4)


def test_unknown_layer_type_is_an_error_unless_free():
    layers = {"data": inp(1, 4, 4, 3), "x": {"type": "Mystery", "parents": ["data"]},
              "c": conv("x", (1, 1, 3, 2))}
    with pytest.raises(UnknownNameError) as info:
        build_graph(net(layers), source="m.json")
    assert "m.json: layers.x.type: unknown layer type 'Mystery'" in str(info.value)
    g = build_graph(net(layers), unknown_layers="free")
    assert g["x"].output_shape == (1, 4, 4, 3) and g["x"].work["forward"].flops == 0


def test_every_paleo_type_is_known():
    paleo = {"Input", "Convolution", "Deconvolution", "Pooling", "AvgPool", "InnerProduct",
             "Dropout", "Concatenate", "Elementwise", "Softmax", "Sigmoid", "Reshape",
             "UpSampling2D"}
    assert paleo <= set(layer_types())


def test_deconvolution_and_upsampling():
    layers = {"data": inp(2, 4, 4, 64),
              "d": {"type": "Deconvolution", "parents": ["data"], "filter": [5, 5, 32, 64],
                    "strides": [1, 2, 2, 1], "padding": "SAME", "output_shape": [2, 8, 8, 32]},
              "u": {"type": "UpSampling2D", "parents": ["d"], "ksize": [1, 2, 2, 1]}}
    g = build_graph(net(layers))
    assert g["d"].output_shape == (2, 8, 8, 32)
    assert g["d"].params == 5 * 5 * 32 * 64 + 32
    assert g["u"].output_shape == (2, 16, 16, 32)


@pytest.mark.parametrize("layers, fragment", [
    ({"data": inp(1, 4, 4, 3), "a": conv("b", (1, 1, 3, 3)), "b": conv("a", (1, 1, 3, 3))},
     "layers: the layers form a cycle (got ['a', 'b'])"),
    ({"data": inp(1, 4, 4, 3), "a": conv("nope", (1, 1, 3, 3))},
     "layers.a.parents: unknown parent (got 'nope')"),
    ({"data": inp(1, 4, 4, 3), "a": conv("data", (1, 1, 3, 8)), "b": conv("data", (1, 1, 3, 8)),
      "p": {"type": "Pooling", "parents": ["a"], "ksize": [1, 2, 2, 1],
            "strides": [1, 2, 2, 1], "padding": "VALID"},
      "c": {"type": "Concatenate", "parents": ["p", "b"], "dim": 3}},
     "layers.c.parents: shape mismatch: cannot concatenate [1, 2, 2, 8] and [1, 4, 4, 8]"),
    ({"data": inp(1, 4, 4, 3), "a": conv("data", (1, 1, 5, 8))},
     "layers.a.filter: channel mismatch: filter expects 5 input channels, the input has 3"),
    ({"data": inp(1, 4, 4, 3), "a": {"type": "Convolution", "parents": ["data"],
                                     "strides": [1, 1, 1, 1]}},
     "layers.a.filter: missing field 'filter' for a Convolution layer"),
    ({"data": inp(1, 4, 4, 3), "a": conv("data", (1, 1, 3, 8), padding="FULL")},
     "layers.a.padding: 'padding' must be"),
    ({"data": inp(1, 4, 4, 3), "a": {"parents": ["data"], "filter": [1, 1, 3, 3]}},
     "layers.a: missing field 'type'"),
    ({"data": inp(1, 4, 4, 3), "a": conv("data", ("3", 1, 3, 3))},
     "layers.a.filter: 'filter' must be a list of 4 integers"),
    ({"data": inp(1, 2, 2, 3), "a": conv("data", (3, 3, 3, 3), padding="VALID")},
     "does not fit the input 2x2"),
])
def test_bad_nets_name_the_field_and_value(layers, fragment):
    with pytest.raises(SpecError) as info:
        build_graph(net(layers), source="bad.json")
    message = str(info.value)
    assert message.startswith("bad.json: ")
    assert fragment in message
    assert "\n" not in message


def test_not_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "layers": {,}}')
    with pytest.raises(SpecError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}: not valid JSON:")
    assert "line 2" in str(info.value)


def test_model_parallel_parent_without_suffix_is_an_error():
    layers = {"data": inp(1, 4, 4, 3),
              "mp": {"type": "ModelParallel", "splits": 2, "parents": ["data"],
                     "layers": {"a": {"type": "Convolution", "parents": [], "filter": [1, 1, 3, 4],
                                      "strides": [1, 1, 1, 1], "padding": "SAME"},
                                "b": {"type": "Dropout", "parents": ["a"],
                                      "dropout_keep_prob": 0.5}}}}
    with pytest.raises(SpecError, match=r"layers.mp.layers.b.parents: inside a ModelParallel "
                                        r"block a parent must end in '@self' or '@all'"):
        build_graph(net(layers))


def test_importing_one_op_module_first_still_registers_every_type():
    import subprocess
    import sys
    code = ("from workloads.ops_dense import SOFTMAX_FLOPS\n"
            "from workloads import build_graph\n"
            "g = build_graph({'name': 'x', 'layers': {'data': {'type': 'Input', 'parents': [], "
            "'tensor': [1, 4]}, 's': {'type': 'Softmax', 'parents': ['data']}}})\n"
            "print(g['s'].output_shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 4)"
