"""Paleo-compatible modes: data parallelism (schemes, weak/strong, pipeline), model parallelism
(bounds, remote fetches, bugs B3/B4/B4b, nested branches) and hybrid parallelism (bug B5) on
Paleo's alex_v2_{1,2,4,8}gpu nets. Expected values are assembled by hand from the per-layer
times and the formulas of PALEO_COST_MODEL.md sections 2.5-2.7 and 3.1."""
from __future__ import annotations

import math

import pytest

from simulator.catalog import get_paleo_device
from simulator.errors import InfeasibleError
from simulator.paleo import (DATA_COLUMNS, PaleoCrashError, PaleoNet, build_profile,
                             critical_path, estimate, layer_times, update_time)
from simulator.paleo.placement import fetch_terms
from workloads import build_graph, load_net
from conftest import PALEO_NETS, requires_shared

GIB = 2 ** 30


def conv(parent, filt, strides=1, padding="SAME", parents=None):
    return {"type": "Convolution", "parents": [parent] if parents is None else parents,
            "filter": list(filt), "strides": [1, strides, strides, 1], "padding": padding}


SMALL = {"name": "small", "layers": {
    "data": {"type": "Input", "parents": [], "tensor": [10, 16, 16, 3]},
    "c1": conv("data", [3, 3, 3, 16]),
    "c2": conv("c1", [3, 3, 16, 32], strides=2),
    "fc": {"type": "InnerProduct", "parents": ["c2"], "num_outputs": 10},
}}
SMALL_PARAMS = (3 * 3 * 3 * 16 + 16) + (3 * 3 * 16 * 32 + 32) + (8 * 8 * 32 * 10 + 10)


# ---------------------------------------------------------------------------------------------
# data parallelism

def test_data_columns_and_schemes_by_hand():
    df = estimate(build_graph(SMALL), device="K20", network="ethernet", ppp_comp=0.5,
                  ppp_comm=0.5, workers=[1, 2, 5, 8])
    assert tuple(df.columns) == DATA_COLUMNS
    assert build_profile(build_graph(SMALL)).params == SMALL_PARAMS
    link = SMALL_PARAMS * 4 / (10 / 8 * 1e9) * 1e3 / 0.5     # L in ms, decimal Gbit/s
    # N=5: OneToAll 2(N-1)L, Tree 2*ceil(log2 N)*L, Butterfly ceil(log2 N)*L, Mixing L
    row = df.set_index("workers").loc[5]
    assert row["OneToAll_ms"] == pytest.approx(8 * link, rel=1e-12)
    assert row["TreeAllReduce_ms"] == pytest.approx(6 * link, rel=1e-12)
    assert row["ButterflyAllReduce_ms"] == pytest.approx(3 * link, rel=1e-12)
    assert row["ButterflyMixing_ms"] == pytest.approx(link, rel=1e-12)
    one = df.set_index("workers").loc[1]
    assert one[["OneToAll_ms", "TreeAllReduce_ms", "ButterflyAllReduce_ms"]].tolist() == [0, 0, 0]
    assert one["ButterflyMixing_ms"] == pytest.approx(link, rel=1e-12)  # Paleo's N=1 quirk


def test_weak_scaling_profiles_once_and_speedup_is_n_t1_over_tn():
    df = estimate(build_graph(SMALL), device="K40", network="infiniband", software="mxnet",
                  workers=[1, 2, 4])
    assert df["batch_size"].tolist() == [10, 20, 40]
    assert df["per_worker_batch"].tolist() == [10, 10, 10]
    assert df["time_comp_ms"].nunique() == 1
    lt = layer_times(build_graph(SMALL), device="K40", ppp_comp=0.49)
    assert df["time_fwd_ms"][0] == pytest.approx(lt["forward_ms"].sum(), rel=1e-12)
    assert df["time_bwd_ms"][0] == pytest.approx(lt["backward_ms"].sum(), rel=1e-12)
    upd = update_time(SMALL_PARAMS, get_paleo_device("K40")).total_ms
    assert df["time_apply_ms"][0] == pytest.approx(upd, rel=1e-12)   # at PPP 1, not 0.49
    t = df["time_comp_ms"] + df["TreeAllReduce_ms"]
    assert df["speedup_TreeAllReduce"].tolist() == pytest.approx(
        [n * t[0] / t[i] for i, n in enumerate([1, 2, 4])], rel=1e-12)


def test_strong_scaling_uses_ceil_batch_and_t1_over_tn():
    df = estimate(build_graph(SMALL), device="K20", network="ethernet20", software="caffe",
                  scaling="strong", workers=[1, 3, 4])
    assert df["batch_size"].tolist() == [10, 10, 10]
    assert df["per_worker_batch"].tolist() == [10, 4, 3]          # ceil(10/N), bug B7
    at4 = layer_times(build_graph(SMALL), device="K20", ppp_comp=0.21, batch=4)
    assert df["time_fwd_ms"][1] == pytest.approx(at4["forward_ms"].sum(), rel=1e-12)
    t = df["time_comp_ms"] + df["OneToAll_ms"]
    assert df["speedup_OneToAll"].tolist() == pytest.approx([1, t[0] / t[1], t[0] / t[2]],
                                                            rel=1e-12)


def test_speedups_refer_to_one_worker_even_if_not_listed():
    a = estimate(build_graph(SMALL), device="K20", network="ethernet", workers=[1, 4])
    b = estimate(build_graph(SMALL), device="K20", network="ethernet", workers=[4])
    assert b["speedup_TreeAllReduce"][0] == a["speedup_TreeAllReduce"][1]


def test_pipeline_takes_max_of_compute_and_memory_per_layer():
    g = build_graph(SMALL)
    df = estimate(g, device="K20", network="ethernet", workers=[1], use_pipeline=True)
    lt = layer_times(g, device="K20")
    fwd = sum(max(c, m) for c, m in zip(lt["forward_comp_ms"], lt["forward_mem_ms"]))
    bwd = sum(max(cd + cf, md + mf) for cd, cf, md, mf in zip(
        lt["backward_data_comp_ms"], lt["backward_filter_comp_ms"],
        lt["backward_data_mem_ms"], lt["backward_filter_mem_ms"]))
    upd = update_time(SMALL_PARAMS, get_paleo_device("K20"))
    assert df["time_fwd_ms"][0] == pytest.approx(fwd, rel=1e-12)
    assert df["time_bwd_ms"][0] == pytest.approx(bwd, rel=1e-12)
    assert df["time_apply_ms"][0] == pytest.approx(max(upd.comp_ms, upd.comm_ms), rel=1e-12)
    plain = estimate(g, device="K20", network="ethernet", workers=[1])
    assert df["time_comp_ms"][0] < plain["time_comp_ms"][0]


def test_same_inputs_give_identical_tables():
    kw = dict(device="K80", network="ethernet20", software="tensorflow", scaling="strong")
    a = estimate(build_graph(SMALL), **kw)
    b = estimate(PaleoNet(build_graph(SMALL)), **kw)
    assert a.equals(b)


def test_paleo_net_profiles_each_batch_once(monkeypatch):
    import simulator.paleo.net as net_module
    calls = []
    real = net_module.build_profile

    def counting(graph, *, version):
        calls.append((graph.batch, version))
        return real(graph, version=version)
    monkeypatch.setattr(net_module, "build_profile", counting)
    pnet = PaleoNet(build_graph(SMALL))
    for device in ("K20", "K40", "TITAN_X"):
        estimate(pnet, device=device, network="ethernet", scaling="strong", workers=[1, 2, 4, 8])
    assert sorted(calls) == [(2, "dec2016"), (3, "dec2016"), (5, "dec2016"), (10, "dec2016")]


# ---------------------------------------------------------------------------------------------
# model parallelism: critical path over branches

def _branchy(nested: bool) -> dict:
    inner = {"b0": conv("x", [1, 1, 16, 8], parents=[]),
             "b1a": conv("x", [1, 1, 16, 16], parents=[]),
             "b1b": conv("b1a", [3, 3, 16, 16])}
    if nested:   # Inception 7b/7c-style branch inside a branch (Paleo crashes, bug B11)
        inner.update({"b1c": conv("b1b", [1, 3, 16, 8]), "b1d": conv("b1b", [3, 1, 16, 32]),
                      "cat1": {"type": "Concatenate", "parents": ["b1c", "b1d"], "dim": 3}})
        last = "cat1"
    else:
        last = "b1b"
    inner["cat"] = {"type": "Concatenate", "parents": ["b0", last], "dim": 3}
    return {"name": "branchy", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [8, 16, 16, 3]},
        "stem": conv("data", [3, 3, 3, 16]),
        "mix": {"type": "Block", "parents": ["stem"], "endpoint": "cat", "layers": inner},
        "head": conv("mix/cat", [1, 1, 48 if nested else 24, 16]),
    }}


@pytest.mark.parametrize("nested", [False, True])
def test_model_parallel_lowerbound_takes_max_over_branches(nested):
    g = build_graph(_branchy(nested))
    df = estimate(g, device="K20", ppp_comp=0.5, ppp_comm=0.5, parallel="model")
    assert df["bound"].tolist() == ["lowerbound", "upperbound"]
    lt = layer_times(g, device="K20", ppp_comp=0.5).set_index("layer")
    for col, phase in (("time_fwd_ms", "forward_ms"), ("time_bwd_ms", "backward_ms")):
        t = lt[phase]
        if nested:
            b1 = t["mix/b1a"] + t["mix/b1b"] + max(t["mix/b1c"], t["mix/b1d"]) + t["mix/cat1"]
        else:
            b1 = t["mix/b1a"] + t["mix/b1b"]
        lower = t["data"] + t["stem"] + max(t["mix/b0"], b1) + t["mix/cat"] + t["head"]
        assert df[col][0] == pytest.approx(lower, rel=1e-12)
        assert df[col][1] == pytest.approx(t.sum(), rel=1e-12)
        assert df[col][0] < df[col][1]
    assert df["time_comp_ms"].tolist() == pytest.approx(
        (df["time_fwd_ms"] + df["time_bwd_ms"]).tolist(), rel=1e-12)


def test_critical_path_picks_longest_branch_deterministically():
    g = build_graph(_branchy(False))
    w = {layer.name: 1.0 for layer in g.layers}
    length, path = critical_path(g, w)
    # data, stem, b1a, b1b, cat, head: the two-layer branch is the longer one
    assert length == 6.0
    assert path == ("data", "stem", "mix/b1a", "mix/b1b", "mix/cat", "head")
    w["mix/b0"] = 2.0                      # now both branches weigh 2: the earlier one wins
    assert critical_path(g, w)[1][2] == "mix/b0"


# ---------------------------------------------------------------------------------------------
# Paleo's one-weird-trick nets: remote fetches (B3, B4, B4b) and the hybrid mode (B5)

K20_BW = 208.0          # K20's memory "GB/s" label
PCIE2_GBPS = 64.0       # pcie2: 8 "GB/s"
PPP_COMP, PPP_COMM = 0.46, 0.75           # cuda-convnet2
POOL5_BYTES = 128 * 5 * 5 * 256 * 4       # the whole input of each fc6 split


def act_bytes(k):
    """One dropout6 / dropout7 split's output: 4096/k channels of 128 images."""
    return 128 * (4096 // k) * 4


def dev_fetch(nbytes):
    """Hand formula: a remote fetch at the device memory bandwidth, with ppp_comm."""
    return nbytes / GIB / K20_BW * 1e3 / PPP_COMM


def net_fetch(nbytes, halvings=0):
    """Hand formula: a hybrid remote fetch at the network's "GB/s" (Gbit/s / 8) over 2^30."""
    return nbytes / GIB / (PCIE2_GBPS / 8 / 2 ** halvings) * 1e3 / PPP_COMM


def alex(k):
    return load_net(PALEO_NETS / f"alex_v2_{k}gpu.json")


def chain(t, s, k_prefix="parallel_fc67/"):
    """Per-layer times of split ``s``'s chain fc6 -> dropout6 -> concat6 -> fc7 -> dropout7."""
    return sum(t[f"{k_prefix}{n}@{s}"] for n in ("fc6", "dropout6", "concat6", "fc7",
                                                 "dropout7"))


@requires_shared
def test_b3_every_split_and_the_join_fetch_remotely():
    terms = fetch_terms(alex(4))
    by_layer = {}
    for t in terms:
        by_layer.setdefault(t.layer, []).append((t.parent, t.nbytes, t.halvings))
    # "0" != 0: split 0 fetches pool5 too, and concat7 fetches from all 4 splits
    for s in range(4):
        assert by_layer[f"parallel_fc67/fc6@{s}"] == [("pool5", POOL5_BYTES, 0)]
        assert [p for p, _, _ in by_layer[f"parallel_fc67/concat6@{s}"]] == [
            f"parallel_fc67/dropout6@{t}" for t in range(4) if t != s]
    assert [p for p, _, _ in by_layer["concat7"]] == [f"parallel_fc67/dropout7@{t}"
                                                      for t in range(4)]
    assert set(by_layer) == ({f"parallel_fc67/fc6@{s}" for s in range(4)}
                             | {f"parallel_fc67/concat6@{s}" for s in range(4)} | {"concat7"})
    assert fetch_terms(alex(1)) == ()


@requires_shared
def test_b4_halving_is_cumulative_across_parents():
    terms = fetch_terms(alex(8))
    halvings = {}
    for t in terms:
        halvings.setdefault(t.layer, []).append(t.halvings)
    # device 0 (int) reads splits 4..7 across groups: bw/2, /4, /8, /16
    assert halvings["concat7"] == [0, 0, 0, 0, 1, 2, 3, 4]
    # split 0 reads 1..3 in its group, then 4..7 across
    assert halvings["parallel_fc67/concat6@0"] == [0, 0, 0, 1, 2, 3, 4]
    # split 4 reads 0..3 across, and the halved value sticks for 5..7 in its own group
    assert halvings["parallel_fc67/concat6@4"] == [1, 2, 3, 4, 4, 4, 4]
    assert halvings["parallel_fc67/fc6@5"] == [0]      # one parent: never halved


@requires_shared
@pytest.mark.parametrize("k", [2, 4])
def test_model_parallel_bounds_by_hand(k):
    g = alex(k)
    df = estimate(g, device="K20", ppp_comp=PPP_COMP, ppp_comm=PPP_COMM,
                  parallel="model").set_index("bound")
    lt = layer_times(g, device="K20", ppp_comp=PPP_COMP).set_index("layer")
    fc6 = dev_fetch(POOL5_BYTES)                     # each split fetches pool5 (B3)
    cat6 = (k - 1) * dev_fetch(act_bytes(k))         # each concat6 fetches the other splits
    cat7 = k * dev_fetch(act_bytes(k))               # concat7 fetches all k splits (B3)
    fetch_total = k * (fc6 + cat6) + cat7
    unsplit = [n for n in lt.index if "@" not in n]
    for col, phase in (("time_fwd_ms", "forward_ms"), ("time_bwd_ms", "backward_ms")):
        t = lt[phase]
        assert df.loc["upperbound", col] == pytest.approx(t.sum() + fetch_total, rel=1e-12)
        lower = t[unsplit].sum() + cat7 + chain(t, 0) + fc6 + cat6
        assert df.loc["lowerbound", col] == pytest.approx(lower, rel=1e-12)


@requires_shared
def test_model_parallel_one_gpu_net_has_equal_bounds():
    g = alex(1)
    df = estimate(g, device="K20", software="cuda-convnet2", parallel="model")
    data = estimate(g, device="K20", network="pcie2", software="cuda-convnet2", workers=[1])
    assert df["time_fwd_ms"].tolist() == pytest.approx([data["time_fwd_ms"][0]] * 2, rel=1e-12)
    assert df["time_bwd_ms"].tolist() == pytest.approx([data["time_bwd_ms"][0]] * 2, rel=1e-12)


@requires_shared
@pytest.mark.parametrize("parallel", ["model", "data"])
def test_b4b_eight_splits_crash_in_paleo_outside_hybrid(parallel):
    kw = {} if parallel == "model" else {"network": "pcie2"}
    with pytest.raises(PaleoCrashError, match=r"B4b.*concat6@0.*dropout6@4|concat6@0.*B4b"):
        estimate(alex(8), device="K20", software="cuda-convnet2", parallel=parallel, **kw)
    assert issubclass(PaleoCrashError, InfeasibleError)


@requires_shared
def test_hybrid_one_worker_is_data_parallel():
    g = alex(1)
    df = estimate(g, device="K20", network="pcie2", software="cuda-convnet2", parallel="hybrid",
                  hybrid_workers=1).set_index("part")
    data = estimate(g, device="K20", network="pcie2", software="cuda-convnet2", workers=[1])
    assert df.loc["data", ["time_fwd_ms", "time_bwd_ms", "time_apply_ms"]].tolist() == \
        pytest.approx([data["time_fwd_ms"][0], data["time_bwd_ms"][0],
                       data["time_apply_ms"][0]], rel=1e-12)
    assert df.loc["data", "time_sync_ms"] == 0.0
    assert (df.loc["model", ["time_fwd_ms", "time_bwd_ms", "time_apply_ms"]] == 0).all()
    assert df.loc["total", "time_ms"] == pytest.approx(data["time_comp_ms"][0], rel=1e-12)


@requires_shared
@pytest.mark.parametrize("k", [2, 4])
def test_hybrid_parts_by_hand(k):
    g = alex(k)
    df = estimate(g, device="K20", network="pcie2", software="cuda-convnet2", parallel="hybrid",
                  hybrid_workers=k).set_index("part")
    assert df["workers"].tolist() == [k] * 3 and df["batch_size"].tolist() == [128 * k] * 3
    lt = layer_times(g, device="K20", ppp_comp=PPP_COMP).set_index("layer")
    dev = get_paleo_device("K20")
    unsplit = [n for n in lt.index if "@" not in n]
    # DP part: unsplit layers plus concat7's k fetches over the network ("GB/s" = 64/8)
    dp_params = 23296 + 307392 + 663936 + 884992 + 590080 + 4097000     # conv1..5, fc8
    mp_params = k * (5 * 5 * 256 * 4096 // k + 4096 // k + 4096 * 4096 // k + 4096 // k)
    assert build_profile(g).params == dp_params + mp_params
    link = dp_params * 4 / (PCIE2_GBPS / 8 * 1e9) * 1e3 / PPP_COMM
    for col, phase in (("time_fwd_ms", "forward_ms"), ("time_bwd_ms", "backward_ms")):
        assert df.loc["data", col] == pytest.approx(
            lt.loc[unsplit, phase].sum() + k * net_fetch(act_bytes(k)), rel=1e-12)
    assert df.loc["data", "time_apply_ms"] == pytest.approx(
        update_time(dp_params, dev).total_ms, rel=1e-12)
    assert df.loc["data", "time_sync_ms"] == pytest.approx(
        2 * math.ceil(math.log2(k)) * link, rel=1e-12)
    # MP part: one split's chain with its fetches, then (m - t_fetch)*k + t_fetch, where
    # t_fetch counts pool5's *elements* over 2^30 at 8 "GB/s", without PPP (bug B5)
    t_fetch = 128 * 5 * 5 * 256 / GIB / 8 * 1e3 * (k - 1)
    for col, phase in (("time_fwd_ms", "forward_ms"), ("time_bwd_ms", "backward_ms")):
        m = chain(lt[phase], 0) + net_fetch(POOL5_BYTES) + (k - 1) * net_fetch(act_bytes(k))
        assert df.loc["model", col] == pytest.approx((m - t_fetch) * k + t_fetch, rel=1e-12)
    assert df.loc["model", "time_apply_ms"] == pytest.approx(
        update_time(mp_params, dev).total_ms, rel=1e-12)
    assert df.loc["model", "time_sync_ms"] == 0.0
    cols = ["time_fwd_ms", "time_bwd_ms", "time_apply_ms", "time_sync_ms", "time_ms"]
    assert df.loc["total", cols].tolist() == pytest.approx(
        (df.loc["data", cols] + df.loc["model", cols]).tolist(), rel=1e-12)


@requires_shared
def test_hybrid_eight_splits_runs_with_halved_fetches():
    g = alex(8)
    df = estimate(g, device="K20", network="pcie2", software="cuda-convnet2", parallel="hybrid",
                  hybrid_workers=8).set_index("part")
    lt = layer_times(g, device="K20", ppp_comp=PPP_COMP).set_index("layer")
    unsplit = [n for n in lt.index if "@" not in n]
    # concat7: 4 fetches at full bandwidth, then /2, /4, /8, /16 (B3 + B4)
    cat7 = sum(net_fetch(act_bytes(8), h) for h in (0, 0, 0, 0, 1, 2, 3, 4))
    assert df.loc["data", "time_fwd_ms"] == pytest.approx(
        lt.loc[unsplit, "forward_ms"].sum() + cat7, rel=1e-12)
    # the slowest split (4..7, whose concat6 sees bw/2../16 and keeps /16) sets the MP bound
    cat6_slow = sum(net_fetch(act_bytes(8), h) for h in (1, 2, 3, 4, 4, 4, 4))
    m = chain(lt["forward_ms"], 4) + net_fetch(POOL5_BYTES) + cat6_slow
    t_fetch = 128 * 5 * 5 * 256 / GIB / 8 * 1e3 * 7
    assert df.loc["model", "time_fwd_ms"] == pytest.approx((m - t_fetch) * 8 + t_fetch,
                                                           rel=1e-12)


@requires_shared
def test_hybrid_speedups_grow_with_workers():
    # the one-weird-trick case study: K20, pcie2, cuda-convnet2, 128 images per worker
    totals = []
    for k in (1, 2, 4, 8):
        df = estimate(alex(k), device="K20", network="pcie2", software="cuda-convnet2",
                      parallel="hybrid", hybrid_workers=k).set_index("part")
        totals.append(df.loc["total", "time_ms"])
    speedups = [k * totals[0] / t for k, t in zip((1, 2, 4, 8), totals)]
    assert speedups[0] == 1.0
    assert 1 < speedups[1] < 2 and speedups[1] < speedups[2] < 4 and speedups[2] < speedups[3] < 8


@requires_shared
def test_inception_model_parallel_is_computed_not_crashed():
    # Paleo crashes here (nested branches, bug B11); the longest path is what its rule means
    g = load_net(PALEO_NETS / "inception_v3.json")
    df = estimate(g, device="K40", software="tensorflow", parallel="model").set_index("bound")
    assert 0 < df.loc["lowerbound", "time_fwd_ms"] < df.loc["upperbound", "time_fwd_ms"]
    lt = layer_times(g, device="K40", ppp_comp=0.62)
    assert df.loc["upperbound", "time_fwd_ms"] == pytest.approx(lt["forward_ms"].sum(), rel=1e-12)
