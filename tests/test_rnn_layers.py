"""Recurrent layers (workloads/ops_rnn.py): parameter counts against the frameworks' documented
layouts, exact per-phase work on a tiny case, shorthands, and input errors."""
from __future__ import annotations

import pytest

from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph, layer_types
from workloads.ops_rnn import CELLS, recurrent_params


def net(layers: dict) -> dict:
    return {"name": "t", "layers": layers}


def seq_net(layer: dict, *, n=2, t=3, d=4, via_embedding=True) -> dict:
    """Input -> (Embedding) -> the layer under test. With an embedding the layer is not fed by an
    Input, so its backward-data includes dX."""
    if via_embedding:
        return net({"data": {"type": "Input", "parents": [], "tensor": [n, t]},
                    "emb": {"type": "Embedding", "parents": ["data"], "vocab": 11, "dim": d},
                    "rnn": {"parents": ["emb"], **layer}})
    return net({"data": {"type": "Input", "parents": [], "tensor": [n, t, d]},
                "rnn": {"parents": ["data"], **layer}})


def test_layer_types_are_registered():
    assert {"Recurrent", "RNN", "LSTM", "GRU"} <= set(layer_types())


# Known parameter counts, D inputs -> h units:
# - TensorFlow 1 BasicRNNCell / BasicLSTMCell / GRUCell (kernel [D+h, g*h], bias [g*h]; GRUCell's
#   gates and candidate kernels together) and Keras LSTM(100) on 100 features: 80,400.
# - PyTorch nn.RNN / nn.LSTM / nn.GRU(10, 20): weight_ih [g*h, D], weight_hh [g*h, h], b_ih and
#   b_hh [g*h]: 640, 2560, 1920. Keras GRU(20, reset_after=True) on 10 features is also 1920.
@pytest.mark.parametrize("cell, d, h, bias, expected", [
    ("rnn", 10, 20, True, 620),
    ("lstm", 10, 20, True, 2480),
    ("gru", 10, 20, True, 1860),
    ("lstm", 100, 100, True, 80400),
    ("rnn", 10, 20, "double", 640),
    ("lstm", 10, 20, "double", 2560),
    ("gru", 10, 20, "double", 1920),
    ("lstm", 10, 20, False, 2400),
])
def test_params_match_framework_layouts(cell, d, h, bias, expected):
    assert recurrent_params(cell, d, h, bias) == expected
    g = build_graph(seq_net({"type": "Recurrent", "cell": cell, "hidden": h, "bias": bias}, d=d))
    assert g["rnn"].params == expected
    assert g["rnn"].output_shape == (2, 3, h)


def test_lstm_work_per_phase_by_hand():
    # N=2, T=3, D=4, h=5, LSTM (g=4, G=g*h=20), one bias per gate; rows N*T = 6.
    # weights: W 4x20 = 80, U 5x20 = 100, bias 20 -> 200 params
    # forward MACs: input GEMM 6*4*20 = 480, recurrent 6*5*20 = 600 -> 1080
    # gate arithmetic per unit-step: 4 bias adds + 3 sigmoids*4 + 2 tanh*4 + 4 = 28; 30 units*steps
    g = build_graph(seq_net({"type": "LSTM", "hidden": 5}))
    layer = g["rnn"]
    assert layer.params == 200
    assert layer.macs == 1080
    assert layer.op_class == "matmul"
    fwd, bd, bf = (layer.work[p] for p in ("forward", "backward_data", "backward_filter"))
    assert fwd.flops == 2 * 1080 + 28 * 30
    # reads: X 24 + W 80 + b 20; per step h 10 + U 100 (x3); gate pre-activations and states
    # 6*(20 + 2*5) = 180. Writes: gates 120 (input GEMM) + 120 (recurrent) + 180.
    assert (fwd.read_elems, fwd.write_elems) == (124 + 330 + 180, 120 + 120 + 180)
    # backward-data: gate derivatives 2*840, dh = dG*U^T 2*600, dX = dG*W^T 2*480
    assert bd.flops == 1680 + 1200 + 960
    assert (bd.read_elems, bd.write_elems) == (240 + 420 + 200, 180 + 30 + 24)
    # backward-filter: dW 2*480, dU 2*600, db sum over 6 rows of 20 = 120
    assert bf.flops == 960 + 1200 + 120
    assert (bf.read_elems, bf.write_elems) == (144 + 150 + 120, 200)


def test_fed_by_input_skips_only_the_input_gradient():
    inner = build_graph(seq_net({"type": "LSTM", "hidden": 5}))["rnn"]
    first = build_graph(seq_net({"type": "LSTM", "hidden": 5}, via_embedding=False))["rnn"]
    assert first.fed_by_input and not inner.fed_by_input
    # back-propagation through time still runs (the weight gradients need it); only dX goes
    assert inner.work["backward_data"].flops - first.work["backward_data"].flops == 2 * 480
    assert first.work["backward_data"].flops == 1680 + 1200
    assert first.work["forward"] == inner.work["forward"]
    assert first.work["backward_filter"] == inner.work["backward_filter"]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("n, t, d, h", [(1, 1, 1, 1), (3, 7, 16, 8), (64, 50, 100, 100)])
def test_matmul_work_is_three_times_the_forward(cell, n, t, d, h):
    g = build_graph(seq_net({"type": "Recurrent", "cell": cell, "hidden": h}, n=n, t=t, d=d))
    layer = g["rnn"]
    gates = CELLS[cell].gates
    assert layer.macs == n * t * gates * h * (d + h)
    per_unit = CELLS[cell].forward_flops(1)
    units = n * t * h
    assert layer.work["forward"].flops == 2 * layer.macs + per_unit * units
    assert layer.work["backward_data"].flops == 2 * layer.macs + 2 * per_unit * units
    assert layer.work["backward_filter"].flops == 2 * layer.macs + n * t * gates * h


@pytest.mark.parametrize("short", ["RNN", "LSTM", "GRU"])
def test_shorthand_types_equal_recurrent(short):
    a = build_graph(seq_net({"type": short, "hidden": 6}))["rnn"]
    b = build_graph(seq_net({"type": "Recurrent", "cell": short.lower(), "hidden": 6}))["rnn"]
    assert (a.params, a.macs, dict(a.work), a.output_shape) == \
        (b.params, b.macs, dict(b.work), b.output_shape)
    assert a.attrs["cell"] == short.lower()


def test_stacked_layers_change_width():
    spec = seq_net({"type": "GRU", "hidden": 8})
    spec["layers"]["rnn2"] = {"type": "GRU", "parents": ["rnn"], "hidden": 3}
    g = build_graph(spec, batch=5)
    assert g["rnn2"].input_shapes == ((5, 3, 8),)
    assert g["rnn2"].output_shape == (5, 3, 3)
    assert g["rnn2"].params == 3 * (8 * 3 + 3 * 3 + 3)


@pytest.mark.parametrize("layer, field, match", [
    ({"type": "Recurrent", "hidden": 4}, "cell", "missing field 'cell'"),
    ({"type": "Recurrent", "cell": "elman", "hidden": 4}, "cell", "'cell' must be one of"),
    ({"type": "LSTM", "cell": "gru", "hidden": 4}, "cell", "has cell 'lstm'"),
    ({"type": "LSTM"}, "hidden", "missing field 'hidden'"),
    ({"type": "LSTM", "hidden": 0}, "hidden", "integer >= 1"),
    ({"type": "GRU", "hidden": 4, "bias": "triple"}, "bias", "'bias' must be"),
])
def test_bad_fields_name_the_layer_and_field(layer, field, match):
    with pytest.raises(SpecError, match=match) as info:
        build_graph(seq_net(layer))
    assert info.value.field == f"layers.rnn.{field}"


def test_rank_two_input_is_rejected():
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [2, 4]},
                "rnn": {"type": "LSTM", "parents": ["data"], "hidden": 3}})
    with pytest.raises(SpecError, match="rank-3 input"):
        build_graph(spec)


def test_model_parallel_split_is_rejected():
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [2, 3, 4]},
                "mp": {"type": "ModelParallel", "splits": 2, "parents": ["data"],
                       "layers": {"rnn": {"type": "LSTM", "parents": [], "hidden": 4}}}})
    with pytest.raises(SpecError, match="cannot be split"):
        build_graph(spec)


def test_unknown_type_still_lists_the_recurrent_types():
    with pytest.raises(UnknownNameError) as info:
        build_graph(seq_net({"type": "Lstm", "hidden": 4}))
    assert {"GRU", "LSTM", "RNN", "Recurrent"} <= set(info.value.valid)
