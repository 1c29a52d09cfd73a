"""ONNX import: small models built here with ``onnx.helper``, imported, and checked against
hand-computed shapes, parameter counts and multiply-adds, and against ``onnx.shape_inference``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed "
                                          "(pip install paleosim[onnx])")
from hypothesis import given, settings, strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simulator import cli  # noqa: E402
from simulator.errors import SpecError, UnknownNameError  # noqa: E402
from workloads import build_graph, load_net  # noqa: E402
from workloads.onnx import SUPPORTED_OPS, import_onnx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def weight(name: str, *shape: int, value: float = 0.0):
    return numpy_helper.from_array(np.full(shape, value, np.float32), name)


def ints(name: str, *values: int):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def tensor(name: str, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def unknown(name: str, rank: int, elem_type=TensorProto.FLOAT):
    """A graph output of known rank and unknown sizes (ONNX's checker wants a shape)."""
    return helper.make_tensor_value_info(name, elem_type, [None] * rank)


def make_model(nodes, inputs, outputs, inits=(), *, opset=17, value_info=(), name="g"):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits),
                              value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)  # every model here is valid ONNX
    return model


def save(model, tmp_path: Path, name: str = "model.onnx") -> Path:
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def onnx_inferred(model) -> dict[str, list]:
    """ONNX's own shape inference: tensor name -> dims (ints, or a symbol's name)."""
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    out = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
    return out


def nhwc(dims):
    return [dims[0], dims[2], dims[3], dims[1]] if len(dims) == 4 else list(dims)


# ---------------------------------------------------------------------------------------------
# a conv-bn-relu-pool CNN with a residual Add, a Concat, ceil-mode average pooling and a Gemm
def cnn_model(*, value_info=(), output_shape=("N", 10)):
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s1", "t1", "m1", "v1"], ["n1"],
                         name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "p1"], ["res"], name="residual"),
        helper.make_node("Conv", ["res", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Concat", ["res", "c3"], ["cat"], name="concat", axis=1),
        helper.make_node("AveragePool", ["cat"], ["ap"], name="avgpool", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Dropout", ["flat", "ratio"], ["drop"], name="dropout"),
        helper.make_node("Gemm", ["drop", "wf", "bf"], ["fc"], name="fc", transB=1),
        helper.make_node("Softmax", ["fc"], ["prob"], name="softmax"),
    ]
    inits = [weight("w1", 16, 3, 3, 3), weight("b1", 16), weight("s1", 16), weight("t1", 16),
             weight("m1", 16), weight("v1", 16, value=1.0), weight("w2", 16, 16, 3, 3),
             weight("w3", 8, 16, 1, 1), weight("b3", 8), weight("wf", 10, 24), weight("bf", 10),
             numpy_helper.from_array(np.array(0.25, np.float32), "ratio")]
    return make_model(nodes, [tensor("x", ["N", 3, 32, 32])],
                      [tensor("prob", list(output_shape))], inits, value_info=value_info,
                      name="cnn")


# layer -> (output shape NHWC at batch 4, parameters, forward multiply-adds per sample)
CNN_EXPECTED = {
    "x": ((4, 32, 32, 3), 0, 0),
    "conv1": ((4, 32, 32, 16), 3 * 3 * 3 * 16 + 16, 32 * 32 * 16 * 3 * 3 * 3),
    "bn1": ((4, 32, 32, 16), 2 * 16, 0),
    "relu1": ((4, 32, 32, 16), 0, 0),
    "pool1": ((4, 16, 16, 16), 0, 0),
    "conv2": ((4, 16, 16, 16), 3 * 3 * 16 * 16, 16 * 16 * 16 * 3 * 3 * 16),
    "relu2": ((4, 16, 16, 16), 0, 0),
    "residual": ((4, 16, 16, 16), 0, 0),
    "conv3": ((4, 16, 16, 8), 16 * 8 + 8, 16 * 16 * 8 * 16),
    "concat": ((4, 16, 16, 24), 0, 0),
    "avgpool": ((4, 9, 9, 24), 0, 0),  # ceil((16 + 2 - 3) / 2) + 1 = 9; floor mode gives 8
    "gap": ((4, 1, 1, 24), 0, 0),
    "flatten": ((4, 24), 0, 0),
    "dropout": ((4, 24), 0, 0),
    "fc": ((4, 10), 24 * 10 + 10, 24 * 10),
    "softmax": ((4, 10), 0, 0),
}


def test_cnn_shapes_parameters_and_macs(tmp_path):
    path = save(cnn_model(), tmp_path, "cnn.onnx")
    spec = import_onnx(path)
    assert spec["name"] == "cnn"
    assert list(spec["layers"]) == list(CNN_EXPECTED)
    graph = build_graph(spec, batch=4)
    for layer in graph:
        shape, params, macs = CNN_EXPECTED[layer.name]
        assert (layer.output_shape, layer.params, layer.macs) == (shape, params, 4 * macs), \
            layer.name
    assert graph.total_params == 3170  # 448 + 32 + 2304 + 136 + 250
    assert graph.forward_macs == 4 * 1_065_200
    layers = spec["layers"]
    assert layers["x"] == {"type": "Input", "parents": [], "tensor": [1, 32, 32, 3]}
    assert layers["conv1"] == {"type": "Convolution", "parents": ["x"], "filter": [3, 3, 3, 16],
                               "strides": [1, 1, 1, 1], "padding": [1, 1]}
    assert layers["conv2"]["bias"] is False and "bias" not in layers["conv3"]
    assert layers["bn1"] == {"type": "BatchNorm", "parents": ["conv1"], "epsilon": 1e-3}
    assert layers["residual"] == {"type": "Elementwise", "parents": ["relu2", "pool1"],
                                  "operation": "sum"}
    assert layers["concat"]["dim"] == 3  # ONNX's channel axis 1 is NHWC axis 3
    assert layers["avgpool"]["ceil_mode"] is True and layers["avgpool"]["padding"] == [1, 1]
    assert layers["pool1"].get("ceil_mode") is None
    assert layers["dropout"]["dropout_keep_prob"] == 0.75
    assert layers["fc"] == {"type": "InnerProduct", "parents": ["dropout"], "num_outputs": 10}
    assert graph["relu1"].attrs["function"] == "relu"
    assert graph["conv1"].attrs["pad_hw"] == (1, 1)


def test_cnn_agrees_with_onnx_shape_inference(tmp_path):
    model = cnn_model()
    inferred = onnx_inferred(model)
    graph = load_net(save(model, tmp_path), batch=4)
    outputs = {node.name: node.output[0] for node in model.graph.node}
    checked = 0
    for name, out in outputs.items():
        dims = inferred[out]
        assert dims[0] == "N"
        assert list(graph[name].output_shape) == nhwc([4, *dims[1:]]), name
        checked += 1
    assert checked == len(CNN_EXPECTED) - 1


def test_batch_symbolic_fixed_and_requested(tmp_path):
    path = save(cnn_model(), tmp_path)
    assert load_net(path).batch == 1  # a symbolic batch defaults to 1
    assert import_onnx(path, batch=8)["layers"]["x"]["tensor"] == [8, 32, 32, 3]
    graph = load_net(path, batch=8)
    assert graph.batch == 8 and graph.forward_macs == 8 * 1_065_200
    fixed = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                       [tensor("x", [2, 5])], [tensor("y", [2, 5])])
    fixed_path = save(fixed, tmp_path, "fixed.onnx")
    assert import_onnx(fixed_path)["layers"]["x"]["tensor"] == [2, 5]
    assert import_onnx(fixed_path, batch=6)["layers"]["x"]["tensor"] == [6, 5]
    assert load_net(fixed_path).batch == 2
    assert load_net(fixed_path, batch=6)["r"].output_shape == (6, 5)
    with pytest.raises(SpecError, match="batch"):
        import_onnx(fixed_path, batch=0)


def test_import_is_deterministic_and_round_trips_through_json(tmp_path):
    path = save(cnn_model(), tmp_path)
    spec = import_onnx(path, batch=2)
    assert import_onnx(path, batch=2) == spec
    assert import_onnx(onnx.load(str(path)), batch=2)["layers"] == spec["layers"]
    again = build_graph(json.loads(json.dumps(spec)))
    assert [(l.name, l.output_shape, l.params) for l in again] == \
        [(l.name, l.output_shape, l.params) for l in build_graph(spec)]


# ---------------------------------------------------------------------------------------------
# convolutions: groups, dilations, auto_pad, asymmetric pads
def test_grouped_depthwise_dilated_and_same_padded_convolutions(tmp_path):
    nodes = [
        helper.make_node("Conv", ["x", "wg", "bg"], ["g"], name="grouped", group=4,
                         strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Conv", ["g", "wd"], ["d"], name="depthwise", group=12,
                         dilations=[2, 2], pads=[2, 2, 2, 2]),
        # pads only at the end, exactly TensorFlow's SAME for a 10x10 input, k 3, stride 2
        helper.make_node("Conv", ["x", "wa"], ["a"], name="asym", strides=[2, 2],
                         pads=[0, 0, 1, 1]),
    ]
    inits = [weight("wg", 12, 2, 3, 3), weight("bg", 12), weight("wd", 12, 1, 3, 3),
             weight("wa", 4, 8, 3, 3)]
    model = make_model(nodes, [tensor("x", [2, 8, 10, 10])],
                       [tensor("d", [2, 12, 5, 5]), tensor("a", [2, 4, 5, 5])], inits)
    spec = import_onnx(save(model, tmp_path))
    layers = spec["layers"]
    assert layers["grouped"] == {"type": "Convolution", "parents": ["x"],
                                 "filter": [3, 3, 8, 12], "strides": [1, 2, 2, 1],
                                 "padding": "SAME", "groups": 4}
    assert layers["depthwise"] == {"type": "Convolution", "parents": ["grouped"],
                                   "filter": [3, 3, 12, 12], "strides": [1, 1, 1, 1],
                                   "padding": [2, 2], "groups": 12, "dilations": [1, 2, 2, 1],
                                   "bias": False}
    assert layers["asym"]["padding"] == "SAME"
    graph = build_graph(spec)
    g, d, a = graph["grouped"], graph["depthwise"], graph["asym"]
    assert (g.output_shape, g.params, g.macs) == ((2, 5, 5, 12), 12 * 2 * 9 + 12,
                                                   2 * 5 * 5 * 12 * 2 * 9)
    assert (d.output_shape, d.params, d.macs) == ((2, 5, 5, 12), 12 * 9, 2 * 5 * 5 * 12 * 9)
    assert (a.output_shape, a.params, a.macs) == ((2, 5, 5, 4), 4 * 8 * 9, 2 * 5 * 5 * 4 * 72)
    assert d.attrs["dilation_hw"] == (2, 2) and d.attrs["groups"] == 12
    assert a.attrs["pad_hw"] == (0, 0)


def test_asymmetric_pads_that_are_not_same_are_an_error(tmp_path):
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="lopsided",
                                         pads=[1, 1, 0, 0])],
                       [tensor("x", [1, 3, 8, 8])], [unknown("y", 4)], [weight("w", 4, 3, 3, 3)])
    path = save(model, tmp_path)
    with pytest.raises(SpecError) as info:
        import_onnx(path)
    text = str(info.value)
    assert str(path) in text and "'lopsided' (Conv)" in text and "pads" in text
    assert "[1, 1, 0, 0]" in text


def pool_or_conv_model(op, h, k, s, p, ceil, d, opset):
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p, p, p, p]}
    inits = []
    inputs = ["x"]
    if op == "Conv":
        attrs["dilations"] = [d, d]
        inits = [weight("w", 2, 3, k, k)]
        inputs.append("w")
    else:
        attrs["ceil_mode"] = ceil
    node = helper.make_node(op, inputs, ["y"], name="op", **attrs)
    return make_model([node], [tensor("x", ["N", 3, h, h])], [unknown("y", 4)], inits,
                      opset=opset)


@settings(max_examples=80, deadline=None)
@given(op=st.sampled_from(["MaxPool", "AveragePool", "Conv"]), h=st.integers(1, 12),
       k=st.integers(1, 5), s=st.integers(1, 4), p=st.integers(0, 2), ceil=st.integers(0, 1),
       d=st.integers(1, 2))
def test_windows_agree_with_onnx_shape_inference_at_opset_22(op, h, k, s, p, ceil, d):
    """Opset 22's inference drops a ceil-mode window that starts in the right padding, as the
    operator text says and as the net format does."""
    if p >= k or (k - 1) * d + 1 > h + 2 * p:
        return  # ONNX needs pads below the kernel and a window that fits
    model = pool_or_conv_model(op, h, k, s, p, ceil, d, 22)
    dims = onnx_inferred(model)["y"]
    graph = build_graph(import_onnx(model, batch=2))
    assert list(graph["op"].output_shape) == nhwc([2, *dims[1:]])


@pytest.mark.parametrize("h,k,s,p,expected", [
    (5, 2, 2, 1, 3),  # ceil((5+2-2)/2)+1 = 4; the 4th window starts at 6 = 5 + 1: dropped
    (5, 1, 3, 0, 2),  # ceil(4/3)+1 = 3; the 3rd starts at 6, past the input: dropped
    (6, 3, 2, 1, 4),  # ceil(5/2)+1 = 4; the last starts at 6 < 7: kept
])
@pytest.mark.parametrize("opset", [17, 22])
def test_ceil_mode_follows_the_operator_text_at_every_opset(h, k, s, p, expected, opset):
    """Before opset 22 ONNX's inference keeps the window that starts in the padding (4 for the
    first case); the operator text drops it, and so do the importer and the loader."""
    model = pool_or_conv_model("MaxPool", h, k, s, p, 1, 1, opset)
    graph = build_graph(import_onnx(model))
    assert graph["op"].output_shape == (1, expected, expected, 3)


# ---------------------------------------------------------------------------------------------
# matrix products
def test_matmul_mlp_fuses_biases_into_inner_products(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
        helper.make_node("Add", ["h1", "b1"], ["h1b"], name="fc1_bias"),
        helper.make_node("Relu", ["h1b"], ["a1"], name="relu"),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="fc2"),
        helper.make_node("Add", ["b2", "h2"], ["h2b"], name="fc2_bias"),  # bias first
        helper.make_node("Softmax", ["h2b"], ["y"], name="softmax"),
    ]
    inits = [weight("w1", 784, 128), weight("b1", 128), weight("w2", 128, 10), weight("b2", 10)]
    model = make_model(nodes, [tensor("x", ["batch", 784])], [tensor("y", ["batch", 10])], inits)
    spec = import_onnx(save(model, tmp_path), batch=8)
    assert spec["layers"]["fc1"] == {"type": "InnerProduct", "parents": ["x"],
                                     "num_outputs": 128}
    assert spec["layers"]["relu"]["parents"] == ["fc1"]
    assert spec["layers"]["softmax"]["parents"] == ["fc2"]
    graph = build_graph(spec)
    assert [l.name for l in graph] == ["x", "fc1", "relu", "fc2", "softmax"]
    assert graph["fc1"].params == 784 * 128 + 128 and graph["fc2"].params == 128 * 10 + 10
    assert graph.total_params == 101_770
    assert graph.forward_macs == 8 * (784 * 128 + 128 * 10)
    assert graph["softmax"].output_shape == (8, 10)


def test_a_bias_add_on_a_shared_product_is_an_error(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
             helper.make_node("Add", ["h", "b"], ["hb"], name="add_bias"),
             helper.make_node("Relu", ["h"], ["r"], name="side")]
    model = make_model(nodes, [tensor("x", ["N", 4])], [unknown("hb", 2), unknown("r", 2)],
                       [weight("w", 4, 3), weight("b", 3)])
    with pytest.raises(SpecError, match="'add_bias' \\(Add\\).*bias of a MatMul"):
        import_onnx(save(model, tmp_path))


def test_products_of_activations_and_rank3_weights(tmp_path):
    nodes = [helper.make_node("MatMul", ["a", "b"], ["ab"], name="scores"),
             helper.make_node("MatMul", ["ab", "w"], ["proj"], name="proj"),
             helper.make_node("Softmax", ["proj"], ["y"], name="softmax", axis=-1),
             helper.make_node("Gemm", ["p", "q"], ["pq"], name="gram", transB=1)]
    model = make_model(nodes, [tensor("a", ["N", 6, 8]), tensor("b", ["N", 8, 5]),
                               tensor("p", ["N", 4]), tensor("q", ["N", 4])],
                       [tensor("y", ["N", 6, 7]), tensor("pq", ["N", "N"])], [weight("w", 5, 7)])
    spec = import_onnx(save(model, tmp_path), batch=3)
    assert spec["layers"]["scores"] == {"type": "MatMul", "parents": ["a", "b"]}
    assert spec["layers"]["gram"] == {"type": "MatMul", "parents": ["p", "q"],
                                      "transpose_b": True}
    graph = build_graph(spec)
    assert (graph["scores"].output_shape, graph["scores"].macs) == ((3, 6, 5), 3 * 6 * 8 * 5)
    assert (graph["proj"].output_shape, graph["proj"].params, graph["proj"].macs) == \
        ((3, 6, 7), 35, 3 * 6 * 5 * 7)
    assert graph["softmax"].output_shape == (3, 6, 7)
    assert (graph["gram"].output_shape, graph["gram"].macs) == ((3, 3), 3 * 4 * 3)


# ---------------------------------------------------------------------------------------------
# reshapes, flatten, squeeze and the folded shape computation
def test_flatten_reshape_squeeze_and_a_computed_target(tmp_path):
    nodes = [  # PyTorch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n"], name="batch_size", axis=0),
        helper.make_node("Unsqueeze", ["n", "axis0"], ["n1"], name="n_1d"),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="view"),
        helper.make_node("Reshape", ["flat", "to3"], ["r3"], name="to_rank3"),
        helper.make_node("Reshape", ["r3", "to4"], ["r4"], name="to_rank4"),
        helper.make_node("Flatten", ["r4"], ["f"], name="flatten"),
        helper.make_node("Unsqueeze", ["f", "axes23"], ["u"], name="unsqueeze"),
        helper.make_node("Squeeze", ["u", "axes23"], ["sq"], name="squeeze"),
    ]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"), ints("axis0", 0),
             ints("minus_one", -1), ints("to3", 0, 9, 16), ints("to4", 0, 16, 3, 3),
             ints("axes23", 2, 3)]
    model = make_model(nodes, [tensor("x", ["N", 4, 6, 6])], [tensor("sq", ["N", 144])], inits,
                       opset=13)
    spec = import_onnx(save(model, tmp_path), batch=3)
    layers = spec["layers"]
    assert list(layers) == ["x", "view", "to_rank3", "to_rank4", "flatten", "unsqueeze",
                            "squeeze"]
    assert layers["view"] == {"type": "Flatten", "parents": ["x"]}
    assert layers["to_rank3"] == {"type": "Reshape", "parents": ["view"],
                                  "output_shape": [3, 9, 16]}
    assert layers["to_rank4"]["output_shape"] == [3, 3, 3, 16]  # ONNX [N, 16, 3, 3] as NHWC
    assert layers["unsqueeze"]["output_shape"] == [3, 1, 1, 144]
    graph = build_graph(spec)
    assert [graph[n].output_shape for n in layers] == [
        (3, 6, 6, 4), (3, 144), (3, 9, 16), (3, 3, 3, 16), (3, 144), (3, 1, 1, 144), (3, 144)]
    assert graph.total_params == 0 and graph.forward_macs == 0
    assert load_net(save(model, tmp_path, "again.onnx"), batch=5)["to_rank4"].output_shape == \
        (5, 3, 3, 16)


def test_a_reshape_across_the_batch_is_an_error(tmp_path):
    model = make_model([helper.make_node("Reshape", ["x", "t"], ["y"], name="fold_batch")],
                       [tensor("x", ["N", 4, 6, 6])], [unknown("y", 2)], [ints("t", -1, 72)])
    with pytest.raises(SpecError, match="'fold_batch' \\(Reshape\\).*changes the batch"):
        import_onnx(save(model, tmp_path), batch=3)
    flat0 = make_model([helper.make_node("Flatten", ["x"], ["y"], name="flat0", axis=0)],
                       [tensor("x", ["N", 4, 6, 6])], [unknown("y", 2)])
    with pytest.raises(SpecError, match="'flat0' \\(Flatten\\).*folds the batch"):
        import_onnx(flat0)  # at batch 1 too, where [1, 144] would look per-sample


# ---------------------------------------------------------------------------------------------
# activations, normalisation, global pooling
def test_activations_clip_gelu_and_elementwise_ops(tmp_path):
    nodes = [helper.make_node("Clip", ["x", "zero", "six"], ["c"], name="relu6"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
             helper.make_node("Mul", ["c", "s"], ["m"], name="silu"),
             helper.make_node("Tanh", ["m"], ["t"], name="tanh"),
             helper.make_node("Gelu", ["t"], ["g"], name="gelu", approximate="tanh"),
             helper.make_node("Sum", ["g", "t", "m"], ["y"], name="sum3"),
             helper.make_node("Identity", ["y"], ["z"], name="same")]
    inits = [weight("zero"), weight("six", value=6.0)]
    model = make_model(nodes, [tensor("x", ["N", 16])], [tensor("z", ["N", 16])], inits,
                       opset=20)
    layers = import_onnx(save(model, tmp_path))["layers"]
    assert {n: layers[n].get("function") for n in ("relu6", "sigmoid", "tanh", "gelu")} == \
        {"relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "gelu"}
    assert layers["silu"] == {"type": "Elementwise", "parents": ["relu6", "sigmoid"],
                              "operation": "prod"}
    assert layers["sum3"]["parents"] == ["gelu", "tanh", "silu"]
    assert "same" not in layers  # Identity is no layer
    assert build_graph(layers and {"name": "a", "layers": layers})["sum3"].output_shape == (1, 16)
    bad = make_model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clamp")],
                     [tensor("x", ["N", 4])], [unknown("y", 2)],
                     [weight("lo", value=-1.0), weight("hi", value=1.0)], opset=13)
    with pytest.raises(SpecError, match="'clamp' \\(Clip\\).*ReLU6"):
        import_onnx(save(bad, tmp_path, "bad.onnx"))


def test_batchnorm1d_and_global_max_pooling(tmp_path):
    nodes = [helper.make_node("GlobalMaxPool", ["x"], ["g"], name="gmp"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("BatchNormalization", ["f", "s", "b", "m", "v"], ["y"], name="bn")]
    inits = [weight("s", 6), weight("b", 6), weight("m", 6), weight("v", 6, value=1.0)]
    model = make_model(nodes, [tensor("x", [2, 6, 7, 5])], [tensor("y", [2, 6])], inits)
    spec = import_onnx(save(model, tmp_path))
    assert spec["layers"]["gmp"] == {"type": "Pooling", "parents": ["x"], "ksize": [1, 7, 5, 1],
                                     "strides": [1, 1, 1, 1], "padding": [0, 0]}
    graph = build_graph(spec)
    assert graph["gmp"].output_shape == (2, 1, 1, 6)
    assert (graph["bn"].output_shape, graph["bn"].params) == ((2, 6), 12)


# ---------------------------------------------------------------------------------------------
# errors
def test_unsupported_operator_names_the_file_node_and_type(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("LeakyRelu", ["c"], ["y"], name="act7", alpha=0.1)]
    model = make_model(nodes, [tensor("x", [1, 3, 8, 8])], [unknown("y", 4)],
                       [weight("w", 4, 3, 3, 3)])
    path = save(model, tmp_path)
    with pytest.raises(UnknownNameError) as info:
        import_onnx(path)
    text = str(info.value)
    assert str(path) in text and "'act7'" in text and "'LeakyRelu'" in text
    assert info.value.valid == sorted(SUPPORTED_OPS) and "Conv" in text
    with pytest.raises(UnknownNameError):
        load_net(path)


def test_fold_only_operators_on_activations_and_broadcasting_are_errors(tmp_path):
    sub = make_model([helper.make_node("Sub", ["x", "x"], ["y"], name="minus")],
                     [tensor("x", ["N", 4])], [unknown("y", 2)])
    with pytest.raises(SpecError, match="'minus' \\(Sub\\).*only on constants"):
        import_onnx(save(sub, tmp_path, "sub.onnx"))
    scale = make_model([helper.make_node("GlobalAveragePool", ["x"], ["g"], name="squeeze"),
                        helper.make_node("Mul", ["x", "g"], ["y"], name="excite")],
                       [tensor("x", ["N", 4, 5, 5])], [unknown("y", 4)])
    with pytest.raises(SpecError, match="'excite' \\(Mul\\).*broadcasting"):
        import_onnx(save(scale, tmp_path, "se.onnx"))


def test_a_declared_shape_that_disagrees_is_an_error(tmp_path):
    wrong = [tensor("c1", ["N", 16, 30, 30])]  # a 3x3 conv with pad 1 keeps 32x32
    path = save(cnn_model(value_info=wrong), tmp_path)
    with pytest.raises(SpecError) as info:
        import_onnx(path)
    text = str(info.value)
    assert str(path) in text and "'c1'" in text and "'conv1'" in text
    assert "[N, 16, 30, 30]" in text and "[1, 16, 32, 32]" in text
    out_path = save(cnn_model(output_shape=("N", 12)), tmp_path, "out.onnx")
    with pytest.raises(SpecError, match="'prob'.*\\[N, 12\\].*\\[1, 10\\]"):
        import_onnx(out_path)


def test_the_cross_checks_catch_a_wrong_converter(monkeypatch):
    """The importer's shapes are checked against ONNX's inference and against the loader."""
    from workloads.onnx import builder, nodes

    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                       [tensor("x", ["N", 3])], [unknown("y", 2)])

    def wrong(shape, params=0):
        return lambda n: nodes.Emit("Activation", {"function": "relu"}, [n.inputs[0]], shape,
                                    params)
    monkeypatch.setitem(nodes.CONVERTERS, "Relu", wrong((1, 4)))
    with pytest.raises(SpecError, match="'y'.*onnx.shape_inference's \\[N, 3\\] disagrees with "
                                        "the importer's \\[1, 4\\]"):
        import_onnx(model)
    monkeypatch.setattr(builder.Builder, "check_onnx_inference", lambda self: 0)
    with pytest.raises(SpecError, match="'r' \\(Relu\\).*computes \\[1, 3\\] \\(NHWC\\) where "
                                        "ONNX gives \\[1, 4\\]"):
        import_onnx(model)
    monkeypatch.setitem(nodes.CONVERTERS, "Relu", wrong((1, 3), params=5))
    with pytest.raises(SpecError, match="counts 0 parameters where the node's initializers hold 5"):
        import_onnx(model)


def test_an_unused_extra_input_is_dropped_and_pytorch_names_are_kept(tmp_path):
    nodes = [helper.make_node("Gemm", ["input.1", "fc.weight", "fc.bias"], ["/fc/Gemm_output_0"],
                              name="/fc/Gemm", transB=1)]
    model = make_model(nodes, [tensor("input.1", ["N", 5]), tensor("label", ["N", 1])],
                       [tensor("/fc/Gemm_output_0", ["N", 2])],
                       [weight("fc.weight", 2, 5), weight("fc.bias", 2)])
    path = save(model, tmp_path)
    assert list(import_onnx(path)["layers"]) == ["input.1", "/fc/Gemm"]
    assert load_net(path, batch=2)["/fc/Gemm"].output_shape == (2, 2)


def test_a_used_second_output_is_an_error(tmp_path):
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool", kernel_shape=[2, 2])]
    model = make_model(nodes, [tensor("x", [1, 1, 4, 4])],
                       [unknown("y", 4), unknown("idx", 4, TensorProto.INT64)])
    with pytest.raises(SpecError, match="'pool' \\(MaxPool\\).*output 1 is used"):
        import_onnx(save(model, tmp_path))


def test_unreadable_files(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\x00 this is not a protobuf message \x01" * 3)
    with pytest.raises(SpecError, match="garbage.onnx"):
        import_onnx(garbage)
    with pytest.raises(SpecError, match="missing.onnx: cannot read file"):
        load_net(tmp_path / "missing.onnx")


def test_without_the_onnx_package_the_error_says_what_to_install(tmp_path):
    path = save(cnn_model(), tmp_path)
    script = ("import sys; sys.modules['onnx'] = None\n"
              "from simulator.errors import SpecError\n"
              "from workloads import load_net\n"
              "try:\n"
              f"    load_net({str(path)!r})\n"
              "except SpecError as exc:\n"
              "    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert str(path) in run.stdout and "pip install paleosim[onnx]" in run.stdout


# ---------------------------------------------------------------------------------------------
# the CLI
def test_cli_convert_and_summary(tmp_path, capsys):
    path = save(cnn_model(), tmp_path, "cnn.onnx")
    out = tmp_path / "cnn.json"
    assert cli.main(["convert", str(path), "--batch", "4", "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == import_onnx(path, batch=4)
    assert cli.main(["convert", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == import_onnx(path)
    assert cli.main(["summary", str(path), "--device", "V100", "--batch", "4",
                     "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["batch"] == 4 and doc["device"] == "V100"
    assert [row["layer"] for row in doc["layers"]] == list(CNN_EXPECTED)
    assert doc["totals"]["params"] == 3170
    assert cli.main(["summary", str(path), "--device", "V100"]) == 0
    table = capsys.readouterr().out
    assert "conv1" in table and "TOTAL" in table


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    model = make_model([helper.make_node("Transpose", ["x"], ["y"], name="flip")],
                       [tensor("x", [1, 2, 3])], [unknown("y", 3)])
    path = save(model, tmp_path)
    assert cli.main(["convert", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paleosim: error: ") and err.count("\n") == 1
    assert str(path) in err and "'flip'" in err and "Transpose" in err
    assert cli.main(["convert", str(path), "--input-shape", "1,2,3,4"]) == 2
    assert "--batch" in capsys.readouterr().err
