"""Published-result regression: every row of the project's reference table
(``simulator/validation/reference.json``) is simulated with the shipped nets, the calibrated
device catalog and the topology presets, and judged against its tolerance (15% for
high-confidence rows, 25% for medium, a trend check for low, at least the figure for lower
bounds). A known miss may move either way (closer is reported, never a failure); the claim its
reason makes is tested (tests/test_claims.py, and here for the slow rows). Pending rows are
skipped with their reason. A failure prints the whole error table. Every row's figures in
docs/VALIDATION.md's generated table are checked against the simulation, and the README's
summary against that table.

The fast rows run once for the module (about 40 s on a 2-core machine); ptdp-39b and ptdp-146b
run in tests of their own marked ``slow`` (CI runs them).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from simulator.errors import SpecError, UnknownNameError
from simulator.validation import (ReferenceTable, build_case, load_reference, parse_table,
                                  run_validation)
from simulator.validation.paleo_cases import check_paleo_spec

REPO = Path(__file__).resolve().parents[1]
PALEO_NETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paleo" / "nets"
TABLE = load_reference()
#: Rows whose simulation takes more than a few seconds (measured on a 2-core machine, see
#: docs/VALIDATION.md): each runs in its own slow test.
SLOW_ROWS = ("ptdp-39b", "ptdp-146b")  # minutes each (146b: 3 to 4.5 min, 4 GB); CI runs them
#: Rows too expensive to run in the test suite at all (none today).
EXPENSIVE_ROWS: dict[str, str] = {}
FAST = ",".join(r.id for r in TABLE.rows if r.id not in SLOW_ROWS and r.id not in EXPENSIVE_ROWS)


def error_table(frame: pd.DataFrame) -> str:
    cols = ["id", "confidence", "role", "status", "published", "predicted", "error",
            "tolerance", "verdict"]
    with pd.option_context("display.width", 200, "display.max_rows", None):
        return frame[cols].to_string(index=False)


@pytest.fixture(scope="module")
def fast_result():
    return run_validation(rows=FAST)


def _doc_rows() -> dict[str, dict[str, str]]:
    """The per-row table of docs/VALIDATION.md's generated block: id -> column -> cell."""
    import re
    text = (REPO / "docs" / "VALIDATION.md").read_text()
    block = text[text.index("<!-- validate:begin -->"):text.index("<!-- validate:end -->")]
    header, rows = None, {}
    for line in block.splitlines():
        if not line.startswith("| "):
            header = None if not line.strip() else header
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if cells[0] == "id":
            header = cells
        elif header and header[:2] == ["id", "metric"] and not line.startswith("|---"):
            rows[cells[0]] = dict(zip(header, cells))
    return rows


def check_doc(frame: pd.DataFrame) -> None:
    """docs/VALIDATION.md shows these rows' predictions, errors and verdicts as they are now."""
    from simulator.commands.validate import _display_rows
    doc = _doc_rows()
    shown = _display_rows(frame, False)
    for rec in shown.to_dict("records"):
        assert rec["id"] in doc, f"{rec['id']} missing from docs/VALIDATION.md"
        for column in ("published", "predicted", "error", "verdict"):
            assert doc[rec["id"]][column] == rec[column], (
                f"docs/VALIDATION.md, row {rec['id']}, {column}: {doc[rec['id']][column]!r}, "
                f"the code gives {rec[column]!r}; run python3 experiments/make_validation_doc.py")


def test_the_validation_doc_shows_what_the_code_gives(fast_result):
    check_doc(fast_result.rows)


def test_the_readme_summary_is_the_validation_docs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_validation_doc",
                                                  REPO / "experiments" / "make_validation_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    doc = (REPO / "docs" / "VALIDATION.md").read_text()
    block = doc[doc.index(mod.BEGIN) + len(mod.BEGIN):doc.index(mod.END)]
    readme = (REPO / "README.md").read_text()
    shown = readme[readme.index(mod.SUMMARY_BEGIN) + len(mod.SUMMARY_BEGIN):
                   readme.index(mod.SUMMARY_END)]
    assert shown == "\n" + mod.summary_lines(block)


def judge(rec: dict, row, table: str) -> None:
    """Assert the row's verdict for its status; the message is the whole error table."""
    msg = f"row {row.id}: verdict {rec['verdict']}\n{table}"
    if row.bound == "lower":
        assert rec["verdict"] == "bound ok", msg
        assert rec["predicted"] >= rec["published"], msg
    elif row.status == "known_miss":
        # a known miss may move either way: closer is reported ("now passes"), never a failure;
        # its reason is a claim tested by tests/test_claims.py
        assert rec["verdict"] in ("known miss", "now passes"), msg
    elif row.judged:
        assert rec["abs_error"] <= rec["tolerance"], msg
        assert rec["verdict"] == "pass", msg
    else:
        assert rec["verdict"] == "trend ok", msg


@pytest.mark.parametrize("row_id", [r.id for r in TABLE.rows if r.id not in SLOW_ROWS])
def test_row_within_tolerance(row_id, fast_result):
    row = TABLE.row(row_id)
    if row.status == "pending":
        pytest.skip(f"pending: {row.reason}")
    if row_id in EXPENSIVE_ROWS:
        pytest.skip(f"expensive: {EXPENSIVE_ROWS[row_id]}")
    frame = fast_result.rows
    rec = frame[frame["id"] == row_id].iloc[0].to_dict()
    judge(rec, row, error_table(frame))


@pytest.mark.slow
@pytest.mark.parametrize("row_id", SLOW_ROWS)
def test_slow_row_within_tolerance(row_id):
    row = TABLE.row(row_id)
    if row.status == "pending":
        pytest.skip(f"pending: {row.reason}")
    result = run_validation(rows=row_id)
    judge(result.rows.iloc[0].to_dict(), row, error_table(result.rows))
    check_doc(result.rows)
    if row.status == "known_miss":  # the claim behind its reason, on the same prediction
        from simulator.validation.claims import Context, evaluate
        context = Context(TABLE)
        context._values[row_id] = float(result.rows.iloc[0]["predicted"])
        claim = evaluate(row_id, context)
        assert claim.holds, claim.evidence


def test_no_row_fails_and_the_summary_counts_the_judged_rows(fast_result):
    rows = fast_result.rows
    assert not fast_result.failed, error_table(rows)
    judged = rows[rows["confidence"].isin(["high", "medium"]) & rows["predicted"].notna()
                  & (rows["bound"] == "")]  # lower bounds are judged against their bound only
    summary = fast_result.summary.set_index("scope")
    assert summary.loc["overall: high+medium", "rows"] == len(judged)
    assert summary.loc["overall: high+medium", "max_abs_error"] == pytest.approx(
        judged["abs_error"].max(), rel=1e-12)
    assert summary.loc["overall: without calibration rows", "rows"] == int(
        (judged["role"] != "calibration").sum())
    assert summary.loc["overall: without known misses", "rows"] == int(
        (judged["status"] != "known_miss").sum())


def test_error_targets_over_the_rows_that_are_not_known_misses(fast_result):
    """Issue 6, section 5's figures (median absolute error at most 10%, maximum at most 25%),
    over the high- and medium-confidence rows that are not known misses. Over all rows the
    targets are not met: docs/VALIDATION.md gives both figures and each miss's reason."""
    summary = fast_result.summary.set_index("scope")
    scope = summary.loc["overall: without known misses"]
    assert scope["median_abs_error"] <= 0.10, error_table(fast_result.rows)
    assert scope["max_abs_error"] <= 0.25, error_table(fast_result.rows)


def test_median_error_over_every_judged_row(fast_result):
    """Issue 6, section 5's median (at most 10%) over all high- and medium-confidence rows, known
    misses included (the fast rows; the slow PTD-P rows are known misses at about 19%, so adding
    them cannot lower the median). The maximum is not met: docs/VALIDATION.md."""
    summary = fast_result.summary.set_index("scope")
    assert summary.loc["overall: high+medium", "median_abs_error"] <= 0.10, error_table(
        fast_result.rows)


@pytest.mark.skipif(not PALEO_NETS.is_dir(),
                    reason=f"Paleo's nets not found at {PALEO_NETS} (the shared/ folder "
                           "beside the clone)")
def test_closer_than_paleo_where_the_gpu_is_calibrated_on_itself():
    """Paleo's case studies, with every device calibrated on measurements only (issue 12): on
    the row whose GPU is fitted on measurements of that GPU and whose layout its source states
    (MXNet's K80 dies) paleosim is closer than Paleo's estimator at its best scheme. TensorFlow
    0.8's row was too until issue 16 laid its variables out round-robin as TensorFlow's default
    does: its source states no layout, so it is a known miss whose claim shows the layout
    decides it. Over all 8 rows paleosim is not closer (docs/VALIDATION.md): FireCaffe's K20X
    shares the K40's factor measured under a 2018 stack, and the one-weird-trick rows are
    low-confidence recollections."""
    result = run_validation(rows="firecaffe-nin-*,tf-inception-100,mxnet-inception-128,"
                                 "krizhevsky-*", paleo_nets=PALEO_NETS)
    table = result.paleo.set_index("id")
    assert len(table) == 8 + 1
    assert TABLE.row("tf-inception-100").status == "known_miss"
    for rid in ("mxnet-inception-128",):
        device = TABLE.row(rid).device
        from simulator.catalog import get_device
        assert get_device(device).calibration["status"] == "fitted", rid
        assert abs(table.loc[rid, "error"]) < abs(table.loc[rid, "paleo_error"]), rid
    mean = table.loc["mean |error|"]
    rows = table.drop(index="mean |error|")
    assert mean["error"] == pytest.approx(rows["error"].abs().mean(), rel=1e-12)
    assert mean["paleo_error"] == pytest.approx(rows["paleo_error"].abs().mean(), rel=1e-12)


def test_every_row_is_cited_and_its_case_builds():
    for row in TABLE.rows:
        source = TABLE.sources[row.source]
        assert source.citation.strip() and row.reference.strip(), row.id
        assert row.status == "active" or row.reason.strip(), row.id
        if row.status != "pending":
            build_case(row)
        check_paleo_spec(row)


def test_calibration_rows_are_named_in_the_device_catalog():
    """Each calibrated device's source says which rows calibrated it, and nothing else does."""
    catalog = json.loads((REPO / "simulator" / "catalog" / "devices.json").read_text())
    sources = {d["name"]: " ".join(d["source"]) if isinstance(d["source"], list)
               else d["source"] for d in catalog["devices"]}
    fit_nvls = (REPO / "experiments" / "fit_nvls.py").read_text()
    for row in TABLE.rows:
        if row.role == "calibration" and row.metric == "busbw":  # the NVSwitch's NVLS, not a GPU
            assert f'ROW = "{row.id}"' in fit_nvls, row.id
        elif row.role == "calibration" and row.status != "pending":
            assert "calibrated by experiments/calibrate.py" in sources[row.device], row.id
            assert row.id in sources[row.device], row.id
    for row in TABLE.rows:
        if row.role != "calibration":
            for name, text in sources.items():
                assert f" {row.id}," not in text and not text.endswith(row.id), (row.id, name)


@pytest.mark.slow
def test_devices_json_holds_the_calibration():
    """Re-running the calibration reproduces the factors stored in devices.json."""
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "calibrate.py"),
                           "--check"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "devices.json holds this fit" in proc.stdout


@pytest.mark.skipif(not PALEO_NETS.is_dir(),
                    reason=f"Paleo's nets not found at {PALEO_NETS} (the shared/ folder "
                           "beside the clone)")
def test_paleo_predictions_of_the_case_studies():
    result = run_validation(rows="firecaffe-nin-*,krizhevsky-8*", paleo_nets=PALEO_NETS)
    rows = result.rows.set_index("id")
    # FireCaffe with Paleo's Caffe PPP and TreeAllReduce on its infiniband preset, Paleo's nin
    assert rows.loc["firecaffe-nin-128", "paleo_scheme"] == "TreeAllReduce"
    assert rows.loc["firecaffe-nin-128", "paleo"] == pytest.approx(51.62, rel=1e-3)
    # both K = 8 rows get Paleo's one hybrid estimate (it models the FC-batch-128 variant)
    assert rows.loc["krizhevsky-8", "paleo"] == rows.loc["krizhevsky-8-fc128", "paleo"]
    assert rows.loc["krizhevsky-8", "paleo"] == pytest.approx(6.700, rel=1e-3)
    table = result.paleo
    assert list(table["id"])[-1] == "mean |error|"
    assert table["error"].iloc[-1] == pytest.approx(rows["error"].abs().mean(), rel=1e-12)


# --- the table's schema and the verdict logic, on small synthetic tables ----------------------

def _doc() -> dict:
    return {"tolerances": {"high": 0.15, "medium": 0.25},
            "sources": {"s": {"citation": "a source"}},
            "rows": [{"id": "one", "source": "s", "reference": "Table 1", "description": "d",
                      "metric": "images_per_s", "published": 200.0, "unit": "img/s",
                      "confidence": "high", "device": "P100",
                      "case": {"workload": {"net": "resnet50", "batch": 64},
                               "system": {"topology": "dgx1_p100"},
                               "strategy": {"kind": "data_parallel", "workers": 1}}}]}


@pytest.mark.parametrize("change, field", [
    (lambda r: r.update(status="known_miss"), "rows.one.reason"),
    (lambda r: r.update(confidence="low"), "rows.one.trend"),
    (lambda r: r.update(metric="throughput"), "rows.one.metric"),
    (lambda r: r.update(published=-1), "rows.one.published"),
    (lambda r: r.update(source="nowhere"), "rows.one.source"),
    (lambda r: r.update(colour="red"), "rows.one.colour"),
])
def test_bad_rows_name_the_row_and_field(change, field):
    doc = _doc()
    change(doc["rows"][0])
    with pytest.raises(SpecError) as info:
        parse_table(doc, source="t.json")
    assert field in str(info.value) and "t.json" in str(info.value)


def test_bad_case_names_the_row():
    doc = _doc()
    doc["rows"][0]["case"]["strategy"]["kind"] = "telepathy"
    table = parse_table(doc)
    with pytest.raises(UnknownNameError, match="telepathy"):
        build_case(table.rows[0])
    doc = _doc()
    doc["rows"][0]["case"]["baseline"] = {"workload": {"batch": 1}}
    with pytest.raises(SpecError, match=r"rows\.one\.case\.baseline"):
        build_case(parse_table(doc).rows[0])


def test_unknown_row_pattern_lists_the_rows():
    with pytest.raises(UnknownNameError, match="tfbench-dgx1-resnet50-1"):
        TABLE.select("no-such-row*")


def _two_rows(published: tuple[float, float], confidence: str = "low") -> ReferenceTable:
    doc = _doc()
    one = doc["rows"][0]
    one.update(confidence=confidence, trend=["g"], published=published[0])
    two = copy.deepcopy(one)
    two.update(id="two", published=published[1])
    two["case"]["strategy"] = {"kind": "data_parallel", "workers": 2}
    doc["rows"].append(two)
    return parse_table(doc)


def test_trend_check_follows_the_published_order():
    # two GPUs give more images per second than one: the order 100 < 200 holds, 200 > 100 not
    assert list(run_validation(table=_two_rows((100.0, 200.0))).rows["verdict"]) == \
        ["trend ok", "trend ok"]
    result = run_validation(table=_two_rows((200.0, 100.0)))
    assert list(result.rows["verdict"]) == ["trend FAIL", "trend FAIL"] and result.failed


def test_verdicts_of_judged_rows():
    exact = run_validation(table=_two_rows((1.0, 1.0), "high")).rows
    predicted = exact["predicted"].tolist()
    table = _two_rows((predicted[0] * 1.10, predicted[1] * 1.30), "high")
    result = run_validation(table=table)
    assert list(result.rows["verdict"]) == ["pass", "FAIL"] and result.failed
    assert result.rows["error"].tolist() == pytest.approx([1 / 1.1 - 1, 1 / 1.3 - 1])
    doc = _doc()
    doc["rows"][0].update(status="known_miss", reason="a stated reason",
                          published=predicted[0] * 1.01)
    missed = run_validation(table=parse_table(doc))
    # a known miss that moved inside its tolerance is reported, never a failure
    assert missed.rows["verdict"].iloc[0] == "now passes" and not missed.failed
    assert missed.now_passing == [missed.rows["id"].iloc[0]]
