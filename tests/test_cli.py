"""The CLI paths: nets, summary, simulate; bad input is one line naming file, field and value,
with exit code 2 and nothing written."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main

CONFIG = """
workload: {net: alexnet_owt, batch: 16}
system:
  topology: "single_switch(servers={servers}, server='titan_node')"
  gpus_per_server: 1
strategy: {kind: data_parallel, workers: 4, overlap: false, algorithm: tree}
"""


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_nets_lists_the_shipped_nets_with_params(capsys):
    code, out, _ = run(capsys, "nets", "--format", "json")
    rows = {r["net"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["vgg16"]["params"] == 138_357_544
    assert rows["vgg16"]["forward_macs_per_sample"] == 15_470_264_320
    assert rows["resnet50"]["params"] == 25_557_032


def test_summary_json_totals_equal_the_sum_of_layers(capsys):
    code, out, _ = run(capsys, "summary", "vgg16", "--device", "V100", "--batch", "8",
                       "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["batch"] == 8 and doc["device"] == "V100"
    assert doc["totals"]["params"] == 138_357_544
    assert doc["totals"]["forward_s"] == pytest.approx(sum(r["forward_s"] for r in doc["layers"]))
    dense = [r for r in doc["layers"] if r["type"] in ("Convolution", "InnerProduct")]
    assert len(dense) == 16
    assert sum(r["forward_flops"] for r in dense) == 2 * 8 * 15_470_264_320


def test_simulate_json_has_one_object_per_worker_count(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)
    code, out, _ = run(capsys, "simulate", str(config), "--workers", "1,2,4", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and [r["workers"] for r in rows] == [1, 2, 4]
    for key in ("workers", "global_batch", "iteration_s", "samples_per_s", "speedup",
                "scaling_efficiency", "compute_s", "exposed_comm_s"):
        assert all(key in r for r in rows)
    assert rows[0]["speedup"] == 1.0
    assert rows[2]["global_batch"] == 64
    assert rows[2]["speedup"] == pytest.approx(rows[2]["samples_per_s"] / rows[0]["samples_per_s"])


@pytest.mark.parametrize("argv, fragment", [
    (["summary", "vgg16", "--device", "V999"], "unknown device 'V999'; valid:"),
    (["summary", "nope_net", "--device", "V100"], "unknown net 'nope_net'; valid:"),
    (["summary", "{tmp}/bad.json", "--device", "V100"], "{tmp}/bad.json: not valid JSON"),
    (["summary", "{tmp}/cycle.json", "--device", "V100"], "{tmp}/cycle.json: layers: the layers "
                                                          "form a cycle"),
    (["summary", "{tmp}/unknown.json", "--device", "V100"], "{tmp}/unknown.json: layers.x.type: "
                                                            "unknown layer type 'Magic'"),
    (["simulate", "{tmp}/bad_config.yaml"], "{tmp}/bad_config.yaml: strategy.workers: must be an "
                                            "integer >= 1 (got 0)"),
    (["simulate", "{tmp}/c.yaml", "--workers", "1,x"], "--workers: must be a comma-separated"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, fragment):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "cycle.json").write_text(json.dumps({"name": "c", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [1, 4, 4, 3]},
        "a": {"type": "Dropout", "parents": ["b"]}, "b": {"type": "Dropout", "parents": ["a"]}}}))
    (tmp_path / "unknown.json").write_text(json.dumps({"name": "u", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [1, 4, 4, 3]},
        "x": {"type": "Magic", "parents": ["data"]}}}))
    (tmp_path / "c.yaml").write_text(CONFIG)
    (tmp_path / "bad_config.yaml").write_text(CONFIG.replace("workers: 4", "workers: 0"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("paleosim: error: ")
    assert fragment.replace("{tmp}", str(tmp_path)) in err


def test_trace_is_not_written_when_the_run_fails(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("workers: 4", "workers: 64"))  # topology fits, run is fine
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("alexnet_owt", "no_such_net"))
    trace = tmp_path / "t.json"
    code, _, _ = run(capsys, "simulate", str(bad), "--trace", str(trace))
    assert code == 2 and not trace.exists()


def test_nets_lists_transformer_presets(capsys):
    code, out, _ = run(capsys, "nets", "--transformers", "--format", "json")
    rows = {r["preset"]: r for r in json.loads(out)}
    assert code == 0
    assert (rows["gpt3-175b"]["layers"], rows["gpt3-175b"]["hidden"]) == (96, 12288)
    assert rows["llama3-70b"]["kv_heads"] == 8
