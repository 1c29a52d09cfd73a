"""Device power and energy over a timeline of operations.

Model (first order, per device, from the catalog's ``idle_power_W`` and ``busy_power_W``)::

    energy_J = busy_power_W * busy_s + idle_power_W * idle_s

where ``busy_s`` is the time the device runs at least one op (the union of its ops' intervals, so
overlapping streams are not counted twice) and ``idle_s`` the rest of the window. The assumption
is that a busy device draws its board power (TDP) whatever the op, and an idle one its idle
power; real draw varies with the op's intensity, so this is an upper-bound style estimate for
busy time. The energy of one op is ``busy_power_W * (end_s - start_s)``: when ops overlap on a
device, the per-op energies add up to more than the device's busy energy, which counts the
overlap once.

A timeline is a pandas DataFrame with at least ``device`` (an id), ``start_s`` and ``end_s``
(seconds, ``end_s >= start_s``), plus ``iteration`` for :func:`iteration_energy`. ``devices``
maps each device id to anything with ``idle_power_W`` and ``busy_power_W`` (a catalog
:class:`~simulator.catalog.Device`), or is one such object used for every id.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from simulator.errors import SpecError, UnknownNameError

TIMELINE_COLUMNS = ("device", "start_s", "end_s")
DEVICE_ENERGY_COLUMNS = ("device", "start_s", "end_s", "busy_s", "idle_s", "busy_energy_J",
                         "idle_energy_J", "energy_J")


def op_energy(timeline: pd.DataFrame, devices: Any) -> pd.DataFrame:
    """The timeline with ``duration_s``, ``power_W`` (busy power) and ``energy_J`` per op."""
    _check_timeline(timeline)
    out = timeline.copy()
    out["duration_s"] = out["end_s"] - out["start_s"]
    out["power_W"] = [_power(devices, d).busy_power_W for d in out["device"]]
    out["energy_J"] = out["power_W"] * out["duration_s"]
    return out


def device_energy(timeline: pd.DataFrame, devices: Any, *, start_s: float | None = None,
                  end_s: float | None = None) -> pd.DataFrame:
    """Busy and idle time and energy per device over ``[start_s, end_s]``.

    The window defaults to the timeline's span (first start to last end). Ops are clipped to the
    window. With a mapping of ``devices``, every device in it gets a row (one without ops is idle
    throughout); with a single object, the devices of the timeline do. Rows are sorted by id.
    """
    _check_timeline(timeline)
    if start_s is None:
        start_s = float(timeline["start_s"].min()) if len(timeline) else 0.0
    if end_s is None:
        end_s = float(timeline["end_s"].max()) if len(timeline) else 0.0
    if end_s < start_s:
        raise SpecError("the window must have end_s >= start_s", field="end_s",
                        value=(start_s, end_s))
    ids = set(timeline["device"])
    if isinstance(devices, Mapping):
        ids |= set(devices)
    rows = []
    for device in sorted(ids, key=str):
        spec = _power(devices, device)
        ops = timeline[timeline["device"] == device]
        busy = _busy_time(ops["start_s"].to_numpy(float), ops["end_s"].to_numpy(float),
                          start_s, end_s)
        idle = (end_s - start_s) - busy
        rows.append({"device": device, "start_s": start_s, "end_s": end_s, "busy_s": busy,
                     "idle_s": idle, "busy_energy_J": spec.busy_power_W * busy,
                     "idle_energy_J": spec.idle_power_W * idle,
                     "energy_J": spec.busy_power_W * busy + spec.idle_power_W * idle})
    return pd.DataFrame(rows, columns=list(DEVICE_ENERGY_COLUMNS))


def iteration_energy(timeline: pd.DataFrame, devices: Any, *,
                     iteration: str = "iteration") -> pd.DataFrame:
    """Energy per (iteration, device): the timeline cut into consecutive iteration windows.

    Iteration ``i``'s window runs from the first start of its ops to the first start of the next
    iteration (the last one to the timeline's last end), so the windows tile the run and the
    energies of all iterations add up to :func:`device_energy` over the whole span. An op that
    crosses a boundary is split between the windows. ``iteration_energy(...).groupby(
    "iteration")["energy_J"].sum()`` is the energy per iteration over all devices.
    """
    _check_timeline(timeline)
    if iteration not in timeline.columns:
        raise SpecError(f"the timeline needs an {iteration!r} column", field="columns",
                        value=list(timeline.columns))
    if not len(timeline):
        return pd.DataFrame(columns=[iteration, *DEVICE_ENERGY_COLUMNS])
    firsts = timeline.groupby(iteration)["start_s"].min().sort_values(kind="stable")
    last_end = float(timeline["end_s"].max())
    bounds = list(firsts.to_numpy(float)) + [last_end]
    parts = []
    for i, it in enumerate(firsts.index):
        table = device_energy(timeline, devices, start_s=bounds[i], end_s=bounds[i + 1])
        table.insert(0, iteration, it)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _busy_time(starts: np.ndarray, ends: np.ndarray, lo: float, hi: float) -> float:
    """Length of the union of ``[start, end]`` intervals clipped to ``[lo, hi]``."""
    starts = np.clip(starts, lo, hi)
    ends = np.clip(ends, lo, hi)
    order = np.argsort(starts, kind="stable")
    total, cur_start, cur_end = 0.0, None, None
    for s, e in zip(starts[order], ends[order]):
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        total += cur_end - cur_start
    return float(total)


def _power(devices: Any, device_id: Any):
    if isinstance(devices, Mapping):
        try:
            spec = devices[device_id]
        except KeyError:
            raise UnknownNameError("device id", str(device_id), [str(d) for d in devices],
                                   field="device") from None
    else:
        spec = devices
    for attr in ("idle_power_W", "busy_power_W"):
        if not hasattr(spec, attr):
            raise SpecError(f"a power spec needs {attr}", field=f"devices.{device_id}",
                            value=type(spec).__name__)
    return spec


def _check_timeline(timeline: pd.DataFrame) -> None:
    if not isinstance(timeline, pd.DataFrame):
        raise SpecError("a timeline is a pandas DataFrame", field="timeline",
                        value=type(timeline).__name__)
    missing = [c for c in TIMELINE_COLUMNS if c not in timeline.columns]
    if missing:
        raise SpecError(f"the timeline needs columns {', '.join(TIMELINE_COLUMNS)}; missing "
                        f"{', '.join(missing)}", field="columns", value=list(timeline.columns))
    starts = timeline["start_s"].to_numpy(float)
    ends = timeline["end_s"].to_numpy(float)
    bad = ~np.isfinite(starts) | ~np.isfinite(ends) | (ends < starts)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SpecError("each op needs finite start_s <= end_s", field=f"timeline[{i}]",
                        value=(float(starts[i]), float(ends[i])))
