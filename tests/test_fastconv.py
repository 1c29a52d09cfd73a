"""Convolution algorithms in the roofline: Winograd F(2x2,3x3) where the device's stack has it."""
from __future__ import annotations

import math

import pytest

from simulator.catalog import get_device
from simulator.catalog.device import Device
from simulator.costmodel import RooflineCostModel
from simulator.errors import SpecError
from simulator.fastconv import algorithm_works, winograd_eligible, winograd_flops
from workloads import build_graph

ROOF = RooflineCostModel()
P100 = get_device("P100")
FAST = ("direct", "winograd_2x2_3x3")


def _net(batch=8, hw=28, cin=64, cout=128, **conv):
    layer = {"type": "Convolution", "parents": ["data"], "filter": [3, 3, cin, cout],
             "strides": [1, 1, 1, 1], "padding": "SAME"}
    layer.update(conv)
    return build_graph({"name": "t", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [batch, hw, hw, cin]},
        "relu0": {"type": "Activation", "parents": ["data"], "function": "relu"},
        "conv": dict(layer, parents=["relu0"])}}, source="t.json")


def _conv(**kw):
    return next(l for l in _net(**kw).layers if l.name == "conv")


def test_forward_flops_are_the_tile_count_times_16_products_plus_transforms():
    layer = _conv(batch=8, hw=28, cin=64, cout=128)
    tiles = 8 * 14 * 14
    expected = 2 * tiles * 16 * 64 * 128 + tiles * (32 * 64 + 24 * 128) + 28 * 64 * 128
    assert winograd_flops(layer, "forward") == expected
    # the products alone are 2.25x fewer than the direct count when the tiles fit exactly
    assert 2 * layer.macs / (2 * tiles * 16 * 64 * 128) == 2.25
    # backward-data swaps the transforms' roles (input transform on dY's 128 channels)
    assert winograd_flops(layer, "backward_data") == (
        2 * tiles * 16 * 64 * 128 + tiles * (32 * 128 + 24 * 64) + 28 * 64 * 128)


def test_odd_maps_round_the_tiles_up():
    layer = _conv(batch=2, hw=7, cin=32, cout=32)
    tiles = 2 * math.ceil(7 / 2) ** 2
    assert winograd_flops(layer, "forward") == (
        2 * tiles * 16 * 32 * 32 + tiles * (32 * 32 + 24 * 32) + 28 * 32 * 32)


@pytest.mark.parametrize("conv", [{"strides": [1, 2, 2, 1]}, {"groups": 2},
                                  {"dilations": [1, 2, 2, 1]}, {"filter": [5, 5, 64, 128]}])
def test_only_3x3_stride_1_undilated_ungrouped_convolutions_are_eligible(conv):
    assert winograd_eligible(_conv())
    layer = _conv(**conv)
    assert not winograd_eligible(layer)
    assert [a for a, _ in algorithm_works(layer, "forward", FAST, "fp32")] == ["direct"]


def test_the_roofline_takes_the_faster_algorithm_on_devices_that_offer_it():
    layer = _conv()
    direct = ROOF.work_time_s(layer.work["forward"], "conv", P100, dtype="fp32")
    fast = dict(algorithm_works(layer, "forward", FAST, "fp32"))["winograd_2x2_3x3"]
    assert ROOF.phase_time_s(layer, "forward", P100) == ROOF.work_time_s(
        fast, "conv", P100, dtype="fp32") < direct
    # memory traffic is the direct algorithm's (fused kernels)
    assert fast.elems == layer.work["forward"].elems
    # a Kepler entry (direct only) and tensor-core dtypes keep the direct count
    k40 = get_device("K40")
    assert ROOF.phase_time_s(layer, "forward", k40) == ROOF.work_time_s(
        layer.work["forward"], "conv", k40, dtype="fp32")
    assert ROOF.phase_time_s(layer, "forward", P100, dtype="fp16") == ROOF.work_time_s(
        layer.work["forward"], "conv", P100, dtype="fp16")


def test_an_input_fed_convolution_has_no_backward_data_to_speed_up():
    graph = build_graph({"name": "t", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [4, 8, 8, 16]},
        "conv": {"type": "Convolution", "parents": ["data"], "filter": [3, 3, 16, 16],
                 "strides": [1, 1, 1, 1], "padding": "SAME"}}}, source="t.json")
    layer = graph.layers[-1]
    assert ROOF.phase_time_s(layer, "backward_data", P100) == 0.0


def _device(**changes):
    base = dict(name="toy", description="a toy", kind="gpu", peak_flops={"fp32": 1e12},
                memory_bandwidth_Bps=1e11, memory_bytes=2 ** 30, clock_hz=1e9,
                compute_efficiency={"default": 0.5}, memory_efficiency=0.8,
                idle_power_W=10, busy_power_W=100, source="made up")
    return Device(**{**base, **changes})


def test_device_conv_algorithms_are_validated():
    assert _device().conv_algorithms == ("direct",)
    assert _device(conv_algorithms=["direct", "winograd_2x2_3x3"]).conv_algorithms == FAST
    with pytest.raises(SpecError, match="unknown convolution algorithm"):
        _device(conv_algorithms=["direct", "fft"])
    with pytest.raises(SpecError, match="must include 'direct'"):
        _device(conv_algorithms=["winograd_2x2_3x3"])
    with pytest.raises(SpecError, match="list of algorithm names"):
        _device(conv_algorithms="direct")
