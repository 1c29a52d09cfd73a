"""Paleo-compatible per-layer costs: hand-computed cases from the formulas of
PALEO_COST_MODEL.md section 2, and the example values the specification quotes."""
from __future__ import annotations

import pytest

from simulator.catalog import get_paleo_device
from simulator.errors import SpecError
from simulator.paleo import build_profile, layer_times, update_time
from simulator.paleo.conv import ConvGeometry, gradient_geometries
from simulator.paleo.timing import comp_ms, mem_ms, network_ms
from workloads import build_graph, load_net
from conftest import PALEO_NETS, requires_shared

GIB = 2 ** 30
K20 = dict(peak=3520e9, bw=208.0)  # Paleo's K20 preset: 3520 GFLOP/s, "208 GB/s", 1000 MHz


def t_flops(flops, peak=K20["peak"], ppp=1.0):
    """Hand formula: ms to compute ``flops`` (no floor needed in these cases)."""
    return flops / peak * 1e3 / ppp


def t_bytes(nbytes, bw=K20["bw"], ppp=1.0):
    """Hand formula: ms to move ``nbytes`` at a "GB/s" label that Paleo divides by 2^30."""
    return nbytes / GIB / bw * 1e3 / ppp


def net(layers: dict) -> dict:
    return {"name": "t", "layers": layers}


def conv(parent, filt, strides=1, padding="SAME"):
    return {"type": "Convolution", "parents": [parent], "filter": list(filt),
            "strides": [1, strides, strides, 1], "padding": padding}


# data [2, 8, 8, 3] -> conv1 3x3x3x4 SAME stride 1 -> conv2 3x3x4x4 SAME stride 2 (-> 4x4)
TWO_CONVS = net({
    "data": {"type": "Input", "parents": [], "tensor": [2, 8, 8, 3]},
    "conv1": conv("data", [3, 3, 3, 4]),
    "conv2": conv("conv1", [3, 3, 4, 4], strides=2),
})


def times(spec, *, memory_term="dec2016", ppp=1.0, device="K20"):
    g = build_graph(spec)
    return layer_times(g, device=device, ppp_comp=ppp, memory_term=memory_term).set_index("layer")


# ---------------------------------------------------------------------------------------------
# primitives

def test_primitives_floor_zero_and_gib():
    # one cycle at 1000 MHz is 1e-6 ms; a zero-FLOP term costs nothing, a tiny one a cycle
    assert comp_ms(0, peak_gflops=3520, clock_mhz=1000, ppp=1) == 0.0
    assert comp_ms(1, peak_gflops=3520, clock_mhz=1000, ppp=1) == pytest.approx(1e-6, rel=1e-12)
    assert comp_ms(3.52e9, peak_gflops=3520, clock_mhz=1000, ppp=0.5) == pytest.approx(2.0)
    # memory: 208 * 2^30 bytes take one second at the "208 GB/s" label (bug B1)
    assert mem_ms(208 * GIB, bandwidth_label=208, clock_mhz=1000, ppp=1) == pytest.approx(1e3)
    assert mem_ms(4, bandwidth_label=208, clock_mhz=745, ppp=1) == pytest.approx(1 / 745e3)
    # the network is decimal: 10 Gbit/s moves 1.25e9 bytes per second
    assert network_ms(1.25e9, gbit_per_s=10, ppp_comm=1) == pytest.approx(1e3)
    assert network_ms(1.25e9, gbit_per_s=10, ppp_comm=0.5) == pytest.approx(2e3)


# ---------------------------------------------------------------------------------------------
# one small net, by hand

def test_conv_fed_by_data_by_hand():
    t = times(TWO_CONVS).loc["conv1"]
    # forward: 2*kh*kw*Cin*Ho*Wo*Cout*N = 2*3*3*3*8*8*4*2 = 27648 FLOPs;
    # bytes: input 2*8*8*3*4 = 1536 (Dec-2016: unpadded), filter 3*3*3*4*4 = 432,
    # output 2*8*8*4*4 = 2048, each timed separately
    assert t["forward_comp_ms"] == pytest.approx(t_flops(27648), rel=1e-12)
    assert t["forward_mem_ms"] == pytest.approx(t_bytes(1536) + t_bytes(432) + t_bytes(2048),
                                                rel=1e-12)
    # a convolution reading `data` has no backward-data
    assert t["backward_data_ms"] == 0.0
    # backward-filter, stride 1 SAME (pad 1): exp = 8, pads 1/1, no holes; a conv of
    # [Cin=3, 8, 8, N=2] by [8, 8, 2, 4] padded 1 -> 3x3 output: 2*8*8*2*3*3*4*3 = 27648 FLOPs
    # (= forward); bytes: input 3*8*8*2*4 = 1536, filter 8*8*2*4*4 = 2048, output 3*3*3*4*4 = 432
    assert t["backward_filter_comp_ms"] == pytest.approx(t_flops(27648), rel=1e-12)
    assert t["backward_filter_mem_ms"] == pytest.approx(
        t_bytes(1536) + t_bytes(2048) + t_bytes(432), rel=1e-12)


def test_strided_conv_dec2016_by_hand():
    t = times(TWO_CONVS).loc["conv2"]
    # forward: input [2, 8, 8, 4], Ho = ceil(8/2) = 4: 2*3*3*4*4*4*4*2 = 9216 FLOPs;
    # bytes: input 2*8*8*4*4 = 2048, filter 3*3*4*4*4 = 576, output 2*4*4*4*4 = 512
    assert t["forward_comp_ms"] == pytest.approx(t_flops(9216), rel=1e-12)
    assert t["forward_mem_ms"] == pytest.approx(t_bytes(2048) + t_bytes(576) + t_bytes(512),
                                                rel=1e-12)
    # gradients: SAME pad = ((4-1)*2 + 3 - 8)//2 = 0; exp = 3*2 + 1 = 7; pad_before = 2,
    # pad_after = (8+2) - 7 - 2 = 1: they differ by one, so exp = 8; holes = 1 - 16/64 = 0.75.
    # Dec-2016 pads by pad_before = 2 and has no input-holes term.
    # backward-data: [2, 8, 8, 4] by 3x3x4x4, pad 2 -> 10x10: 2*3*3*4*10*10*4*2 = 57600 FLOPs;
    # bytes: input 2*8*8*4*4 = 2048, filter 576, output 2*10*10*4*4 = 3200
    assert t["backward_data_comp_ms"] == pytest.approx(t_flops(57600), rel=1e-12)
    assert t["backward_data_mem_ms"] == pytest.approx(
        t_bytes(2048) + t_bytes(576) + t_bytes(3200), rel=1e-12)
    # backward-filter: [4, 8, 8, 2] by [8, 8, 2, 4] with 75 % holes, pad 2 -> 5x5:
    # 2*8*8*2*5*5*4*4*0.25 = 25600 FLOPs; bytes: input 2048, filter 8*8*2*4*0.25*4 = 512,
    # output 4*5*5*4*4 = 1600
    assert t["backward_filter_comp_ms"] == pytest.approx(t_flops(25600), rel=1e-12)
    assert t["backward_filter_mem_ms"] == pytest.approx(
        t_bytes(2048) + t_bytes(512) + t_bytes(1600), rel=1e-12)


def test_strided_conv_2017_by_hand():
    t = times(TWO_CONVS, memory_term="2017").loc["conv2"]
    # forward bytes: the padded input, pad 0 here, so unchanged
    assert t["forward_mem_ms"] == pytest.approx(t_bytes(2048) + t_bytes(576) + t_bytes(512),
                                                rel=1e-12)
    # 2017 pads by min(2, 1) = 1: backward-data [2, 8, 8, 4] padded 1 -> 8x8:
    # 2*3*3*4*8*8*4*2 = 36864 plus the input-holes term 2*2*8*8*4*(1-0.75) = 256;
    # bytes: padded input 2*10*10*4*4 = 3200, filter 576, output 2*8*8*4*4 = 2048
    assert t["backward_data_comp_ms"] == pytest.approx(t_flops(36864 + 256), rel=1e-12)
    assert t["backward_data_mem_ms"] == pytest.approx(
        t_bytes(3200) + t_bytes(576) + t_bytes(2048), rel=1e-12)
    # backward-filter -> 3x3 output: 2*8*8*2*3*3*4*4*0.25 = 9216 FLOPs, exactly the forward;
    # bytes: padded input 4*10*10*2*4 = 3200, filter 512, output 4*3*3*4*4 = 576
    assert t["backward_filter_comp_ms"] == pytest.approx(t_flops(9216), rel=1e-12)
    assert t["backward_filter_mem_ms"] == pytest.approx(
        t_bytes(3200) + t_bytes(512) + t_bytes(576), rel=1e-12)


def test_conv1_memory_term_2017_pads_input():
    t = times(TWO_CONVS, memory_term="2017").loc["conv1"]
    # SAME pad 1: padded input 2*10*10*3*4 = 2400 bytes
    assert t["forward_mem_ms"] == pytest.approx(t_bytes(2400) + t_bytes(432) + t_bytes(2048),
                                                rel=1e-12)


def test_ppp_comp_divides_compute_and_memory():
    full = times(TWO_CONVS)
    half = times(TWO_CONVS, ppp=0.5)
    for col in ("forward_comp_ms", "forward_mem_ms", "backward_filter_mem_ms"):
        assert list(half[col]) == pytest.approx(list(2 * full[col]), rel=1e-12)


def test_unclamped_same_pad_is_negative():
    # 1x1 stride-2 SAME on 8x8: pad_total = (4-1)*2 + 1 - 8 = -1, pad = -1 // 2 = -1 (section 1.2)
    g = ConvGeometry(n=1, h=8, w=8, cin=1, kh=1, kw=1, cout=1, sh=2, sw=2, padding="SAME")
    assert g.out_hw == (4, 4) and g.pad_hw == (-1, -1)
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [1, 8, 8, 16]},
                "c": conv("data", [1, 1, 16, 16], strides=2)})
    t = times(spec, memory_term="2017").loc["c"]
    # the padded input is 1*(8-2)*(8-2)*16*4 = 2304 bytes, smaller than the 4096 unpadded
    assert t["forward_mem_ms"] == pytest.approx(
        t_bytes(2304) + t_bytes(16 * 16 * 4) + t_bytes(4 * 4 * 16 * 4), rel=1e-12)


def test_gradient_geometry_odd_stride_gap():
    # AlexNet conv1: 224, 11x11 stride 4 VALID -> 54; exp = 53*4 + 1 = 213, pads 10 / 11 ->
    # exp 214; backward-filter is VALID, so its output is 224 - 214 + 1 = 11 = the kernel
    g = ConvGeometry(n=1, h=224, w=224, cin=3, kh=11, kw=11, cout=64, sh=4, sw=4,
                     padding="VALID")
    for version in ("dec2016", "2017"):
        data, filt = gradient_geometries(g, version=version)
        assert (data.h, filt.kh) == (214, 214)
        assert filt.out_hw == (11, 11)
        assert data.padding == (10, 10)
        assert filt.holes_in_filters == pytest.approx(1 - 54 * 54 / 214 ** 2)
    assert gradient_geometries(g, version="dec2016")[0].holes_in_inputs == 0.0
    assert gradient_geometries(g, version="2017")[0].holes_in_inputs > 0


def test_pool_dropout_and_free_layers_by_hand():
    spec = net({
        "data": {"type": "Input", "parents": [], "tensor": [8, 32, 32, 16]},
        "pool": {"type": "Pooling", "parents": ["data"], "ksize": [1, 3, 3, 1],
                 "strides": [1, 2, 2, 1], "padding": "VALID"},
        "drop": {"type": "Dropout", "parents": ["pool"], "dropout_keep_prob": 0.5},
        "cat": {"type": "Concatenate", "parents": ["drop", "pool"], "dim": 3},
        "sm": {"type": "Softmax", "parents": ["cat"]},
    })
    t = times(spec)
    # pool: out ceil((32-3+1)/2) = 15, 8*15*15*16 = 28800 outputs; FLOPs 2*3*3*28800 = 518400;
    # bytes in 8*32*32*16*4 = 524288, out 28800*4 = 115200; backward-data = forward, and no
    # backward-filter
    pool = t.loc["pool"]
    assert pool["forward_comp_ms"] == pytest.approx(t_flops(518400), rel=1e-12)
    assert pool["forward_mem_ms"] == pytest.approx(t_bytes(524288) + t_bytes(115200), rel=1e-12)
    assert pool["backward_data_ms"] == pool["forward_ms"] and pool["backward_filter_ms"] == 0
    # dropout: N*H*W*C = 28800 FLOPs, in and out 115200 bytes each
    drop = t.loc["drop"]
    assert drop["forward_comp_ms"] == pytest.approx(t_flops(28800), rel=1e-12)
    assert drop["forward_mem_ms"] == pytest.approx(2 * t_bytes(115200), rel=1e-12)
    assert drop["backward_data_ms"] == drop["forward_ms"]
    for name in ("cat", "sm", "data"):
        assert (t.loc[name, ["forward_ms", "backward_ms"]] == 0).all()


def test_inner_product_backward_is_twice_forward():
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [64, 256]},
                "fc": {"type": "InnerProduct", "parents": ["data"], "num_outputs": 100}})
    fc = times(spec).loc["fc"]
    # 2*N*D*K = 2*64*256*100 = 3276800 FLOPs; bytes X 65536, W 102400 (weights only), Y 25600
    assert fc["forward_comp_ms"] == pytest.approx(t_flops(3276800), rel=1e-12)
    assert fc["forward_mem_ms"] == pytest.approx(
        t_bytes(65536) + t_bytes(102400) + t_bytes(25600), rel=1e-12)
    assert fc["backward_ms"] == pytest.approx(2 * fc["forward_ms"], rel=1e-12)


def test_deconvolution_swaps_the_equivalent_convolution():
    # deconv [4x4x8] -> [8x8x4] stride 2 SAME is the transpose of conv 8x8x4 -> 4x4x8
    deconv = net({"data": {"type": "Input", "parents": [], "tensor": [2, 4, 4, 8]},
                  "pre": conv("data", [1, 1, 8, 8]),
                  "up": {"type": "Deconvolution", "parents": ["pre"], "filter": [3, 3, 4, 8],
                         "strides": [1, 2, 2, 1], "padding": "SAME",
                         "output_shape": [2, 8, 8, 4]}})
    plain = net({"data": {"type": "Input", "parents": [], "tensor": [2, 8, 8, 4]},
                 "pre": conv("data", [1, 1, 4, 4]),
                 "down": conv("pre", [3, 3, 4, 8], strides=2)})
    up = times(deconv).loc["up"]
    down = times(plain).loc["down"]
    assert up["forward_ms"] == pytest.approx(down["backward_data_ms"], rel=1e-12)
    assert up["backward_data_ms"] == pytest.approx(down["forward_ms"], rel=1e-12)
    assert up["backward_filter_ms"] == pytest.approx(down["backward_filter_ms"], rel=1e-12)


def test_grouped_convolution_is_refused():
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [1, 8, 8, 4]},
                "g": dict(conv("data", [3, 3, 4, 4]), groups=2)})
    with pytest.raises(SpecError, match="groups.*grouped convolution"):
        build_profile(build_graph(spec))


def test_one_cycle_floor_per_term():
    # a 1x1x1x1 conv on one pixel: 2 FLOPs and 4-byte terms, each floored at one cycle
    spec = net({"data": {"type": "Input", "parents": [], "tensor": [1, 1, 1, 1]},
                "c": conv("data", [1, 1, 1, 1])})
    c = times(spec, device="K40").loc["c"]           # K40: 745 MHz
    assert c["forward_comp_ms"] == pytest.approx(1 / 745e3, rel=1e-12)
    assert c["forward_mem_ms"] == pytest.approx(3 / 745e3, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the specification's example values

@requires_shared
@pytest.mark.parametrize("net_name, device, expected_ms", [
    ("alex_v2", "K80", 1.189),   # PALEO_COST_MODEL.md section 2.5
    ("nin", "K20X", 0.343),
])
def test_update_examples(net_name, device, expected_ms):
    prof = build_profile(load_net(PALEO_NETS / f"{net_name}.json"))
    dev = get_paleo_device(device)
    assert round(update_time(prof.params, dev).total_ms, 3) == expected_ms
    # by hand: 2*params FLOPs and 3*4*params bytes, at PPP 1
    params = {"alex_v2": 50_303_912, "nin": 7_595_176}[net_name]
    assert prof.params == params
    by_hand = (2 * params / (dev.peak_gflops * 1e9) * 1e3
               + 12 * params / GIB / dev.mem_bandwidth_gbps_label * 1e3)
    assert update_time(prof.params, dev).total_ms == pytest.approx(by_hand, rel=1e-12)


@requires_shared
def test_alexnet_fc6_backward_data_example():
    # section 2.2: fc6 as a 5x5 VALID conv on a 5x5 input, Titan X at PPP 1 (batch 128):
    # backward-data 28.08 ms vs forward 1.40 ms, with Paleo's 2017 code
    g = load_net(PALEO_NETS / "alex_v2.json")
    head = layer_times(g, device="TITAN_X", memory_term="2017").set_index("layer").loc["fc6"]
    assert round(head["forward_ms"], 2) == 1.40
    assert round(head["backward_data_ms"], 2) == 28.08
    assert head["backward_data_comp_ms"] == pytest.approx(25 * head["forward_comp_ms"], rel=1e-12)
    # Dec-2016 reads the unpadded 1x1 gradient instead of the 9x9 padded one: the difference is
    # 128*(81-1)*4096*4 bytes at Titan X's "336.5 GB/s"
    dec = layer_times(g, device="TITAN_X").set_index("layer").loc["fc6"]
    assert head["backward_data_ms"] - dec["backward_data_ms"] == pytest.approx(
        t_bytes(128 * 80 * 4096 * 4, bw=336.5), rel=1e-9)
