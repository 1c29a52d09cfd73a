"""The experiment scripts' library functions at tiny sizes, the plots, and `paleosim sweep --plot
--trace`.

The scripts (``experiments/*.py``) are run by ``docs/EXPERIMENTS.md``'s commands; here each one's
``table()`` runs on one or two worker counts and the tests check what is known exactly: speedups
of 1 at one GPU, the ideal equal to the worker count, published values equal to the reference
table's, the conversions of each published metric, and Paleo's speedups equal to the estimator's
own.
"""
from __future__ import annotations

import builtins
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulator.errors import SpecError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import _common  # noqa: E402
import horovod  # noqa: E402
import megatron_weak_scaling as megatron  # noqa: E402
import paleo_case_studies as pcs  # noqa: E402
import tf_dgx1  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make ``import matplotlib`` (and its submodules) fail as if it were not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def _reference(row_id: str):
    from simulator.validation.table import load_reference
    return load_reference().row(row_id)


# ------------------------------------------------------------------------------------ plots

def test_missing_matplotlib_is_one_clear_error(no_matplotlib):
    from simulator.plots import import_matplotlib
    with pytest.raises(SpecError, match=r"paleosim\[plot\]"):
        import_matplotlib()


def _tiny_table() -> pd.DataFrame:
    rows = []
    for series in ("A", "B"):
        for n in (1, 2, 4):
            rows += [{"series": series, "workers": n, "source": "simulated", "variant": "",
                      "speedup": 0.9 * n},
                     {"series": series, "workers": n, "source": "paleo", "variant": "Tree",
                      "speedup": 0.8 * n},
                     {"series": series, "workers": n, "source": "paleo", "variant": "OneToAll",
                      "speedup": 0.5 * n},
                     {"series": series, "workers": n, "source": "ideal", "variant": "",
                      "speedup": float(n)}]
        rows.append({"series": series, "workers": 4, "source": "published", "variant": "",
                     "speedup": 3.0})
    return pd.DataFrame(rows)


def test_scaling_figure_has_a_panel_per_series_and_a_line_per_source_and_variant(tmp_path):
    pytest.importorskip("matplotlib")
    from simulator.plots import save_figure, scaling_figure
    fig = scaling_figure(_tiny_table(), metric="speedup", title="t")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["A", "B"]
    for ax in visible:
        assert len(ax.get_lines()) == 5  # ideal, two Paleo schemes, simulated, published
        published = [line for line in ax.get_lines() if line.get_label() == "published"]
        assert list(published[0].get_ydata()) == [3.0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["ideal (linear)", "Paleo (analytical): Tree",
                      "Paleo (analytical): OneToAll", "simulated (paleosim)", "published"]
    path = tmp_path / "sub" / "f.png"
    save_figure(fig, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]  # no temporary file left
    with pytest.raises(SpecError, match=r"\.png, \.svg or \.pdf"):
        save_figure(fig, tmp_path / "f.gif")


def test_sweep_figure_draws_one_line_per_other_axis_combination():
    pytest.importorskip("matplotlib")
    from simulator.plots import sweep_figure
    from simulator.sweep import SweepSpec, run_sweep
    spec = SweepSpec(engine="paleo", base={"net": "alexnet_owt", "device": "K20",
                                           "network": "ethernet", "batch": 32},
                     grid={"workers": [1, 2, 4], "scheme": ["OneToAll", "TreeAllReduce"]})
    table = run_sweep(spec, executor="serial")
    fig = sweep_figure(table, list(spec.grid))
    throughput, efficiency = fig.axes[:2]
    # each scheme: its throughput and its linear ideal on the left, its efficiency on the right
    assert len(throughput.get_lines()) == 4 and len(efficiency.get_lines()) == 2 + 1
    lines = {line.get_label(): line for line in efficiency.get_lines()}
    one_to_all = table[table["scheme"] == "OneToAll"]
    assert list(lines["scheme=OneToAll"].get_ydata()) == list(one_to_all["scaling_efficiency"])
    with pytest.raises(SpecError, match="not a grid axis"):
        sweep_figure(table, list(spec.grid), x="batch")


# ---------------------------------------------------------------------- the tidy table's parts

def test_published_converts_each_metric():
    from simulator.validation.table import ReferenceRow
    common = dict(source="s", reference="r", description="d", unit="u", confidence="high",
                  device="K40")
    speed = ReferenceRow(id="a", metric="speedup_vs_1gpu", published=6.0,
                         case={"strategy": {"workers": 8}}, **common)
    eff = ReferenceRow(id="b", metric="scaling_efficiency", published=0.75,
                       case={"strategy": {"workers": 16}}, **common)
    rate1 = ReferenceRow(id="c", metric="images_per_s", published=100.0,
                         case={"strategy": {"workers": 1}}, **common)
    rate4 = ReferenceRow(id="d", metric="images_per_s", published=300.0,
                         case={"strategy": {"workers": 4}}, **common)
    step = ReferenceRow(id="e", metric="iteration_time", published=2.0,
                        case={"workload": {"batch": 8},
                              "strategy": {"kind": "parallel3d", "tp": 2, "pp": 2, "dp": 1}},
                        **common)
    recs = _common.published([speed, eff, rate1, rate4, step], experiment="x", series="S",
                             single_gpu={"S": 100.0})
    by_id = {r["reference"]: r for r in recs}
    assert (by_id["a"]["workers"], by_id["a"]["speedup"], by_id["a"]["scaling_efficiency"]) \
        == (8, 6.0, 0.75)
    assert (by_id["b"]["speedup"], by_id["b"]["scaling_efficiency"]) == (12.0, 0.75)
    assert (by_id["d"]["samples_per_s"], by_id["d"]["speedup"]) == (300.0, 3.0)
    assert by_id["c"]["speedup"] == 1.0
    assert (by_id["e"]["workers"], by_id["e"]["iteration_s"], by_id["e"]["samples_per_s"]) \
        == (4, 2.0, 4.0)
    assert math.isnan(by_id["e"]["speedup"])
    assert all(r["source"] == "published" and r["reason"] == "high confidence; s, r"
               for r in recs)


def test_reference_rows_is_empty_for_an_unknown_pattern():
    assert _common.reference_rows("no-such-row-*") == ()
    assert [r.id for r in _common.reference_rows("horovod-vgg16-128")] == ["horovod-vgg16-128"]


def test_paleo_records_match_the_estimator_speedups():
    from simulator.sweep import SweepSpec, run_sweep
    spec = SweepSpec(engine="paleo", base={"net": "nin", "device": "K20X",
                                           "network": "infiniband", "software": "caffe",
                                           "scaling": "weak", "batch": 64},
                     grid={"workers": [1, 2, 8]})
    table = run_sweep(spec, executor="serial")
    recs = _common.paleo(table, experiment="x", series="S")
    assert {r["variant"] for r in recs} == set(_common.PALEO_SCHEMES)
    for r in recs:
        row = table[table["workers"] == r["workers"]].iloc[0]
        # weak scaling: Paleo's own speedup N t1 / tN is the throughput ratio
        assert r["speedup"] == pytest.approx(row[f"speedup_{r['variant']}"], rel=1e-12)
        assert r["iteration_s"] == row["time_comp_s"] + row[f"{r['variant']}_s"]


def test_ideal_is_linear():
    recs = _common.ideal([4, 1, 2, 2], experiment="x", series="S", samples_per_s=10.0)
    assert [(r["workers"], r["speedup"], r["samples_per_s"]) for r in recs] == \
        [(1, 1.0, 10.0), (2, 2.0, 20.0), (4, 4.0, 40.0)]


# ------------------------------------------------------------------------- the four scripts

def test_paleo_case_studies_tiny():
    frame = pcs.table(executor="serial", max_workers=2)
    assert list(frame.columns) == _common.COLUMNS
    assert list(dict.fromkeys(frame["series"])) == [
        pcs.SERIES["firecaffe"].format(batch=256), pcs.SERIES["firecaffe"].format(batch=1024),
        pcs.SERIES["tf"], pcs.SERIES["owt"], pcs.SERIES["mxnet"]]
    sim = frame[frame["source"] == "simulated"]
    fc256 = sim[sim["series"] == pcs.SERIES["firecaffe"].format(batch=256)]
    # the baseline is this very configuration: one K20X at batch 256
    assert fc256.loc[fc256["workers"] == 1, "speedup"].iloc[0] == pytest.approx(1.0, rel=1e-12)
    fc1024 = sim[sim["series"] == pcs.SERIES["firecaffe"].format(batch=1024)]
    one = fc1024[fc1024["workers"] == 1].iloc[0]
    assert one["status"] == "infeasible" and "K20X" in one["reason"]  # 1,024 images: no room
    owt = sim[(sim["series"] == pcs.SERIES["owt"]) & (sim["workers"] == 1)]
    assert sorted(owt["variant"]) == sorted(pcs.OWT_VARIANTS.values())
    assert (owt["speedup"] == 1.0).all()
    assert set(sim.loc[sim["series"] == pcs.SERIES["mxnet"], "variant"]) == set(
        pcs.MXNET_VARIANTS.values())
    ideal = frame[frame["source"] == "ideal"]
    assert (ideal["speedup"] == ideal["workers"]).all()
    pub = frame[frame["source"] == "published"].set_index("reference")
    for row_id in ("firecaffe-nin-128", "tf-inception-100", "krizhevsky-8",
                   "mxnet-inception-128"):
        assert pub.loc[row_id, "speedup"] == _reference(row_id).published
    assert pub.loc["krizhevsky-8-fc128", "variant"] == pcs.OWT_VARIANTS["sequential"]
    # the same configuration as the reference row's case: the validation predicts the same
    from simulator.validation import run_validation
    check = run_validation(rows="krizhevsky-2").rows.iloc[0]
    two = sim[(sim["series"] == pcs.SERIES["owt"]) & (sim["workers"] == 2)
              & (sim["variant"] == pcs.OWT_VARIANTS["all"])]
    assert two["speedup"].iloc[0] == pytest.approx(check["predicted"], rel=1e-12)
    paleo = frame[frame["source"] == "paleo"]
    assert set(paleo.loc[paleo["series"] == pcs.SERIES["owt"], "variant"]) == {"hybrid"}
    fc_paleo = paleo[paleo["series"] == pcs.SERIES["firecaffe"].format(batch=256)]
    assert (fc_paleo.loc[fc_paleo["workers"] == 1, "speedup"] == 1.0).all()


def test_owt_paleo_is_the_hybrid_speedup_of_the_estimator():
    from simulator.paleo import estimate
    (rec,) = pcs.owt_paleo([2])
    kw = dict(device="K20", network="pcie2", software="cuda-convnet2", batch=128,
              parallel="hybrid")
    t1 = estimate("alexnet_owt_1gpu", hybrid_workers=1, **kw).set_index("part")
    t2 = estimate("alexnet_owt_2gpu", hybrid_workers=2, **kw).set_index("part")
    assert rec["speedup"] == pytest.approx(2 * t1.loc["total", "time_ms"]
                                           / t2.loc["total", "time_ms"], rel=1e-12)


def test_tf_dgx1_tiny_is_deterministic_and_uses_the_published_single_gpu():
    first = tf_dgx1.table(executor="serial", nets=("resnet50",), max_workers=2)
    again = tf_dgx1.table(executor="serial", nets=("resnet50",), max_workers=2)
    pd.testing.assert_frame_equal(first, again)
    one = _reference("tfbench-dgx1-resnet50-1").published
    two = _reference("tfbench-dgx1-resnet50-2").published
    pub = first[first["source"] == "published"].set_index("workers")
    assert pub.loc[2, "speedup"] == pytest.approx(two / one, rel=1e-12)
    ideal = first[first["source"] == "ideal"].set_index("workers")
    assert list(ideal.index) == [1, 2, 4, 8]  # the published GPU counts are kept
    assert ideal.loc[8, "samples_per_s"] == pytest.approx(8 * one, rel=1e-12)
    sim = first[first["source"] == "simulated"]
    assert list(sim["workers"]) == [1, 2] and (sim["status"] == "ok").all()
    assert set(sim["variant"]) == {tf_dgx1.VARIANTS["parameter_server"]}
    from simulator.validation import run_validation
    check = run_validation(rows="tfbench-dgx1-resnet50-2").rows.iloc[0]
    assert sim.loc[sim["workers"] == 2, "samples_per_s"].iloc[0] == pytest.approx(
        check["predicted"], rel=1e-12)


def test_horovod_tiny_shows_the_128_gpu_efficiency():
    frame = horovod.table(executor="serial", nets=("vgg16",), max_workers=2)
    pub = frame[frame["source"] == "published"].iloc[0]
    assert (pub["workers"], pub["scaling_efficiency"]) == (
        128, _reference("horovod-vgg16-128").published)
    assert pub["speedup"] == pytest.approx(128 * pub["scaling_efficiency"], rel=1e-12)
    sim = frame[frame["source"] == "simulated"].set_index("workers")
    assert sim.loc[1, "scaling_efficiency"] == 1.0
    assert 0 < sim.loc[2, "scaling_efficiency"] <= 1.0


def test_megatron_tiny_converts_iteration_times_to_model_tflops():
    frame = megatron.table(executor="serial", max_workers=2)
    assert set(frame.loc[frame["source"] != "published", "series"]) == {megatron.README}
    # every published point stays, whatever max_workers leaves out of the simulation
    assert set(frame.loc[frame["source"] == "published", "reference"]) == {
        r.id for r in _common.reference_rows("megatron-v100-*,ptdp-*") if r.status != "pending"}
    ptdp = frame[frame["reference"] == "ptdp-39b"].iloc[0]
    assert (ptdp["workers"], ptdp["tflops_per_gpu"]) == (512, _reference("ptdp-39b").published)
    flops1 = megatron.model_flops("megatron-gpt-1.16b", megatron.README_BATCH)
    frame = frame[frame["series"] == megatron.README]
    pub = frame[frame["source"] == "published"].set_index("workers")
    t1 = _reference("megatron-v100-1b").published
    assert pub.loc[1, "iteration_s"] == t1
    assert pub.loc[1, "tflops_per_gpu"] == pytest.approx(flops1 / t1 / 1e12, rel=1e-12)
    ideal = frame[frame["source"] == "ideal"].set_index("workers")
    assert (ideal["tflops_per_gpu"] == pub.loc[1, "tflops_per_gpu"]).all()  # flat, from 1 GPU
    sim = frame[frame["source"] == "simulated"].set_index("workers")
    assert list(sim.index) == [1, 2]
    if megatron.strategy_available():
        assert (sim["status"] == "ok").all()
        assert sim.loc[2, "tflops_per_gpu"] == pytest.approx(
            megatron.model_flops("megatron-gpt-2.03b", 8) / (2 * sim.loc[2, "iteration_s"])
            / 1e12, rel=1e-12)
        from simulator.validation import run_validation
        check = run_validation(rows="megatron-v100-2b").rows.iloc[0]
        assert sim.loc[2, "iteration_s"] == pytest.approx(check["predicted"], rel=1e-12)


def test_megatron_without_the_strategy_says_so(monkeypatch):
    monkeypatch.setattr(megatron, "strategy_available", lambda: False)
    frame = megatron.table(executor="serial", max_workers=1)
    sim = frame[frame["source"] == "simulated"]
    assert list(sim["status"]) == ["error"]
    assert "strategy not available" in sim["reason"].iloc[0]


def test_megatron_cases_follow_the_reference_rows():
    from simulator.specs import strategy_from_dict
    by_model = {c["preset"]: c for c in megatron.cases(max_workers=None)}
    rows = [r for r in _common.reference_rows("megatron-v100-*,ptdp-*") if r.status != "pending"]
    assert len(rows) == len(by_model)
    for row in rows:
        case = by_model[row.case["workload"]["net"]]
        assert case["batch"] == row.case["workload"]["batch"]
        assert case["gpus"] == _common.case_workers(row.case)
        assert strategy_from_dict(case["strategy"]) == strategy_from_dict(row.case["strategy"])


# ---------------------------------------------------------------------- command lines

def test_script_main_writes_the_csv_without_matplotlib(tmp_path, no_matplotlib, capsys):
    out = tmp_path / "hvd"
    code = horovod.main(["--out", str(out), "--max-workers", "1", "--executor", "serial"])
    assert code == 2
    assert "paleosim[plot]" in capsys.readouterr().err
    assert not out.exists()  # the check comes before any simulation
    assert horovod.main(["--out", str(out), "--max-workers", "1", "--executor", "serial",
                         "--no-plot"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["horovod.csv"]
    table = pd.read_csv(out / "horovod.csv")
    assert list(table.columns) == _common.COLUMNS


def test_script_main_writes_csv_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "dgx1"
    assert tf_dgx1.main(["--out", str(out), "--max-workers", "1", "--executor", "serial"]) == 0
    assert (out / "tf_dgx1.png").read_bytes()[:8] == PNG_MAGIC
    assert "tf_dgx1.csv" in capsys.readouterr().out


SPEC = """\
name: tiny
base:
  workload: {net: alexnet_owt, batch: 8}
  system: {topology: dgx2h}
  strategy: {kind: data_parallel, iterations: 1}
grid:
  strategy.workers: [1, 2]
  strategy.algorithm: [ring, tree]
"""


def test_sweep_plot_and_trace(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from simulator.cli import main
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    plot, trace = tmp_path / "p" / "s.png", tmp_path / "t" / "trace.json"
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--executor", "serial",
                 "--plot", str(plot), "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert plot.read_bytes()[:8] == PNG_MAGIC
    events = json.loads(trace.read_text())
    assert events["otherData"]["workers"] == 2
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    ring2 = results[(results["strategy.workers"] == 2) & (results["strategy.algorithm"] == "ring")]
    # the trace is of the first 2-worker point in grid order, simulated again identically
    assert events["otherData"]["iteration_s"] == ring2["iteration_s"].iloc[0]
    assert f"point {ring2['point_id'].iloc[0]}" in out and "# plot:" in out


def test_sweep_trace_needs_the_simulator(tmp_path, capsys):
    from simulator.cli import main
    spec = tmp_path / "p.yaml"
    spec.write_text("engine: paleo\nbase: {net: nin, device: K20, network: ethernet}\n"
                    "grid: {workers: [1, 2]}\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"),
                 "--trace", str(tmp_path / "t.json")]) == 2
    assert "--trace" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_sweep_plot_without_matplotlib_fails_before_running(tmp_path, capsys, no_matplotlib):
    from simulator.cli import main
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"),
                 "--plot", str(tmp_path / "s.png")]) == 2
    assert "paleosim[plot]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
