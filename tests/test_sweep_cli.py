"""`paleosim sweep`: output formats, the default output folder, dry runs, the progress bar and
one-line errors."""
from __future__ import annotations

import io
import json
import sys

import pandas as pd
import pytest
import yaml

from simulator.cli import main
from simulator.commands.sweep import ProgressBar

BASE = {"workload": {"net": "alexnet_owt", "batch": 8},
        "system": {"topology": "dgx2h"},
        "strategy": {"kind": "data_parallel"}}


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": BASE,
                                    "grid": {"strategy.workers": [2, 32],
                                             "strategy.algorithm": ["ring", "tree"]}},
                                   sort_keys=False))
    return path


def test_csv_output_is_the_results_file(spec_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", str(spec_file), "--out", str(out), "--executor", "serial",
                 "--format", "csv"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    table = pd.read_csv(io.StringIO(printed.out))
    pd.testing.assert_frame_equal(table.drop(columns="wall_s"),
                                  pd.read_csv(out / "results.csv").drop(columns="wall_s"))
    assert table["strategy.workers"].tolist() == [1, 1, 2, 2, 32, 32]
    assert table["status"].tolist() == ["ok"] * 4 + ["infeasible"] * 2
    assert (out / "spec.yaml").read_text() == spec_file.read_text()
    assert json.loads((out / "spec.resolved.json").read_text())["name"] == "tiny"


def test_table_output_summarises(spec_file, tmp_path, capsys):
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "o"), "--jobs", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"# tiny: 6 points (4 ok, 2 infeasible, 0 error); 6 computed, 0 from "
                        f"the journal; results in {tmp_path / 'o' / 'results.csv'}")
    assert lines[1].split()[:5] == ["strategy.workers", "strategy.algorithm", "status",
                                    "iteration_s", "samples_per_s"]
    assert len(lines) == 8
    assert "the topology has 16 GPUs, 32 asked for" in lines[-1]


def test_json_output_and_default_folder(spec_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(spec_file), "--executor", "serial", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 6 and records[0]["status"] == "ok"
    assert (tmp_path / "results" / "tiny" / "results.csv").is_file()
    assert (tmp_path / "results" / "tiny" / "rows.jsonl").is_file()


def test_dry_run_lists_points_and_writes_nothing(spec_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(spec_file), "--dry-run", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table.columns.tolist() == ["point_id", "strategy.workers", "strategy.algorithm",
                                      "workers"]
    assert len(table) == 6 and table["point_id"].is_unique
    assert not (tmp_path / "results").exists()


def test_bad_spec_is_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"strategy.algorithm": ["rng"]}}))
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"paleosim: error: {path}: grid.strategy.algorithm: unknown "
                          "algorithm 'rng'")
    assert err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_progress_bar_on_request(spec_file, tmp_path, capsys):
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "o"), "--executor", "serial",
                 "--progress"]) == 0
    err = capsys.readouterr().err
    assert "6/6" in err


def test_no_progress_bar_when_not_a_terminal(spec_file, tmp_path, capsys):
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "o"),
                 "--executor", "serial"]) == 0
    assert capsys.readouterr().err == ""


def test_plain_progress_bar(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for done in (0, 5, 10):
        bar(done, 10)
    bar.close()
    text = stream.getvalue()
    assert text.endswith("[##############################] 10/10 points\n")
    assert "[###############...............] 5/10 points" in text


def test_help_names_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    for option in ("--out", "--jobs", "--executor", "--scheduler", "--format", "--progress",
                   "--no-progress", "--retry-errors", "--dry-run"):
        assert option in text


def test_dask_executor_needs_a_scheduler(spec_file, tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    assert main(["sweep", str(spec_file), "--out", str(tmp_path / "o"),
                 "--executor", "dask"]) == 2
    assert "scheduler" in capsys.readouterr().err


def test_tqdm_is_used_when_installed(monkeypatch):
    import types

    class FakeTqdm:
        made = []

        def __init__(self, **kwargs):
            self.kwargs, self.n, self.closed = kwargs, kwargs.get("initial", 0), False
            FakeTqdm.made.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    stream = io.StringIO()
    bar = ProgressBar(stream)
    for done in (3, 5, 10):  # 3 points came from the journal
        bar(done, 10)
    bar.close()
    (made,) = FakeTqdm.made
    assert made.kwargs["total"] == 10 and made.kwargs["initial"] == 3
    assert made.kwargs["file"] is stream
    assert made.n == 10 and made.closed and stream.getvalue() == ""
