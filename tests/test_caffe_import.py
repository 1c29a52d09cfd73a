"""The Caffe prototxt importer: text-format parser, conversion to the net format, the CLI."""
from __future__ import annotations

import argparse
import json
import math
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from simulator.errors import SpecError, UnknownNameError
from workloads.caffe import (SUPPORTED_TYPES, convert_prototxt, import_prototxt, net_to_json,
                             prototxt_to_json)
from workloads.prototxt import Enum, parse_prototxt

CAFFE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "paleo" / "nets" / "caffe"
RESNET50 = CAFFE_DIR / "resnet50.prototxt"
DENSENET = CAFFE_DIR / "densenet.prototxt"
needs_fixtures = pytest.mark.skipif(
    not (RESNET50.is_file() and DENSENET.is_file()),
    reason=f"Caffe fixtures not found in {CAFFE_DIR} (the shared data folder beside the repo)")


def convert(text: str, **kwargs):
    return convert_prototxt(textwrap.dedent(text), source="inline.prototxt", **kwargs)


def load_spec(spec: dict):
    from workloads import build_graph, parse_net
    return build_graph(parse_net(spec, source="converted"))


def caffe_type_counts(path: Path) -> Counter:
    """Layer types as written in the file, read with a regex independent of the parser."""
    return Counter(re.findall(r'^\s*type:\s*"(\w+)"', path.read_text(), re.M))


TINY_INPUT = """
    name: "tiny"
    input: "data"
    input_dim: 2
    input_dim: 3
    input_dim: {h}
    input_dim: {w}
"""


def tiny(body: str, h: int = 8, w: int = 8) -> str:
    return textwrap.dedent(TINY_INPUT.format(h=h, w=w)) + textwrap.dedent(body)


# ---------------------------------------------------------------------------------------------
# the text-format parser
def test_parser_reads_the_text_format_forms():
    msg = parse_prototxt(textwrap.dedent("""
        # a comment
        name: "a \\"quoted\\" name"  # trailing comment
        dims: [1, 2, 3]
        kernel_size: 3 kernel_size: 5;
        shape: { dim: -1 dim: 0x10 }
        legacy < eps: 1e-5, neg: -inf >
        pool: AVE
        flag: true
        joined: "ab" 'cd'
    """), source="t.prototxt")
    assert msg.get("name") == 'a "quoted" name'
    assert msg.get_all("dims") == [1, 2, 3]
    assert msg.get_all("kernel_size") == [3, 5]
    assert msg.get("kernel_size") == 5  # singular read: the last value wins, as in protobuf
    assert msg.get("shape").get_all("dim") == [-1, 16]
    assert msg.get("legacy").get("eps") == 1e-5 and msg.get("legacy").get("neg") == -math.inf
    assert isinstance(msg.get("pool"), Enum) and msg.get("pool") == "AVE"
    assert not isinstance(msg.get("name"), Enum)
    assert msg.get("joined") == "abcd"
    assert msg.field("shape").line == 6 and msg.get("shape").line == 6


@pytest.mark.parametrize("text, line, token", [
    ('layer {\n  name: "x"\n  type: "ReLU"\n', 4, None),               # unclosed message
    ('layer {\n  name: "x"\n  num_output 16\n}\n', 3, "16"),            # missing ':'
    ('a: 1\nb: }\n', 2, "}"),                                           # value missing
    ('a: 1\n\n\nb: [1 2]\n', 4, "2"),                                   # list without comma
    ('a: 1\nb: @\n', 2, "@"),                                           # stray character
    ('a: 1\n}\n', 2, "}"),                                              # unbalanced brace
])
def test_malformed_text_names_file_and_line(text, line, token):
    with pytest.raises(SpecError) as err:
        parse_prototxt(text, source="bad.prototxt")
    message = str(err.value)
    assert message.startswith(f"bad.prototxt: line {line}: "), message
    assert repr(token) in message if token else "end of file" in message


def test_malformed_file_through_the_importer_names_path_and_line(tmp_path):
    path = tmp_path / "broken.prototxt"
    path.write_text(tiny('layer {\n  name: "c"\n  type: "Convolution"\n  bottom "data"\n}\n'))
    bad_line = path.read_text().splitlines().index('  bottom "data"') + 1
    with pytest.raises(SpecError) as err:
        import_prototxt(path)
    assert str(err.value).startswith(f"{path}: line {bad_line}: ")


# ---------------------------------------------------------------------------------------------
# the shipped Caffe nets
@needs_fixtures
def test_resnet50_converts_with_the_expected_layer_counts():
    spec = import_prototxt(RESNET50)
    counts = Counter(layer["type"] for layer in spec["layers"].values())
    written = caffe_type_counts(RESNET50)
    # Every BatchNorm is followed by its Scale: 53 pairs become 53 affine BatchNorms.
    assert written["BatchNorm"] == written["Scale"] == 53
    assert counts == {"Input": 1, "Convolution": written["Convolution"],
                      "BatchNorm": written["BatchNorm"], "Activation": written["ReLU"],
                      "Elementwise": written["Eltwise"], "Pooling": 1, "AvgPool": 1,
                      "InnerProduct": written["InnerProduct"], "Softmax": written["Softmax"]}
    assert (counts["Convolution"], counts["BatchNorm"], counts["Activation"],
            counts["Elementwise"], len(spec["layers"])) == (53, 53, 49, 16, 176)
    layers = spec["layers"]
    assert all(l["affine"] is True and "bias" not in l for l in layers.values()
               if l["type"] == "BatchNorm")
    assert all(l["operation"] == "sum" and len(l["parents"]) == 2 for l in layers.values()
               if l["type"] == "Elementwise")
    # conv1 has a bias (no bias_term: false); the 52 others do not
    assert [n for n, l in layers.items() if l["type"] == "Convolution" and "bias" not in l] == \
        ["conv1"]
    assert spec["name"] == "ResNet-50" and list(layers)[0] == "data"


@needs_fixtures
def test_resnet50_keeps_explicit_pads_and_ceil_mode_pooling():
    result = convert_prototxt(RESNET50.read_text(), source=str(RESNET50))
    conv1, pool1 = result.spec["layers"]["conv1"], result.spec["layers"]["pool1"]
    assert conv1 == {"type": "Convolution", "parents": ["data"], "filter": [7, 7, 3, 64],
                     "strides": [1, 2, 2, 1], "padding": [3, 3]}
    assert pool1 == {"type": "Pooling", "parents": ["conv1_relu"], "ksize": [1, 3, 3, 1],
                     "strides": [1, 2, 2, 1], "padding": [0, 0], "ceil_mode": True}
    assert result.spec["layers"]["pool5"]["type"] == "AvgPool"
    # floor((224 + 2*3 - 7)/2) + 1 = 112; ceil((112 - 3)/2) + 1 = 56 where floor would give 55
    assert result.shapes["conv1"] == (1, 112, 112, 64)
    assert result.shapes["pool1"] == (1, 56, 56, 64) and (112 - 3) // 2 + 1 == 55
    assert result.shapes["res5c"] == (1, 7, 7, 2048)
    assert result.shapes["pool5"] == (1, 1, 1, 2048) and result.shapes["prob"] == (1, 1000)


def resnet50_caffe_params() -> int:
    """ResNet-50 of KaimingHe's prototxt, counted by hand from its architecture.

    Bottleneck stages (mid channels, blocks) = (64, 3), (128, 4), (256, 6), (512, 3); each block is
    1x1 in->mid, 3x3 mid->mid, 1x1 mid->4*mid, and the first of a stage has a 1x1 projection
    in->4*mid. No convolution has a bias except conv1 (its prototxt omits ``bias_term: false``),
    every convolution is followed by BatchNorm+Scale (gamma and beta: 2 per channel), and fc1000
    has a bias. This gives 23,454,912 conv weights + 64 conv1 biases + 53,120 affine parameters
    + 2,049,000 for fc1000 = 25,557,096, i.e. torchvision's 25,557,032 plus conv1's 64 biases.
    """
    conv, bn_channels, cin = 7 * 7 * 3 * 64 + 64, 64, 64
    for mid, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        out = 4 * mid
        for block in range(blocks):
            conv += cin * mid + 9 * mid * mid + mid * out
            bn_channels += mid + mid + out
            if block == 0:
                conv += cin * out
                bn_channels += out
            cin = out
    return conv + 2 * bn_channels + (2048 * 1000 + 1000)


def resnet50_caffe_macs() -> int:
    """Forward multiply-adds per image of the same net, by hand: per conv k*k*C_in*C_out times
    its output area. KaimingHe's prototxt strides the first 1x1 conv of each downsampling block
    (not the 3x3), so a stage's convs all run at its output size: 56, 28, 14, 7. The total,
    3.858e9, is the "3.8 x 10^9 FLOPs" (multiply-adds) of He et al. 2016, Table 1."""
    macs, cin = 7 * 7 * 3 * 64 * 112 * 112, 64
    for (mid, blocks), size in zip(((64, 3), (128, 4), (256, 6), (512, 3)), (56, 28, 14, 7)):
        out = 4 * mid
        for block in range(blocks):
            per_pixel = cin * mid + 9 * mid * mid + mid * out + (cin * out if block == 0 else 0)
            macs += per_pixel * size * size
            cin = out
    return macs + 2048 * 1000


def densenet40_params() -> int:
    """DenseNet L=40, k=12 of liuzhuang13's prototxt (CIFAR, 10 classes), counted by hand:
    a 3x3 conv 3->16, three dense blocks of 12 (BN+Scale, ReLU, 3x3 conv C->12, dropout,
    concat) with a transition (BN+Scale, ReLU, 1x1 conv C->C, dropout, 2x2 average pool) after
    the first two, then BN+Scale, ReLU, global average pool and a 448->10 fc with bias.
    No convolution has a bias."""
    total, c = 3 * 3 * 3 * 16, 16
    for block in range(3):
        for _ in range(12):
            total += 2 * c + 3 * 3 * c * 12
            c += 12
        if block < 2:
            total += 2 * c + c * c
    return total + 2 * c + (c * 10 + 10)


def test_hand_counts():
    assert resnet50_caffe_params() == 25_557_096 == 25_557_032 + 64
    assert densenet40_params() == 1_019_722


@needs_fixtures
def test_resnet50_loads_with_the_hand_counted_parameters():
    from workloads import load_net
    graph = load_net(RESNET50)
    assert graph.total_params == resnet50_caffe_params() == 25_557_096
    assert graph["conv1"].output_shape == (1, 112, 112, 64)
    assert graph["pool1"].output_shape == (1, 56, 56, 64)
    assert load_net(RESNET50, batch=32)["pool1"].output_shape == (32, 56, 56, 64)
    assert graph.forward_macs == resnet50_caffe_macs() == 3_857_973_248
    assert layers_strided(RESNET50) == ["conv1", "pool1", "res3a_branch1", "res3a_branch2a",
                                        "res4a_branch1", "res4a_branch2a", "res5a_branch1",
                                        "res5a_branch2a"]
    assert [layer.name for layer in graph.layers][:5] == ["data", "conv1", "bn_conv1",
                                                         "conv1_relu", "pool1"]


def layers_strided(path: Path) -> list[str]:
    spec = import_prototxt(path)
    return [name for name, layer in spec["layers"].items() if layer.get("strides", [1] * 4)[1] > 1]


@needs_fixtures
def test_densenet_converts_with_concats_and_without_accuracy():
    result = convert_prototxt(DENSENET.read_text(), source=str(DENSENET))
    layers = result.spec["layers"]
    counts = Counter(layer["type"] for layer in layers.values())
    written = caffe_type_counts(DENSENET)
    assert written["Accuracy"] == 1 and "Accuracy1" not in layers
    assert counts == {"Input": 1, "Convolution": 39, "BatchNorm": 39, "Activation": 39,
                      "Dropout": 38, "Concatenate": 36, "AvgPool": 2, "GlobalAvgPool": 1,
                      "InnerProduct": 1, "Softmax": 1}
    assert counts["Concatenate"] == written["Concat"]
    assert all(l["dim"] == 3 for l in layers.values() if l["type"] == "Concatenate")
    assert all(l["dropout_keep_prob"] == pytest.approx(0.8, abs=1e-15)
               for l in layers.values() if l["type"] == "Dropout")
    # the label bottom ("data") of SoftmaxWithLoss is dropped; the concat keeps both inputs
    assert layers["SoftmaxWithLoss1"]["parents"] == ["InnerProduct1"]
    assert layers["Concat1"]["parents"] == ["Convolution1", "Dropout1"]
    assert result.shapes["Concat36"] == (1, 8, 8, 448)
    assert result.shapes["Pooling1"] == (1, 16, 16, 160)
    assert result.shapes["InnerProduct1"] == (1, 10)


@needs_fixtures
def test_densenet_loads_with_the_hand_counted_parameters():
    from workloads import load_net
    assert load_net(DENSENET).total_params == densenet40_params() == 1_019_722


@needs_fixtures
@pytest.mark.parametrize("path", [RESNET50, DENSENET], ids=["resnet50", "densenet"])
def test_loader_shapes_agree_with_caffe_arithmetic(path):
    from workloads import load_net
    result = convert_prototxt(path.read_text(), source=str(path))
    graph = load_net(path)
    assert [layer.name for layer in graph.layers] == list(result.shapes)
    assert {layer.name: tuple(layer.output_shape) for layer in graph.layers} == result.shapes


@needs_fixtures
def test_conversion_is_deterministic_and_round_trips_through_json(tmp_path):
    out = tmp_path / "resnet50.json"
    spec = prototxt_to_json(RESNET50, out)
    assert json.loads(out.read_text()) == spec == import_prototxt(RESNET50)
    assert out.read_text() == net_to_json(import_prototxt(RESNET50))
    from workloads import load_net
    assert load_net(out).total_params == 25_557_096


# ---------------------------------------------------------------------------------------------
# tiny nets: one feature each
CONV = """
    layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}"
            convolution_param {{ num_output: {cout} kernel_size: 3 pad: 1 }} }}
"""


def test_in_place_layers_are_kept_and_renamed():
    result = convert(tiny(
        CONV.format(name="c1", bottom="data", top="x", cout=4)
        + CONV.format(name="early", bottom="x", top="e", cout=4)   # reads x before the ReLU
        + """
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
        layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
        layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
        layer { name: "drop" type: "Dropout" bottom: "x" top: "x"
                dropout_param { dropout_ratio: 0.3 } }
        """
        + CONV.format(name="late", bottom="x", top="l", cout=4)    # reads x after all of them
        + """layer { name: "sum" type: "Eltwise" bottom: "e" bottom: "l" top: "s" }"""))
    layers = result.spec["layers"]
    assert list(layers) == ["data", "c1", "early", "bn", "relu", "drop", "late", "sum"]
    assert layers["early"]["parents"] == ["c1"]
    assert layers["bn"] == {"type": "BatchNorm", "parents": ["c1"], "affine": True,
                            "epsilon": 1e-5}
    assert layers["relu"] == {"type": "Activation", "parents": ["bn"], "function": "relu"}
    assert layers["drop"]["parents"] == ["relu"]
    assert layers["drop"]["dropout_keep_prob"] == pytest.approx(0.7, abs=1e-15)
    assert layers["late"]["parents"] == ["drop"]
    assert layers["sum"]["parents"] == ["early", "late"]
    # c1 3x3x3x4 + 4 biases, early and late 3x3x4x4 + 4 each, the folded BatchNorm 2 x 4
    assert load_spec(result.spec).total_params == (108 + 4) + 2 * (144 + 4) + 8


def test_batchnorm_scale_variants():
    base = tiny(CONV.format(name="c1", bottom="data", top="x", cout=6))
    lone = convert(base + 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" '
                          'batch_norm_param { eps: 0.001 } }')
    assert lone.spec["layers"]["bn"] == {"type": "BatchNorm", "parents": ["c1"],
                                         "affine": False, "epsilon": 0.001}
    no_beta = convert(base + 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }'
                             'layer { name: "sc" type: "Scale" bottom: "x" top: "x" }')
    assert no_beta.spec["layers"]["bn"]["affine"] is True
    assert no_beta.spec["layers"]["bn"]["bias"] is False  # Caffe's Scale has no beta by default
    with pytest.raises(SpecError) as err:
        convert(base + 'layer { name: "sc" type: "Scale" bottom: "x" top: "x" }')
    assert "layer 'sc'" in str(err.value) and "Scale" in str(err.value)
    # a BatchNorm output read by another layer too cannot absorb the Scale
    with pytest.raises(SpecError, match="layer 'sc'"):
        convert(base + 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }'
                       'layer { name: "sc" type: "Scale" bottom: "y" top: "z" }'
                       'layer { name: "r" type: "ReLU" bottom: "y" top: "w" }')


@pytest.mark.parametrize("h, kernel, stride, pad, ceil_out", [
    (112, 3, 2, 0, 56),   # ResNet pool1: ceil(109/2) + 1 = 56 (floor: 55)
    (13, 3, 2, 0, 6),     # AlexNet pool5: exact either way
    (5, 2, 2, 1, 3),      # ceil(5/2) + 1 = 4, but window 4 would start in the padding: 3
    (6, 3, 2, 1, 4),      # ceil(5/2) + 1 = 4; (4-1)*2 = 6 < 6 + 1, kept
])
def test_pooling_rounds_up_like_caffe(h, kernel, stride, pad, ceil_out):
    body = f"""
        layer {{ name: "p" type: "Pooling" bottom: "data" top: "p"
                pooling_param {{ pool: MAX kernel_size: {kernel} stride: {stride} pad: {pad} }} }}
    """
    ceil = convert(tiny(body, h=h, w=h))
    assert ceil.spec["layers"]["p"]["ceil_mode"] is True
    assert ceil.shapes["p"] == (2, ceil_out, ceil_out, 3)
    assert load_spec(ceil.spec)["p"].output_shape == (2, ceil_out, ceil_out, 3)
    floor = convert(tiny(body.replace("pool: MAX", "pool: MAX round_mode: FLOOR"), h=h, w=h))
    floor_out = (h + 2 * pad - kernel) // stride + 1
    assert "ceil_mode" not in floor.spec["layers"]["p"]
    assert floor.shapes["p"] == (2, floor_out, floor_out, 3)
    assert load_spec(floor.spec)["p"].output_shape == (2, floor_out, floor_out, 3)


@pytest.mark.parametrize("pool", ["AVE", "1"])
def test_average_pooling_is_detected(pool):
    result = convert(tiny(f"""
        layer {{ name: "p" type: "Pooling" bottom: "data" top: "p"
                pooling_param {{ pool: {pool} kernel_h: 2 kernel_w: 4 stride_h: 2 stride_w: 4 }} }}
    """))
    assert result.spec["layers"]["p"] == {
        "type": "AvgPool", "parents": ["data"], "ksize": [1, 2, 4, 1], "strides": [1, 2, 4, 1],
        "padding": [0, 0], "ceil_mode": True}
    assert result.shapes["p"] == (2, 4, 2, 3)


def test_global_pooling():
    body = """
        layer {{ name: "g" type: "Pooling" bottom: "data" top: "g"
                pooling_param {{ pool: {pool} global_pooling: true }} }}
    """
    ave = convert(tiny(body.format(pool="AVE"), h=6, w=5))
    assert ave.spec["layers"]["g"] == {"type": "GlobalAvgPool", "parents": ["data"]}
    mx = convert(tiny(body.format(pool="MAX"), h=6, w=5))
    assert mx.spec["layers"]["g"]["type"] == "Pooling"
    assert mx.spec["layers"]["g"]["ksize"] == [1, 6, 5, 1]
    for result in (ave, mx):
        assert result.shapes["g"] == load_spec(result.spec)["g"].output_shape == (2, 1, 1, 3)


def test_group_dilation_and_bias_term():
    result = convert(tiny("""
        layer { name: "c1" type: "Convolution" bottom: "data" top: "a"
                convolution_param { num_output: 6 kernel_size: 1 } }
        layer { name: "g" type: "Convolution" bottom: "a" top: "b"
                convolution_param { num_output: 4 kernel_size: 3 group: 2 pad: 2 dilation: 2
                                    bias_term: false stride: 1 stride: 2 } }
        layer { name: "fc" type: "InnerProduct" bottom: "b" top: "f"
                inner_product_param { num_output: 5 bias_term: false } }
    """, h=8, w=8))
    g = result.spec["layers"]["g"]
    assert g == {"type": "Convolution", "parents": ["c1"], "filter": [3, 3, 6, 4],
                 "strides": [1, 1, 2, 1], "padding": [2, 2], "groups": 2,
                 "dilations": [1, 2, 2, 1], "bias": False}
    # effective kernel 2*(3-1)+1 = 5: floor((8 + 4 - 5)/1) + 1 = 8 rows, floor(7/2) + 1 = 4 cols
    assert result.shapes["g"] == (2, 8, 4, 4)
    assert result.spec["layers"]["fc"] == {"type": "InnerProduct", "parents": ["g"],
                                           "num_outputs": 5, "bias": False}
    graph = load_spec(result.spec)
    assert graph["g"].output_shape == (2, 8, 4, 4)
    # each group sees 6/2 = 3 input channels: 3*3*3*4 weights, no bias
    assert graph["g"].params == 3 * 3 * 3 * 4
    assert graph.total_params == (3 * 6 + 6) + 3 * 3 * 3 * 4 + 8 * 4 * 4 * 5
    with pytest.raises(SpecError, match=r"layer 'g'.*group"):
        convert(tiny("""
            layer { name: "g" type: "Convolution" bottom: "data" top: "b"
                    convolution_param { num_output: 4 kernel_size: 3 group: 2 } }"""))


def test_unknown_layer_type_names_file_layer_and_type(tmp_path):
    path = tmp_path / "odd.prototxt"
    path.write_text(tiny('layer { name: "weird" type: "Crop" bottom: "data" top: "c" }\n'))
    with pytest.raises(UnknownNameError) as err:
        import_prototxt(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "layer 'weird'" in message and "'Crop'" in message
    assert "Convolution" in message  # the valid types are listed
    assert err.value.valid == sorted(SUPPORTED_TYPES)


def test_layers_the_format_cannot_describe_are_errors():
    cases = {
        "Eltwise MAX": 'layer { name: "m" type: "Eltwise" bottom: "data" bottom: "data" '
                       'top: "m" eltwise_param { operation: MAX } }',
        "leaky ReLU": 'layer { name: "m" type: "ReLU" bottom: "data" top: "m" '
                      'relu_param { negative_slope: 0.1 } }',
        "STOCHASTIC": 'layer { name: "m" type: "Pooling" bottom: "data" top: "m" '
                      'pooling_param { pool: STOCHASTIC kernel_size: 2 } }',
    }
    for body in cases.values():
        with pytest.raises(SpecError, match="layer 'm'"):
            convert(tiny(body))
    with pytest.raises(SpecError, match=r"convolution_param\.num_output"):
        convert(tiny('layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
                     'convolution_param { num_output: "many" kernel_size: 3 } }'))
    with pytest.raises(SpecError, match="bottom blob is produced by no earlier layer"):
        convert(tiny('layer { name: "r" type: "ReLU" bottom: "nowhere" top: "r" }'))


def test_elementwise_concat_and_activations():
    result = convert(tiny("""
        layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }
        layer { name: "t" type: "TanH" bottom: "data" top: "t" }
        layer { name: "prod" type: "Eltwise" bottom: "s" bottom: "t" top: "p"
                eltwise_param { operation: PROD } }
        layer { name: "rows" type: "Concat" bottom: "p" bottom: "s" top: "r"
                concat_param { axis: 2 } }
        layer { name: "lrn" type: "LRN" bottom: "r" top: "n" lrn_param { local_size: 3 } }
    """, h=4, w=5))
    layers = result.spec["layers"]
    assert layers["s"]["function"] == "sigmoid" and layers["t"]["function"] == "tanh"
    assert layers["prod"] == {"type": "Elementwise", "parents": ["s", "t"], "operation": "prod"}
    assert layers["rows"]["dim"] == 1  # Caffe's axis 2 (H in NCHW) is axis 1 in NHWC
    assert layers["lrn"] == {"type": "LRN", "parents": ["rows"], "size": 3, "alpha": 1.0,
                             "beta": 0.75, "k": 1.0}
    assert result.shapes["rows"] == load_spec(result.spec)["rows"].output_shape == (2, 8, 5, 3)


def test_phases_and_skipped_layers():
    result = convert(tiny("""
        layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
                inner_product_param { num_output: 10 } }
        layer { name: "test_only" type: "ReLU" bottom: "fc" top: "t" include { phase: TEST } }
        layer { name: "train_only" type: "ReLU" bottom: "fc" top: "u" include { phase: TRAIN } }
        layer { name: "not_train" type: "ReLU" bottom: "fc" top: "v" exclude { phase: 0 } }
        layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "u" bottom: "label" top: "loss" }
    """))
    assert list(result.spec["layers"]) == ["data", "fc", "train_only", "loss"]
    assert result.spec["layers"]["loss"] == {"type": "Softmax", "parents": ["train_only"]}


def test_input_forms():
    shape_form = convert("""
        input: "img"
        input_shape { dim: 4 dim: 1 dim: 28 dim: 28 }
        layer { name: "fc" type: "InnerProduct" bottom: "img" top: "fc"
                inner_product_param { num_output: 10 } }
    """)
    assert shape_form.spec["layers"]["data"] == {"type": "Input", "parents": [],
                                                 "tensor": [4, 28, 28, 1]}
    assert shape_form.spec["layers"]["fc"]["parents"] == ["data"]
    layer_form = convert("""
        layer { name: "input" type: "Input" top: "x" top: "label"
                input_param { shape { dim: 8 dim: 3 dim: 16 dim: 16 } shape { dim: 8 dim: 1 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
                inner_product_param { num_output: 2 } }
    """)
    assert list(layer_form.spec["layers"]) == ["data", "fc"]  # the unused label input is dropped
    assert layer_form.shapes["data"] == (8, 16, 16, 3)
    data_layer = """
        layer { name: "src" type: "Data" top: "d" top: "label" data_param { batch_size: 64 } }
        layer { name: "c" type: "Convolution" bottom: "d" top: "c"
                convolution_param { num_output: 8 kernel_size: 3 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "c" bottom: "label" top: "l" }
    """
    with pytest.raises(SpecError, match=r"layer 'src' \(Data\) gives no input shape"):
        convert(data_layer)
    given_shape = convert(data_layer, input_shape=(64, 3, 32, 32))
    assert given_shape.spec["layers"]["data"]["tensor"] == [64, 32, 32, 3]
    assert given_shape.shapes["c"] == (64, 30, 30, 8)
    overridden = convert(tiny(CONV.format(name="c", bottom="data", top="c", cout=2)),
                         input_shape=(1, 3, 10, 12))
    assert overridden.shapes["c"] == (1, 10, 12, 2)
    with pytest.raises(SpecError, match="label top"):
        convert(data_layer.replace('bottom: "c" bottom: "label"', 'bottom: "label"')
                .replace("SoftmaxWithLoss", "ReLU"), input_shape=(64, 3, 32, 32))


def test_v1_layers_and_split():
    result = convert(tiny("""
        layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
                 convolution_param { num_output: 4 kernel_size: 3 } }
        layers { name: "split" type: SPLIT bottom: "conv" top: "a" top: "b" }
        layers { name: "ra" type: RELU bottom: "a" top: "a" }
        layers { name: "cat" type: CONCAT bottom: "a" bottom: "b" top: "cat" }
        layers { name: "loss" type: SOFTMAX_LOSS bottom: "cat" bottom: "label" top: "loss" }
    """))
    layers = result.spec["layers"]
    assert list(layers) == ["data", "conv", "ra", "cat", "loss"]
    assert layers["cat"]["parents"] == ["ra", "conv"]
    assert result.shapes["cat"] == (2, 6, 6, 8)


def test_deconvolution_and_flatten():
    result = convert(tiny("""
        layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
                convolution_param { num_output: 5 kernel_size: 4 stride: 2 pad: 1 } }
        layer { name: "flat" type: "Flatten" bottom: "up" top: "flat" }
    """))
    assert result.spec["layers"]["up"]["filter"] == [4, 4, 5, 3]
    assert result.shapes["up"] == (2, 16, 16, 5)  # 2*(8-1) + 4 - 2*1
    assert result.shapes["flat"] == (2, 16 * 16 * 5)
    graph = load_spec(result.spec)
    assert graph["up"].output_shape == (2, 16, 16, 5) and graph["flat"].output_shape == (2, 1280)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), kh=st.integers(1, 7), kw=st.integers(1, 7),
       sh=st.integers(1, 4), sw=st.integers(1, 4), ph=st.integers(0, 3), pw=st.integers(0, 3),
       pool=st.booleans())
def test_shapes_agree_with_the_loader(h, w, kh, kw, sh, sw, ph, pw, pool):
    """Two independent implementations of the output-size arithmetic agree. Pools have pad <
    kernel (Caffe's rule), and pads both zero or both non-zero: Caffe drops a last window that
    starts in the padding on both axes whenever either axis is padded, the net format per axis."""
    if pool:
        ph, pw = min(ph, kh - 1), min(pw, kw - 1)
        if (ph == 0) != (pw == 0):
            ph = pw = 0
        body = (f'layer {{ name: "x" type: "Pooling" bottom: "data" top: "x" pooling_param {{ '
                f'kernel_h: {kh} kernel_w: {kw} stride_h: {sh} stride_w: {sw} '
                f'pad_h: {ph} pad_w: {pw} }} }}')
    else:
        body = (f'layer {{ name: "x" type: "Convolution" bottom: "data" top: "x" '
                f'convolution_param {{ num_output: 2 kernel_size: {kh} kernel_size: {kw} '
                f'stride: {sh} stride: {sw} pad: {ph} pad: {pw} }} }}')
    try:
        result = convert(tiny(body, h=h, w=w))
    except SpecError as exc:  # only a window that does not fit may be rejected
        assert "does not fit" in str(exc)
        assert h + 2 * ph < kh or w + 2 * pw < kw
        return
    assert load_spec(result.spec)["x"].output_shape == result.shapes["x"]


# ---------------------------------------------------------------------------------------------
# the CLI
def parser():
    from simulator.commands import convert as command
    p = argparse.ArgumentParser(prog="paleosim")
    command.register(p.add_subparsers())
    return p


def test_cli_writes_or_prints_the_json(tmp_path, capsys):
    source = tmp_path / "tiny.prototxt"
    source.write_text(tiny(CONV.format(name="c", bottom="data", top="c", cout=2)))
    out = tmp_path / "out" / "tiny.json"
    args = parser().parse_args(["convert", str(source), "--out", str(out),
                                "--input-shape", "4,3,9,9"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == ""
    written = json.loads(out.read_text())
    assert written == import_prototxt(source, input_shape=(4, 3, 9, 9))
    assert written["layers"]["data"]["tensor"] == [4, 9, 9, 3]
    args = parser().parse_args(["convert", str(source)])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out) == import_prototxt(source)
    with pytest.raises(SystemExit):
        parser().parse_args(["convert", str(source), "--input-shape", "4,3,x,9"])


def test_cli_error_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    from simulator import cli
    if "simulator.commands.convert" not in cli.COMMAND_MODULES:  # until the CLI lists it
        monkeypatch.setattr(cli, "COMMAND_MODULES",
                            (*cli.COMMAND_MODULES, "simulator.commands.convert"))
    source = tmp_path / "bad.prototxt"
    source.write_text("layer {\n  name: 'x'\n")
    assert cli.main(["convert", str(source)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(source) in err and "line 3" in err
    assert err.startswith("paleosim: error: ")
    good = tmp_path / "good.prototxt"
    good.write_text(tiny(CONV.format(name="c", bottom="data", top="c", cout=2)))
    assert cli.main(["convert", str(good), "--out", str(tmp_path / "good.json")]) == 0
    assert json.loads((tmp_path / "good.json").read_text()) == import_prototxt(good)
