"""Running sweeps: every row equals the direct call it stands for, speedups are computed against
the right 1-worker row, failures become flagged rows, and executors agree with each other."""
from __future__ import annotations

import json
import math
import sys

import pandas as pd
import pytest

from simulator.config import config_from_dict
from simulator.errors import InfeasibleError, SpecError, UnknownNameError
from simulator.paleo import SCHEMES, estimate
from simulator.simulate import simulate
from simulator.sweep import SweepSpec, run_sweep
from simulator.sweep.engines import SimulateEngine
from simulator.sweep.executors import make_executor

BASE = {"workload": {"net": "alexnet_owt", "batch": 8},
        "system": {"topology": "single_switch(servers={servers}, server='p2.8xlarge')",
                   "gpus_per_server": 8},
        "strategy": {"kind": "data_parallel"}}
GRID = {"strategy.workers": [1, 2, 4], "strategy.algorithm": ["ring", "tree"]}
PALEO = {"net": "nin", "device": "K20X", "network": "infiniband", "software": "caffe",
         "batch": 128}


@pytest.fixture(scope="module")
def serial_table():
    return run_sweep(SweepSpec(base=BASE, grid=GRID), executor="serial")


def test_each_row_is_the_simulation_of_its_point(serial_table):
    assert serial_table["status"].tolist() == ["ok"] * 6
    assert serial_table["reason"].tolist() == [""] * 6
    assert serial_table["strategy.workers"].tolist() == [1, 1, 2, 2, 4, 4]
    assert serial_table["strategy.algorithm"].tolist() == ["ring", "tree"] * 3
    for _, row in serial_table.iterrows():
        config = json.loads(json.dumps(BASE))
        config["strategy"].update(workers=int(row["strategy.workers"]),
                                  algorithm=row["strategy.algorithm"])
        cfg = config_from_dict(config)
        metrics = simulate(cfg.workload, cfg.system, cfg.strategy, seed=0).metrics
        for key, value in metrics.items():
            assert row[key] == value, key
    assert serial_table["wall_s"].gt(0).all()


def test_speedup_is_against_the_one_worker_row_with_the_same_other_inputs(serial_table):
    t = serial_table.set_index(["strategy.algorithm", "strategy.workers"])
    for algorithm in ("ring", "tree"):
        base = t.loc[(algorithm, 1), "samples_per_s"]
        for n in (1, 2, 4):
            expected = t.loc[(algorithm, n), "samples_per_s"] / base
            assert t.loc[(algorithm, n), "speedup"] == expected
            assert t.loc[(algorithm, n), "scaling_efficiency"] == expected / n
    assert t.loc[("ring", 1), "speedup"] == 1.0
    # ring and tree differ at 4 workers, so each must be against its own baseline
    assert t.loc[("ring", 4), "speedup"] != t.loc[("tree", 4), "speedup"]


def test_columns_are_inputs_status_outputs_then_speedups():
    table = run_sweep(SweepSpec(base=BASE, grid={"strategy.workers": [2]}), executor="serial")
    columns = table.columns.tolist()
    assert columns[:4] == ["point_id", "strategy.workers", "status", "reason"]
    assert columns[-3:] == ["speedup", "scaling_efficiency", "wall_s"]
    assert columns.index("iteration_s") > columns.index("reason")
    # the 1-worker baseline was added to the grid, and says so
    assert table["strategy.workers"].tolist() == [1, 2]
    assert table.attrs["sweep"]["added_baseline"] is True


def test_without_a_baseline_point_speedup_is_empty():
    table = run_sweep(SweepSpec(base=BASE, grid={"strategy.workers": [2, 4]}, baseline=False),
                      executor="serial")
    assert table["strategy.workers"].tolist() == [2, 4]
    assert table["status"].tolist() == ["ok", "ok"]
    assert table["speedup"].isna().all() and table["scaling_efficiency"].isna().all()


def test_zipped_topology_shares_the_baseline_of_its_group():
    grid = {"strategy.workers": [1, 8, 16],
            "system.topology": ["server(server='p2.8xlarge')",
                                "single_switch(servers=1, server='p2.8xlarge')",
                                "single_switch(servers=2, server='p2.8xlarge')"],
            "strategy.algorithm": ["ring", "tree"]}
    table = run_sweep(SweepSpec(base=BASE, grid=grid,
                                zip=[["strategy.workers", "system.topology"]]),
                      executor="serial")
    assert table["status"].tolist() == ["ok"] * 6
    t = table.set_index(["strategy.algorithm", "strategy.workers"])
    for algorithm in ("ring", "tree"):
        base = t.loc[(algorithm, 1), "samples_per_s"]
        assert t.loc[(algorithm, 16), "speedup"] == t.loc[(algorithm, 16), "samples_per_s"] / base


def test_process_executor_gives_the_serial_table(serial_table):
    table = run_sweep(SweepSpec(base=BASE, grid=GRID), executor="process", jobs=2)
    pd.testing.assert_frame_equal(table.drop(columns="wall_s"),
                                  serial_table.drop(columns="wall_s"))


@pytest.mark.parametrize("scaling", ["weak", "strong"])
def test_paleo_rows_are_the_estimators(scaling):
    grid = {"scheme": list(SCHEMES), "workers": [1, 2, 4, 8, 16]}
    table = run_sweep(SweepSpec(base={**PALEO, "scaling": scaling}, grid=grid, engine="paleo"),
                      executor="serial")
    assert table["status"].tolist() == ["ok"] * 20
    direct = estimate("nin", device="K20X", network="infiniband", software="caffe", batch=128,
                      scaling=scaling, workers=[1, 2, 4, 8, 16]).set_index("workers")
    for _, row in table.iterrows():
        ref = direct.loc[row["workers"]]
        assert row["batch_size"] == ref["batch_size"]
        assert row["time_comp_s"] == ref["time_comp_ms"] / 1e3
        for scheme in SCHEMES:
            assert row[f"{scheme}_s"] == ref[f"{scheme}_ms"] / 1e3
            assert row[f"speedup_{scheme}"] == ref[f"speedup_{scheme}"]
        scheme = row["scheme"]
        assert row["iteration_s"] == row["time_comp_s"] + row[f"{scheme}_s"]
        assert row["samples_per_s"] == row["batch_size"] / row["iteration_s"]
        # Paleo's speedup (weak N*t1/tN, strong t1/tN) is the sweep's throughput ratio
        assert row["speedup"] == pytest.approx(row[f"speedup_{scheme}"], rel=1e-12)
    assert "result.workers" not in table.columns  # the estimator's workers is the axis


def test_a_point_that_cannot_run_is_a_flagged_row():
    base = {**BASE, "system": {"topology": "dgx2h"}}  # 16 GPUs
    table = run_sweep(SweepSpec(base=base, grid={"strategy.workers": [1, 8, 32]}),
                      executor="serial")
    assert table["status"].tolist() == ["ok", "ok", "infeasible"]
    bad = table.iloc[2]
    assert "the topology has 16 GPUs, 32 asked for" in bad["reason"]
    assert "\n" not in bad["reason"]
    assert math.isnan(bad["iteration_s"]) and math.isnan(bad["speedup"])
    assert table.iloc[1]["speedup"] > 1


def test_out_of_memory_is_a_flagged_row():
    pytest.importorskip("simulator.memory")
    base = {**BASE, "system": {"topology": "dgx2h"}}
    table = run_sweep(SweepSpec(base=base, grid={"workload.batch": [8, 20000],
                                                 "strategy.workers": [2]}),
                      executor="serial")
    assert table.set_index("workload.batch")["status"].to_dict() == {8: "ok",
                                                                      20000: "infeasible"}
    assert "over by" in table.iloc[-1]["reason"]


def test_exceptions_become_rows_and_the_sweep_goes_on(monkeypatch):
    real = SimulateEngine.run

    def flaky(self, config, *, seed, state):
        workers = config["strategy"]["workers"]
        if workers == 2:
            raise InfeasibleError("rank 0 needs 99 GiB\nof memory")
        if workers == 4:
            raise RuntimeError("boom")
        return real(self, config, seed=seed, state=state)

    monkeypatch.setattr(SimulateEngine, "run", flaky)
    table = run_sweep(SweepSpec(base=BASE, grid={"strategy.workers": [1, 2, 4, 8]}),
                      executor="serial")
    assert table["status"].tolist() == ["ok", "infeasible", "error", "ok"]
    assert table["reason"].tolist() == ["", "rank 0 needs 99 GiB of memory",
                                        "RuntimeError: boom", ""]
    assert table.iloc[3]["speedup"] > 1


def test_progress_reports_every_task_and_the_library_prints_nothing(capsys):
    calls = []
    run_sweep(SweepSpec(base=BASE, grid={"strategy.workers": [1, 2, 4]}), executor="serial",
              progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_results_files(tmp_path):
    spec = SweepSpec(base=BASE, grid={"strategy.workers": [1, 2], "workload.batch": [4, 8]},
                     name="files")
    table = run_sweep(spec, executor="serial", out_dir=tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.name != "results.parquet") == [
        "results.csv", "rows.jsonl", "spec.resolved.json"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"),
                                  pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False))))
    resolved = json.loads((out / "spec.resolved.json").read_text())
    assert resolved["grid"] == {"strategy.workers": [1, 2], "workload.batch": [4, 8]}
    assert resolved["base"] == BASE and resolved["engine"] == "simulate"
    assert not list(out.glob(".*"))  # no temporary file left behind
    assert table.attrs["sweep"]["files"][-1].endswith(
        "results.parquet" if (out / "results.parquet").exists() else "results.csv")


def test_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    table = run_sweep(SweepSpec(base=BASE, grid={"strategy.workers": [1, 2]}),
                      executor="serial", out_dir=tmp_path)
    back = pd.read_parquet(tmp_path / "results.parquet")
    assert back.columns.tolist() == table.columns.tolist()
    pd.testing.assert_frame_equal(back.drop(columns=["busiest_link"]),
                                  table.drop(columns=["busiest_link"]), check_dtype=False)
    assert back["busiest_link"].iloc[1] == table["busiest_link"].iloc[1]


def test_executor_arguments_are_checked():
    with pytest.raises(UnknownNameError) as info:
        make_executor("threads")
    assert info.value.valid == ["dask", "process", "serial"]
    with pytest.raises(SpecError, match="positive integer"):
        make_executor("process", jobs=0)
    with pytest.raises(SpecError, match="for the dask executor"):
        make_executor("process", scheduler="tcp://localhost:8786")
    with pytest.raises(SpecError, match="positive integer"):
        run_sweep(SweepSpec(base=BASE), executor="serial", chunk_size=0)


def test_asking_for_dask_without_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(SpecError, match=r"pip install 'paleosim\[dask\]'"):
        run_sweep(SweepSpec(base=BASE), executor="dask", scheduler="tcp://127.0.0.1:1")


def test_a_bad_spec_runs_nothing(tmp_path):
    spec = SweepSpec(base=BASE, grid={"strategy.workers": [1, 2],
                                      "strategy.algorithm": ["ring", "bogus"]})
    with pytest.raises(SpecError, match="bogus"):
        run_sweep(spec, executor="serial", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
