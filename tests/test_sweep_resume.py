"""Interruptions lose nothing: the journal keeps every finished row, a rerun computes only the
missing points (no duplicates), a torn last line is tolerated, stale rows stay out of the results.
Includes a real SIGKILL and a real Ctrl-C (SIGINT) of `paleosim sweep` in a subprocess."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from simulator.cli import main
from simulator.errors import SpecError
from simulator.sweep import JOURNAL, SweepSpec, run_sweep
from simulator.sweep.engines import SimulateEngine

BASE = {"workload": {"net": "alexnet_owt", "batch": 8},
        "system": {"topology": "single_switch(servers={servers}, server='p2.8xlarge')",
                   "gpus_per_server": 8},
        "strategy": {"kind": "data_parallel"}}
SPEC = SweepSpec(base=BASE, grid={"strategy.workers": [1, 2, 4],
                                  "strategy.algorithm": ["ring", "tree"]})


def journal_lines(folder) -> list[str]:
    return (folder / JOURNAL).read_text().splitlines()


def without_wall(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_s")


@pytest.fixture(scope="module")
def reference():
    return run_sweep(SPEC, executor="serial")


class Interrupt:
    """A progress callback that raises KeyboardInterrupt (as Ctrl-C would) after ``after``."""

    def __init__(self, after: int) -> None:
        self.after = after

    def __call__(self, done: int, total: int) -> None:
        if done >= self.after:
            raise KeyboardInterrupt


def test_interrupted_sweep_keeps_its_rows_and_resumes(tmp_path, reference):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SPEC, executor="serial", out_dir=tmp_path, progress=Interrupt(after=2))
    first = journal_lines(tmp_path)
    assert len(first) == 2
    assert not (tmp_path / "results.csv").exists()
    table = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert table.attrs["sweep"]["reused"] == 2 and table.attrs["sweep"]["computed"] == 4
    lines = journal_lines(tmp_path)
    assert lines[:2] == first and len(lines) == 6
    assert sorted(json.loads(line)["point_id"] for line in lines) == sorted(table["point_id"])
    pd.testing.assert_frame_equal(without_wall(table), without_wall(reference))
    # a third run computes nothing and rewrites the same table
    again = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert again.attrs["sweep"]["computed"] == 0 and len(journal_lines(tmp_path)) == 6
    pd.testing.assert_frame_equal(again, table)


def test_process_executor_interrupted_and_resumed(tmp_path, reference):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SPEC, executor="process", jobs=2, out_dir=tmp_path,
                  progress=Interrupt(after=1))
    done = len(journal_lines(tmp_path))
    assert 1 <= done < 6
    table = run_sweep(SPEC, executor="process", jobs=2, out_dir=tmp_path)
    assert table.attrs["sweep"]["computed"] == 6 - done
    assert len(journal_lines(tmp_path)) == 6
    pd.testing.assert_frame_equal(without_wall(table), without_wall(reference))


def test_a_torn_last_line_is_cut_off_and_its_point_rerun(tmp_path, reference):
    run_sweep(SPEC, executor="serial", out_dir=tmp_path, progress=None)
    lines = journal_lines(tmp_path)
    torn = "\n".join(lines[:3]) + "\n" + lines[3][:25]  # a kill in the middle of a write
    (tmp_path / JOURNAL).write_text(torn)
    table = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert table.attrs["sweep"]["reused"] == 3 and table.attrs["sweep"]["computed"] == 3
    text = (tmp_path / JOURNAL).read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 6
    assert all(json.loads(line) for line in text.splitlines())
    pd.testing.assert_frame_equal(without_wall(table), without_wall(reference))


def test_a_corrupt_line_inside_the_journal_is_an_error(tmp_path):
    run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    lines = journal_lines(tmp_path)
    lines[1] = "{not json"
    (tmp_path / JOURNAL).write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError) as info:
        run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert info.value.field == "line 2" and info.value.source == str(tmp_path / JOURNAL)


def test_stale_rows_stay_in_the_journal_but_not_in_the_results(tmp_path):
    run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    changed = SweepSpec(base=BASE, grid={"strategy.workers": [1, 2, 4],
                                         "strategy.algorithm": ["ring", "halving_doubling"]})
    table = run_sweep(changed, executor="serial", out_dir=tmp_path)
    assert table.attrs["sweep"]["reused"] == 3 and table.attrs["sweep"]["computed"] == 3
    assert sorted(set(table["strategy.algorithm"])) == ["halving_doubling", "ring"]
    assert len(journal_lines(tmp_path)) == 9
    saved = pd.read_csv(tmp_path / "results.csv")
    assert saved["point_id"].tolist() == table["point_id"].tolist()
    # the original spec again: everything comes from the journal
    back = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert back.attrs["sweep"]["computed"] == 0


def test_error_rows_are_kept_unless_retried(tmp_path, monkeypatch):
    real = SimulateEngine.run

    def broken(self, config, *, seed, state):
        if config["strategy"]["workers"] == 4:
            raise ZeroDivisionError("a bug")
        return real(self, config, seed=seed, state=state)

    monkeypatch.setattr(SimulateEngine, "run", broken)
    first = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert first["status"].tolist().count("error") == 2
    monkeypatch.setattr(SimulateEngine, "run", real)  # the bug is fixed
    kept = run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    assert kept.attrs["sweep"]["computed"] == 0 and kept["status"].tolist().count("error") == 2
    retried = run_sweep(SPEC, executor="serial", out_dir=tmp_path, retry_errors=True)
    assert retried.attrs["sweep"]["computed"] == 2
    assert retried["status"].tolist() == ["ok"] * 6
    assert len(journal_lines(tmp_path)) == 8  # two error lines, superseded by the last ones


def test_one_folder_one_sweep_at_a_time(tmp_path):
    pytest.importorskip("fcntl")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom simulator.sweep.journal import Journal\n"
         "with Journal(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SpecError, match="another sweep is writing"):
            run_sweep(SPEC, executor="serial", out_dir=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert run_sweep(SPEC, executor="serial", out_dir=tmp_path)["status"].eq("ok").all()


# ---- the real thing: `paleosim sweep` killed in a subprocess --------------------------------

SLOW_BASE = {"workload": {"net": "alexnet_owt", "batch": 4},
             "system": {"topology": "single_switch(servers=1, server='p2.8xlarge')"},
             "strategy": {"kind": "data_parallel", "workers": 8, "iterations": 10}}
SLOW_POINTS = 24


def slow_spec(tmp_path):
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump({"base": SLOW_BASE,
                                    "grid": {"workload.batch": list(range(1, SLOW_POINTS + 1))}}))
    return path


def start_sweep(spec, out):
    return subprocess.Popen([sys.executable, "-m", "simulator.cli", "sweep", str(spec),
                             "--out", str(out), "--jobs", "2", "--format", "csv"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_rows(proc, out, rows: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    journal = out / JOURNAL
    while time.monotonic() < deadline:
        if journal.exists():
            count = journal.read_bytes().count(b"\n")
            if count >= rows:
                return count
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended early: {proc.communicate()}")
        time.sleep(0.01)
    pytest.fail("no rows were journaled in time")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_then_rerun_computes_only_the_missing_points(tmp_path, capsys):
    spec, out = slow_spec(tmp_path), tmp_path / "out"
    proc = start_sweep(spec, out)
    pgid = os.getpgid(proc.pid)
    try:
        wait_for_rows(proc, out, 4)
        proc.kill()  # SIGKILL to the sweep's main process only
        proc.communicate(timeout=30)
        # its worker processes notice and exit on their own (no orphans left running)
        deadline = time.monotonic() + 15
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_alive(pgid)
    finally:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    before = journal_lines(out) if (out / JOURNAL).read_text().endswith("\n") else \
        journal_lines(out)[:-1]
    assert 4 <= len(before) < SLOW_POINTS, "the sweep finished before it was killed"
    assert not (out / "results.csv").exists()

    assert main(["sweep", str(spec), "--out", str(out), "--jobs", "2"]) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert (f"{SLOW_POINTS - len(before)} computed, {len(before)} from the journal"
            in summary), summary
    lines = journal_lines(out)
    assert lines[:len(before)] == before and len(lines) == SLOW_POINTS
    table = pd.read_csv(out / "results.csv")
    assert table["workload.batch"].tolist() == list(range(1, SLOW_POINTS + 1))
    assert table["point_id"].is_unique and (table["status"] == "ok").all()
    assert sorted(json.loads(line)["point_id"] for line in lines) == sorted(table["point_id"])


def test_ctrl_c_exits_130_and_keeps_the_finished_rows(tmp_path):
    spec, out = slow_spec(tmp_path), tmp_path / "out"
    proc = start_sweep(spec, out)
    try:
        wait_for_rows(proc, out, 2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "sweep interrupted" in stderr and "run the same command again" in stderr
    assert f"of {SLOW_POINTS} points finished" in stderr
    assert "Traceback" not in stderr and stdout == ""
    kept = journal_lines(out)
    assert 2 <= len(kept) < SLOW_POINTS
    assert all(json.loads(line)["status"] == "ok" for line in kept)
    assert not (out / "results.csv").exists()
