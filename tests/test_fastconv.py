"""Convolution algorithms in the roofline: Winograd F(2x2,3x3), the staged Winograd F(4x4,3x3) and
FFTs, where the device's stack has them."""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction as Fr
from pathlib import Path

import pytest

from simulator.catalog import get_device
from simulator.catalog.device import Device
from simulator.costmodel import RooflineCostModel
from simulator.errors import SpecError
from simulator import fastconv
from simulator.fastconv import (TRANSFORM_EFFICIENCY, _fft_size, algorithm_works,
                                staged_geometry, staged_kernels, winograd_eligible,
                                winograd_flops)
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
    assert staged_geometry(layer, "forward", "winograd_4x4_3x3") is None


def test_the_roofline_takes_the_faster_algorithm_on_devices_that_offer_it():
    layer = _conv()
    direct = ROOF.work_time_s(layer.work["forward"], "conv", P100, dtype="fp32")
    ((fast, fraction),) = dict(algorithm_works(layer, "forward", FAST, "fp32"))["winograd_2x2_3x3"]
    assert fraction == 1.0
    p100_fused = dataclasses.replace(P100, conv_algorithms=FAST)
    assert ROOF.phase_time_s(layer, "forward", p100_fused) == ROOF.work_time_s(
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
        _device(conv_algorithms=["direct", "gemm"])
    with pytest.raises(SpecError, match="must include 'direct'"):
        _device(conv_algorithms=["winograd_2x2_3x3"])
    with pytest.raises(SpecError, match="list of algorithm names"):
        _device(conv_algorithms="direct")


# --- staged algorithms: Winograd F(4x4,3x3) and the FFTs ------------------------------------

ALL = ("direct", "winograd_2x2_3x3", "winograd_4x4_3x3", "fft", "fft_tiling")

# Lavin and Gray (CVPR 2016), F(4x4, 3x3)
B_T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
G = [[Fr(1, 4), 0, 0], [Fr(-1, 6)] * 3, [Fr(-1, 6), Fr(1, 6), Fr(-1, 6)],
     [Fr(1, 24), Fr(1, 12), Fr(1, 6)], [Fr(1, 24), Fr(-1, 12), Fr(1, 6)], [0, 0, 1]]
A_T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def _matrix_flops(matrix) -> int:
    """A multiplication per entry other than 0 and +-1, an addition per non-zero after the first."""
    total = 0
    for row in matrix:
        nonzero = [v for v in row if v != 0]
        total += sum(1 for v in nonzero if abs(v) != 1) + max(len(nonzero) - 1, 0)
    return total


def test_winograd_4x4_transform_counts_follow_from_the_matrices():
    # 2-D: B^T d B is 6 + 6 one-dimensional transforms, A^T m A 6 + 4, G g G^T 3 + 6
    assert 12 * _matrix_flops(B_T) == fastconv._W4_INPUT_FLOPS == 336
    assert 10 * _matrix_flops(A_T) == fastconv._W4_OUTPUT_FLOPS == 200
    assert 9 * _matrix_flops(G) == fastconv._W4_FILTER_FLOPS == 189


@pytest.mark.parametrize("n, size", [(4, 4), (11, 12), (13, 14), (17, 18), (29, 30), (31, 32),
                                     (97, 98), (121, 125), (256, 256)])
def test_fft_sizes_round_up_to_2_3_5_7_smooth_numbers(n, size):
    assert _fft_size(n) == size


def test_staged_geometry():
    # AlexNet's conv2 shape: 26x26, 5x5 SAME -> whole-map FFT of 26 + 4 = 30 per axis
    layer = _conv(batch=4, hw=26, cin=64, cout=192, filter=[5, 5, 64, 192])
    assert staged_geometry(layer, "forward", "fft") == (2 * 30 * 16, 1, 4, (
        2.5 * 900 * math.log2(900),) * 3)
    # 32x32 tiles give 28 outputs per axis: one tile
    assert staged_geometry(layer, "forward", "fft_tiling")[:3] == (2 * 32 * 17, 1, 4)
    # F(4x4,3x3): 6x6 transformed tiles over 4x4 outputs
    layer = _conv(batch=2, hw=30, cin=8, cout=8)
    assert staged_geometry(layer, "forward", "winograd_4x4_3x3") == (36, 64, 2, (336, 189, 200))
    # a 224 map: too wide for the whole-map FFT (226 fits; 300 + 2 does not), tiled in 30s
    wide = _conv(batch=1, hw=300, cin=4, cout=4)
    assert staged_geometry(wide, "forward", "fft") is None
    assert staged_geometry(wide, "forward", "fft_tiling")[1] == math.ceil(300 / 30) ** 2
    # backward-data tiles dX's map: a VALID 5x5 layer's input is 4 wider than its output
    valid = _conv(batch=1, hw=20, cin=4, cout=4, filter=[5, 5, 4, 4], padding="VALID")
    assert staged_geometry(valid, "forward", "fft")[0] == 2 * 20 * 11
    assert staged_geometry(valid, "backward_data", "fft")[0] == 2 * 24 * 13


@pytest.mark.parametrize("conv", [{"strides": [1, 2, 2, 1]}, {"groups": 2},
                                  {"dilations": [1, 2, 2, 1]}])
def test_staged_algorithms_need_stride_1_undilated_ungrouped(conv):
    layer = _conv(filter=[5, 5, 64, 128], **conv)
    assert [a for a, _ in algorithm_works(layer, "forward", ALL, "fp32")] == ["direct"]
    # a 33x33 kernel has no 32x32 tiling
    big = _conv(batch=1, hw=40, cin=2, cout=2, filter=[33, 33, 2, 2])
    assert staged_geometry(big, "forward", "fft_tiling") is None
    assert staged_geometry(big, "forward", "fft") is not None


def test_staged_kernels_forward_exact():
    n, hw, c, k = 4, 26, 64, 192
    layer = _conv(batch=n, hw=hw, cin=c, cout=k, filter=[5, 5, c, k])
    points, t = 2 * 30 * 16, 2.5 * 900 * math.log2(900)
    x, w, y = n * hw * hw * c, 25 * c * k, n * hw * hw * k
    a, b, products, inverse = staged_kernels(layer, "forward", "fft")
    assert (a.flops, a.read_elems, a.write_elems) == (t * n * c, x, n * c * points)
    assert (b.flops, b.read_elems, b.write_elems) == (t * c * k, w, c * k * points)
    assert (products.flops, products.read_elems, products.write_elems) == (
        4 * points * n * c * k, (n * c + c * k) * points, n * k * points)
    assert (inverse.flops, inverse.read_elems, inverse.write_elems) == (
        t * n * k, n * k * points, y)
    # backward-filter transforms x and dY and inverts c x k spectra back to 5x5 filters
    a, b, products, inverse = staged_kernels(layer, "backward_filter", "fft")
    assert (a.read_elems, b.read_elems, inverse.write_elems) == (x, y, w)
    assert products.write_elems == c * k * points


def test_staged_transforms_run_at_the_fitted_fraction_and_the_roofline_sums_kernels():
    layer = _conv(batch=16, hw=26, cin=64, cout=192, filter=[5, 5, 64, 192])
    work = layer.work["forward"]
    choices = dict(algorithm_works(layer, "forward", ALL, "fp32"))
    assert set(choices) == {"direct", "fft", "fft_tiling"}
    fractions = [f for _, f in choices["fft"]]
    assert fractions == [TRANSFORM_EFFICIENCY, TRANSFORM_EFFICIENCY, 1.0, TRANSFORM_EFFICIENCY]
    # the epilogue (here none beyond the products) joins the inverse transform
    assert choices["fft"][3][0].flops == staged_kernels(layer, "forward", "fft")[3].flops + (
        work.flops - 2 * layer.macs)
    times = {a: sum(ROOF.work_time_s(w, "conv", P100, dtype="fp32") / f for w, f in kernels)
             for a, kernels in choices.items()}
    assert ROOF.phase_time_s(layer, "forward", P100) == min(times.values())
    # a 5x5 layer with many channels: the FFT beats direct on the P100's stack
    assert min(times, key=times.get) == "fft" and times["fft"] < times["direct"] / 2


DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlperf_prediction"


@pytest.mark.skipif(not (DATA / "layer_timings_conv.csv").is_file(),
                    reason="../shared/data/mlperf_prediction is absent (shared fixtures)")
def test_transform_efficiency_is_the_fit_to_measured_layer_timings():
    import subprocess
    import sys
    script = Path(__file__).resolve().parents[1] / "experiments" / "fit_staged_conv.py"
    run = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"fraction {TRANSFORM_EFFICIENCY:.2f}" in run.stdout and "<- best" in run.stdout
