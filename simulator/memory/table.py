"""The per-rank memory table of a compiled strategy, and the per-device check of a whole run.

Ranks that share a device (a parameter-server shard co-located with a worker) add up: a device
overflows when the sum of its ranks' peaks exceeds its capacity.
"""
from __future__ import annotations

from typing import Hashable, Iterable

import pandas as pd

from simulator.memory.breakdown import COMPONENTS, MemoryBreakdown, OutOfMemoryError

#: Columns of the memory table, in order.
MEMORY_COLUMNS = ("rank", "node", "device", "capacity_bytes", "weights_bytes", "gradients_bytes",
                  "optimizer_bytes", "activations_bytes", "workspace_bytes", "total_bytes")


def memory_table(rows: Iterable[tuple[int, Hashable, object, MemoryBreakdown]]) -> pd.DataFrame:
    """One row per ``(rank, node, device, breakdown)``: bytes per component and in total.

    ``node`` is a topology node label (written as text, as in the devices table); ``device``
    is a catalog ``Device``.
    """
    records = []
    for rank, node, device, breakdown in rows:
        record = {"rank": int(rank), "node": str(node), "device": device.name,
                  "capacity_bytes": float(device.memory_bytes)}
        record.update({f"{name}_bytes": getattr(breakdown, name) for name in COMPONENTS})
        record["total_bytes"] = breakdown.total
        records.append(record)
    return pd.DataFrame(records, columns=list(MEMORY_COLUMNS))


def device_totals(table: pd.DataFrame) -> list[dict]:
    """Per node, in order of first appearance: its ranks, device, capacity and summed bytes."""
    out: dict = {}
    for row in table.itertuples(index=False):
        entry = out.get(row.node)
        if entry is None:
            entry = out[row.node] = {"node": row.node, "ranks": [], "device": row.device,
                                     "capacity_bytes": row.capacity_bytes,
                                     **{name: 0.0 for name in COMPONENTS}}
        entry["ranks"].append(int(row.rank))
        for name in COMPONENTS:
            entry[name] += float(getattr(row, f"{name}_bytes"))
    return list(out.values())


def peak_memory_bytes(table: pd.DataFrame) -> float:
    """The largest per-device total (ranks on one device added)."""
    return max((sum(e[name] for name in COMPONENTS) for e in device_totals(table)), default=0.0)


def memory_overflow_bytes(table: pd.DataFrame, *, reserve_bytes: float = 0.0) -> float:
    """The largest amount by which a device's total exceeds its capacity less ``reserve_bytes``
    (negative: every device fits, with that much to spare on the tightest one)."""
    return max((sum(e[name] for name in COMPONENTS) - (e["capacity_bytes"] - reserve_bytes)
                for e in device_totals(table)), default=float("-inf"))


def check_memory_table(table: pd.DataFrame, *, reserve_bytes: float = 0.0) -> None:
    """Raise :class:`OutOfMemoryError` for the device that overflows the most, if any; the
    message counts the other overflowing devices."""
    worst, worst_over, overflowing = None, 0.0, 0
    for entry in device_totals(table):
        breakdown = MemoryBreakdown(**{name: entry[name] for name in COMPONENTS})
        over = breakdown.total - (entry["capacity_bytes"] - reserve_bytes)
        if over > 0:
            overflowing += 1
            if worst is None or over > worst_over:
                worst, worst_over = (entry, breakdown), over
    if worst is not None:
        entry, breakdown = worst
        raise OutOfMemoryError(ranks=entry["ranks"], node=entry["node"], device=entry["device"],
                               capacity_bytes=entry["capacity_bytes"],
                               reserve_bytes=reserve_bytes, breakdown=breakdown,
                               others=overflowing - 1)
