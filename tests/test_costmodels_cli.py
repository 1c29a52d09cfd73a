"""`paleosim costmodel`, `paleosim energy` and `summary --cost-model` from the command line."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from simulator.cli import main
from simulator.costmodels.accelerator import AcceleratorCostModel, totals
from simulator.costmodels.learned import ExtrapolationWarning, LearnedModel

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TIMINGS = SHARED / "mlperf_prediction"
FODLAM = SHARED / "fodlam"


@pytest.fixture(scope="module")
def small_csvs(tmp_path_factory):
    """The first 150 rows per GPU of V100 and K80 from each timing file, in a temp folder."""
    if not TIMINGS.is_dir():
        pytest.skip(f"mlperf_prediction fixtures not found at {TIMINGS}")
    folder = tmp_path_factory.mktemp("timings")
    paths = []
    for kind in ("conv", "dense"):
        frame = pd.read_csv(TIMINGS / f"layer_timings_{kind}.csv")
        frame = frame[frame["gpu_model"].isin(["V100", "K80"])].groupby("gpu_model").head(150)
        paths.append(folder / f"{kind}.csv")
        frame.to_csv(paths[-1], index=False)
    return paths


@pytest.fixture(scope="module")
def model_file(small_csvs, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "model.json"
    assert main(["costmodel", "fit", *map(str, small_csvs), "--out", str(out),
                 "--epochs", "5", "--seed", "3"]) == 0
    return out


def test_fit_writes_a_loadable_model(model_file, capsys):
    model = LearnedModel.load(model_file)
    assert set(model.kinds) == {"conv", "dense"} and model.seed == 3
    assert model.kinds["conv"].rows == 300 and set(model.kinds["conv"].gpus) == {"V100", "K80"}
    assert model.kinds["conv"].settings["epochs"] == 5


def test_fit_on_selected_gpus(small_csvs, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert main(["costmodel", "fit", str(small_csvs[1]), "--out", str(out), "--gpus", "k80",
                 "--estimator", "ridge"]) == 0
    model = LearnedModel.load(out)
    assert list(model.kinds) == ["dense"] and list(model.kinds["dense"].gpus) == ["K80"]
    assert "dense: 150 rows on K80 (ridge)" in capsys.readouterr().out


def test_eval_prints_errors_per_kind_and_gpu(model_file, small_csvs, capsys):
    assert main(["costmodel", "eval", str(model_file), *map(str, small_csvs),
                 "--format", "csv"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert list(table["gpu"]) == ["V100", "K80", "all"] * 2
    assert (table["rows"] == [150, 150, 300] * 2).all()
    assert (table["mape_pct"] > 0).all()


def test_bad_input_is_one_line_and_exit_2(small_csvs, tmp_path, capsys):
    assert main(["costmodel", "fit", str(small_csvs[0]), "--out", str(tmp_path / "m.json"),
                 "--gpus", "P100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown GPU in the timing files 'P100'" in err
    assert not (tmp_path / "m.json").exists()
    assert main(["summary", "vgg16", "--device", "V100", "--cost-model", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown cost model 'nope'; valid: learned:MODEL.json, " in err
    assert "profiled:PROFILE.csv" in err and "roofline" in err


def test_summary_runs_with_a_learned_model(model_file, capsys):
    with pytest.warns(ExtrapolationWarning) as record:
        code = main(["summary", "vgg16", "--device", "V100", "--batch", "8", "--cost-model",
                     f"learned:{model_file}", "--format", "json"])
    assert code == 0
    assert any("dim_input = 25088 is outside" in str(w.message) for w in record)  # fc6
    doc = json.loads(capsys.readouterr().out)
    assert doc["cost_model"] == f"learned:{model_file}"
    assert doc["totals"]["forward_s"] > 0


def test_gpus_table_lists_the_feature_triples(capsys):
    assert main(["costmodel", "gpus", "--format", "csv"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out)).set_index("gpu")
    assert table.loc["V100", "cores"] == 5120 and table.loc["H100", "cores"] == 16896


def test_energy_net_uses_the_packaged_constants(capsys):
    assert main(["energy", "net", "vgg16", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    from workloads import load_net
    expected = totals(AcceleratorCostModel.packaged().graph_costs(load_net("vgg16", batch=1)))
    assert doc["totals"] == pytest.approx(expected)
    assert len(doc["layers"]) == 16


@pytest.mark.skipif(not FODLAM.is_dir(), reason=f"FODLAM fixtures not found at {FODLAM}")
def test_energy_fodlam_runs_a_config_from_its_checkout(capsys):
    assert main(["energy", "fodlam", str(FODLAM / "config" / "vgg16.json"),
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["total_energy_J"] == pytest.approx(1.016350072, rel=1e-6)
    assert doc["totals"]["total_latency_s"] == pytest.approx(4.309474389, rel=1e-6)


def test_energy_timeline(tmp_path, capsys):
    path = tmp_path / "timeline.csv"
    path.write_text("device,start_s,end_s\ng0,0,1\ng0,2,3\ng1,0,4\n")
    assert main(["energy", "timeline", str(path), "--devices", "g0=V100,g1=A100",
                 "--format", "csv"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out)).set_index("device")
    assert table.loc["g0", "energy_J"] == pytest.approx(300.0 * 2 + 45.0 * 2)
    assert table.loc["g1", "energy_J"] == pytest.approx(400.0 * 4)
    bad = tmp_path / "bad.csv"
    bad.write_text("device,start_s\ng0,0\n")
    assert main(["energy", "timeline", str(bad), "--device", "V100"]) == 2
    assert "bad.csv: columns: the timeline needs" in capsys.readouterr().err
