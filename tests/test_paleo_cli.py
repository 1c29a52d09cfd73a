"""`paleosim paleo` through simulator.cli.main, and the estimator's argument checking."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.errors import SpecError, UnknownNameError
from simulator.paleo import (DATA_COLUMNS, HYBRID_COLUMNS, MODEL_COLUMNS, PPP, SOFTWARE_PPP,
                             estimate, iteration_ms, resolve_ppp, software_ppp, to_seconds)
from workloads import build_graph
from conftest import PALEO_NETS, requires_shared

TINY = {"name": "tiny", "layers": {
    "data": {"type": "Input", "parents": [], "tensor": [8, 8, 8, 3]},
    "c1": {"type": "Convolution", "parents": ["data"], "filter": [3, 3, 3, 8],
           "strides": [1, 1, 1, 1], "padding": "SAME"},
}}


@pytest.fixture
def tiny_path(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def run_cli(capsys, *args):
    code = main(["paleo", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------------------------------
# the command

@requires_shared
def test_json_is_one_object_per_worker_count(capsys):
    net = str(PALEO_NETS / "nin.json")
    code, out, _ = run_cli(capsys, net, "--device", "K20X", "--network", "infiniband",
                           "--ppp-comp", "0.21", "--ppp-comm", "0.56", "--batch", "1024",
                           "--scaling", "strong", "--workers", "1,2,4,8,16,32,64,128",
                           "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert [r["workers"] for r in rows] == [1, 2, 4, 8, 16, 32, 64, 128]
    assert all(list(r) == list(DATA_COLUMNS) for r in rows)
    # the same numbers as the library, and --software caffe is the same PPP pair
    lib = estimate(net, device="K20X", network="infiniband", software="caffe", batch=1024,
                   scaling="strong")
    assert [r["time_comp_ms"] for r in rows] == lib["time_comp_ms"].tolist()
    assert [r["speedup_TreeAllReduce"] for r in rows] == lib["speedup_TreeAllReduce"].tolist()


def test_table_and_csv_output(capsys, tiny_path):
    code, out, _ = run_cli(capsys, tiny_path, "--device", "K40", "--network", "ethernet",
                           "--software", "tensorflow", "--workers", "1,3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("# tiny on K40, data parallelism")
    assert "TreeAllReduce_ms" in lines[1] and len(lines) == 4
    code, out, _ = run_cli(capsys, tiny_path, "--device", "K40", "--network", "ethernet",
                           "--workers", "2", "--format", "csv")
    assert out.splitlines()[0] == ",".join(DATA_COLUMNS)


@requires_shared
def test_hybrid_and_model_through_the_cli(capsys):
    net = str(PALEO_NETS / "alex_v2_4gpu.json")
    code, out, _ = run_cli(capsys, net, "--device", "K20", "--network", "pcie2",
                           "--ppp-comp", "0.46", "--ppp-comm", "0.75", "--parallel", "hybrid",
                           "--hybrid-workers", "4", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["part"] for r in rows] == ["data", "model", "total"]
    assert list(rows[0]) == list(HYBRID_COLUMNS)
    code, out, _ = run_cli(capsys, net, "--device", "K20", "--software", "cuda-convnet2",
                           "--parallel", "model", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["bound"] for r in rows] == ["lowerbound", "upperbound"]
    assert list(rows[0]) == list(MODEL_COLUMNS)


@requires_shared
def test_paleo_crash_is_one_line_and_exit_3(capsys):
    code, out, err = run_cli(capsys, str(PALEO_NETS / "alex_v2_8gpu.json"), "--device", "K20",
                             "--parallel", "model")
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "B4b" in err and "crashes" in err


@pytest.mark.parametrize("args, message", [
    (["--device", "K2", "--network", "ethernet"],
     "unknown Paleo device 'K2'; valid: CPU_I7, GEFORCE_750_M, GEFORCE_780_TI, K20, K20X, K40, "
     "K80, TITAN_X"),
    (["--device", "K20", "--network", "myrinet"], "unknown Paleo network 'myrinet'; valid: aws"),
    (["--device", "K20", "--network", "ethernet", "--workers", "0"],
     "workers: every worker count must be a positive integer (got 0)"),
    (["--device", "K20", "--network", "ethernet", "--workers", "2,2"],
     "worker counts must be distinct"),
    (["--device", "K20", "--network", "ethernet", "--software", "caffe", "--ppp-comp", "0.5"],
     "either a software stack or explicit PPP factors"),
    (["--device", "K20", "--network", "ethernet", "--ppp-comm", "1.5"], "ppp_comm"),
    (["--device", "K20"], "data parallelism needs a network preset"),
    (["--device", "K20", "--network", "ethernet", "--parallel", "hybrid", "--workers", "4"],
     "workers applies to data parallelism only"),
    (["--device", "K20", "--network", "ethernet", "--batch", "0"], "batch"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tiny_path, args, message):
    code, out, err = run_cli(capsys, tiny_path, *args)
    assert code == 2 and out == ""
    assert err.startswith("paleosim: error: ") and message in err and err.count("\n") == 1


def test_argparse_rejects_bad_choices(capsys, tiny_path):
    for args in (["--software", "theano"], ["--workers", "1,two"], ["--scaling", "linear"]):
        with pytest.raises(SystemExit) as exc:
            main(["paleo", tiny_path, "--device", "K20", "--network", "ethernet", *args])
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "caffe" in err and "comma-separated" in err


def test_help_says_gemm_only(capsys):
    with pytest.raises(SystemExit):
        main(["paleo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "GEMM model" in text and "cuDNN v4" in text and "--use_only_gemm" in text


# ---------------------------------------------------------------------------------------------
# the library's argument checks and helpers

def test_software_table_and_ppp():
    assert {k: (v.comp, v.comm) for k, v in SOFTWARE_PPP.items()} == {
        "caffe": (0.21, 0.56), "cuda-convnet2": (0.46, 0.75), "mxnet": (0.49, 0.72),
        "tensorflow": (0.62, 0.72)}
    with pytest.raises(UnknownNameError, match="caffe, cuda-convnet2, mxnet, tensorflow"):
        software_ppp("theano")
    assert resolve_ppp() == PPP(comp=1.0, comm=1.0)
    assert resolve_ppp(ppp_comp=0.5) == PPP(comp=0.5, comm=1.0)
    for bad in (0, -0.1, 1.01, float("nan"), True, "0.5"):
        with pytest.raises(SpecError, match="in \\(0, 1\\]"):
            PPP(comp=bad, comm=1.0)


def test_estimate_rejects_bad_arguments():
    g = build_graph(TINY)
    base = dict(device="K20", network="ethernet")
    with pytest.raises(UnknownNameError, match="data, hybrid, model"):
        estimate(g, parallel="pipeline", **base)
    with pytest.raises(UnknownNameError, match="2017, dec2016"):
        estimate(g, memory_term="2018", **base)
    with pytest.raises(UnknownNameError, match="strong, weak"):
        estimate(g, scaling="linear", **base)
    with pytest.raises(UnknownNameError, match="valid: aws, ethernet"):
        estimate(g, device="K20", network="token-ring")
    for workers in ([], [1, 0], [1.5], "1,2", [1, 1], [True]):
        with pytest.raises(SpecError):
            estimate(g, workers=workers, **base)
    with pytest.raises(SpecError, match="scaling applies to data parallelism only"):
        estimate(g, parallel="model", scaling="strong", device="K20")
    with pytest.raises(SpecError, match="hybrid_workers"):
        estimate(g, parallel="hybrid", hybrid_workers=0, **base)


def test_to_seconds_and_iteration_time():
    df = estimate(build_graph(TINY), device="K20", network="ethernet", workers=[1, 2])
    s = to_seconds(df)
    assert "time_comp_s" in s and "time_comp_ms" not in s and "speedup_OneToAll" in s
    assert s["TreeAllReduce_s"].tolist() == pytest.approx((df["TreeAllReduce_ms"] / 1e3).tolist())
    assert iteration_ms(df, "TreeAllReduce").tolist() == (
        df["time_comp_ms"] + df["TreeAllReduce_ms"]).tolist()
    with pytest.raises(UnknownNameError, match="ButterflyMixing"):
        iteration_ms(df, "Ring")


def test_device_and_network_names_are_case_insensitive():
    g = build_graph(TINY)
    a = estimate(g, device="k20", network="ETHERNET", workers=[2])
    b = estimate(g, device="K20", network="ethernet", workers=[2])
    assert a.equals(b)
