"""`paleosim topologies` and `paleosim topology describe|export`."""
from __future__ import annotations

import json

import pytest

import topologies
from simulator.cli import main


def test_topologies_lists_every_builder_and_preset(capsys):
    assert main(["topologies", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["name"] for r in rows) == topologies.names()
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["fat_tree"] == "builder" and kinds["selene"] == "preset"
    selene = next(r for r in rows if r["name"] == "selene")
    assert selene["parameters"] == "fat_tree(k=16, server='dgx_a100')"


def test_describe_prints_counts_diameter_and_bisection(capsys):
    assert main(["topology", "describe", "fat_tree(k=4, server='dgx_a100')",
                 "--format", "json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["nodes"] == 20 + 2 * (8 + 8 + 4 + 1 + 1)
    assert info["links"] == 16 + 16 + 16 + 2 * (8 + 8 + 8 + 4)
    assert info["gpus"] == 16 and info["servers"] == 2
    assert info["diameter_hops"] == 10
    assert info["bisection_Bps"] == pytest.approx(8 * 200e9 / 8 * 0.96)  # HDR payload rate
    assert main(["topology", "describe", "dgx2h"]) == 0
    text = capsys.readouterr().out
    assert "bisection_GBps" in text and "diameter_hops" in text


@pytest.mark.parametrize("spec, text", [
    ("nope", "unknown topology 'nope'; valid: "),
    ("fat_tree(k=3)", "k must be even (got 3)"),
    ("missing.json", "missing.json: no such file"),
])
def test_bad_specs_give_one_line_and_exit_2(capsys, spec, text):
    assert main(["topology", "describe", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and text in err and err.startswith("paleosim: error: ")


def test_export_then_describe_the_file(tmp_path, capsys):
    out = tmp_path / "cluster.graphml"
    assert main(["topology", "export", "dgx1_v100", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["topology", "describe", str(out), "--format", "json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["gpus"] == 8 and info["links.nvlink"] == 16


def test_export_refuses_unknown_suffix_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "cluster.txt"
    assert main(["topology", "export", "dgx1_v100", str(out)]) == 2
    assert not out.exists()
    assert "topology files end in .graphml or .json" in capsys.readouterr().err
