"""`paleosim validate`: the table, the summary, the Paleo columns, formats and exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import simulator.validation as validation
from simulator.cli import main
from simulator.validation import load_reference, parse_table

PALEO_NETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paleo" / "nets"
RESNET = "tfbench-dgx1-resnet50-*"


def run(capsys, *argv):
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_output_lists_rows_summary_and_result(capsys):
    code, out, _ = run(capsys, "--rows", RESNET)
    assert code == 0
    for n in (1, 2, 4, 8):
        assert f"tfbench-dgx1-resnet50-{n}" in out
    assert "overall: high+medium" in out and "source tfbench-2017" in out
    assert "# result: every judged row is within its tolerance or a known miss" in out
    assert "calib" in out  # the one-GPU row is a calibration row


def test_json_has_every_selected_row_with_its_error(capsys):
    code, out, _ = run(capsys, "--rows", RESNET, "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["failed"] is False
    rows = {r["id"]: r for r in data["rows"]}
    assert set(rows) == {f"tfbench-dgx1-resnet50-{n}" for n in (1, 2, 4, 8)}
    for r in rows.values():
        assert r["error"] == pytest.approx(r["predicted"] / r["published"] - 1, rel=1e-12)
        assert r["verdict"] == "pass" and r["paleo"] is None
    scopes = {s["scope"]: s for s in data["summary"]}
    assert scopes["overall: high+medium"]["rows"] == 4
    assert scopes["overall: without calibration rows"]["rows"] == 3


def test_known_misses_are_shown_with_their_reason_and_do_not_fail(capsys):
    code, out, _ = run(capsys, "--rows", "tfbench-dgx1-alexnet-8,tfbench-dgx1-vgg16-1")
    assert code == 0
    assert out.count("known miss") >= 2
    assert "tfbench-dgx1-alexnet-8 (known miss): Predicted too fast" in out
    assert "tfbench-dgx1-vgg16-1 (known miss): Predicted too slow" in out


def test_a_row_outside_its_tolerance_exits_1(capsys, monkeypatch):
    doc = json.loads((Path(validation.__file__).parent / "reference.json").read_text())
    row = next(r for r in doc["rows"] if r["id"] == "tfbench-dgx1-resnet50-2")
    row["published"] *= 2  # now far from what the simulator predicts
    table = parse_table(doc)
    monkeypatch.setattr(validation, "load_reference", lambda: table)
    code, out, _ = run(capsys, "--rows", "tfbench-dgx1-resnet50-2")
    assert code == 1
    assert "FAIL" in out and "# result: FAILED: tfbench-dgx1-resnet50-2" in out


def test_bad_input_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, "--rows", "no-such-row")
    assert code == 2 and "unknown reference row 'no-such-row'" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--with-paleo", "--paleo-nets", str(tmp_path / "missing"),
                       "--rows", RESNET)
    assert code == 2 and "--paleo-nets" in err


def test_markdown_and_output_file(capsys, tmp_path):
    target = tmp_path / "v.md"
    code, out, _ = run(capsys, "--rows", "tfbench-dgx1-resnet50-1", "--format", "markdown",
                       "--output", str(target))
    assert code == 0 and target.read_text() == out
    assert out.startswith("| id | metric |") and "| tfbench-dgx1-resnet50-1 |" in out


@pytest.mark.skipif(not PALEO_NETS.is_dir(),
                    reason=f"Paleo's nets not found at {PALEO_NETS} (the shared/ folder "
                           "beside the clone)")
def test_with_paleo_adds_paleos_prediction(capsys):
    code, out, _ = run(capsys, "--rows", "krizhevsky-*", "--with-paleo", "--paleo-nets",
                       str(PALEO_NETS), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert all(r["paleo"] is not None and r["paleo_scheme"] == "hybrid" for r in data["rows"])
    assert data["paleo"][-1]["id"] == "mean |error|"
    code, out, _ = run(capsys, "--rows", "krizhevsky-*", "--with-paleo", "--paleo-nets",
                       str(PALEO_NETS))
    assert "Paleo's case studies" in out and "paleo_error" in out


def test_help_names_the_tolerances(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    assert "15% for high-confidence rows, 25% for medium" in " ".join(out.split())
    assert "--with-paleo" in out


def test_pending_rows_are_listed_not_simulated():
    table = load_reference()
    pending = [r for r in table.rows if r.status == "pending"]
    if not pending:
        pytest.skip("no pending row in the table")
    result = validation.run_validation(rows=pending[0].id)
    rec = result.rows.iloc[0]
    assert rec["verdict"] == "pending" and rec["predicted"] != rec["predicted"]  # NaN
