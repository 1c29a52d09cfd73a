"""Energy of tiny hand-made timelines, with exact expectations."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from simulator.catalog import get_device
from simulator.costmodels.power import device_energy, iteration_energy, op_energy
from simulator.errors import SpecError, UnknownNameError

BIG = SimpleNamespace(idle_power_W=10.0, busy_power_W=100.0)
SMALL = SimpleNamespace(idle_power_W=5.0, busy_power_W=50.0)


def _timeline(rows):
    return pd.DataFrame(rows, columns=["device", "start_s", "end_s", "iteration"])


def test_op_energy_is_busy_power_times_duration():
    tl = _timeline([("g0", 0.0, 1.0, 0), ("g0", 2.0, 3.5, 0), ("g1", 0.0, 4.0, 0)])
    out = op_energy(tl, {"g0": BIG, "g1": SMALL})
    assert out["duration_s"].tolist() == [1.0, 1.5, 4.0]
    assert out["energy_J"].tolist() == [100.0, 150.0, 200.0]
    assert out["power_W"].tolist() == [100.0, 100.0, 50.0]
    assert list(tl.columns) == ["device", "start_s", "end_s", "iteration"]  # input untouched


def test_device_energy_busy_and_idle_over_the_span():
    tl = _timeline([("g0", 0.0, 1.0, 0), ("g0", 2.0, 3.0, 0), ("g1", 0.0, 4.0, 0)])
    out = device_energy(tl, {"g0": BIG, "g1": SMALL, "g2": BIG}).set_index("device")
    assert out.loc["g0", "busy_s"] == 2.0 and out.loc["g0", "idle_s"] == 2.0
    assert out.loc["g0", "energy_J"] == 100.0 * 2 + 10.0 * 2
    assert out.loc["g1", "energy_J"] == 50.0 * 4
    # A device of the mapping without ops idles for the whole span.
    assert out.loc["g2", "busy_s"] == 0.0 and out.loc["g2", "energy_J"] == 10.0 * 4
    assert (out["start_s"] == 0.0).all() and (out["end_s"] == 4.0).all()


def test_overlapping_ops_count_busy_time_once():
    tl = _timeline([("g0", 0.0, 2.0, 0), ("g0", 1.0, 3.0, 0), ("g0", 5.0, 6.0, 0)])
    dev = device_energy(tl, BIG).set_index("device")
    assert dev.loc["g0", "busy_s"] == 4.0 and dev.loc["g0", "idle_s"] == 2.0
    assert dev.loc["g0", "energy_J"] == 100.0 * 4 + 10.0 * 2
    # Per-op energies charge the overlap twice: their sum exceeds the device's busy energy.
    assert op_energy(tl, BIG)["energy_J"].sum() == 500.0 > dev.loc["g0", "busy_energy_J"]


def test_explicit_window_clips_ops():
    tl = _timeline([("g0", 0.0, 4.0, 0)])
    out = device_energy(tl, BIG, start_s=1.0, end_s=8.0).iloc[0]
    assert (out["busy_s"], out["idle_s"]) == (3.0, 4.0)
    assert out["energy_J"] == 300.0 + 40.0


def test_iteration_windows_tile_the_run_and_split_crossing_ops():
    tl = _timeline([
        ("g0", 0.0, 1.0, 0), ("g1", 0.0, 2.5, 0),  # g1's op crosses into iteration 1
        ("g0", 2.0, 3.0, 1), ("g1", 3.0, 4.0, 1),
    ])
    devices = {"g0": BIG, "g1": SMALL}
    per = iteration_energy(tl, devices).set_index(["iteration", "device"])
    assert per.loc[(0, "g0"), "start_s"] == 0.0 and per.loc[(0, "g0"), "end_s"] == 2.0
    assert per.loc[(1, "g0"), "start_s"] == 2.0 and per.loc[(1, "g0"), "end_s"] == 4.0
    assert per.loc[(0, "g1"), "busy_s"] == 2.0 and per.loc[(1, "g1"), "busy_s"] == 1.5
    assert per.loc[(0, "g0"), "energy_J"] == 100.0 * 1 + 10.0 * 1
    assert per.loc[(1, "g1"), "energy_J"] == 50.0 * 1.5 + 5.0 * 0.5
    total = device_energy(tl, devices)["energy_J"].sum()
    assert per["energy_J"].sum() == pytest.approx(total, rel=1e-15)
    by_iter = iteration_energy(tl, devices).groupby("iteration")["energy_J"].sum()
    assert by_iter.tolist() == [110.0 + 100.0, 100.0 + 10.0 + 75.0 + 2.5]


def test_catalog_devices_supply_the_powers():
    v100 = get_device("V100")
    tl = _timeline([("gpu0", 0.0, 0.5, 0), ("gpu0", 1.5, 2.0, 0)])
    out = device_energy(tl, {"gpu0": v100}).iloc[0]
    assert out["energy_J"] == pytest.approx(v100.busy_power_W * 1.0 + v100.idle_power_W * 1.0)


def test_bad_timelines_are_clear_errors():
    with pytest.raises(SpecError, match="missing end_s"):
        device_energy(pd.DataFrame({"device": ["g0"], "start_s": [0.0]}), BIG)
    with pytest.raises(SpecError, match=r"start_s <= end_s"):
        op_energy(_timeline([("g0", 2.0, 1.0, 0)]), BIG)
    with pytest.raises(UnknownNameError, match="g9"):
        device_energy(_timeline([("g9", 0.0, 1.0, 0)]), {"g0": BIG})
    with pytest.raises(SpecError, match="iteration"):
        iteration_energy(pd.DataFrame({"device": ["g0"], "start_s": [0.0], "end_s": [1.0]}), BIG)
    with pytest.raises(SpecError, match="busy_power_W"):
        op_energy(_timeline([("g0", 0.0, 1.0, 0)]), SimpleNamespace(idle_power_W=1.0))
