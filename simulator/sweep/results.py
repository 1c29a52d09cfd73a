"""The sweep's table: one row per point in grid order, speedups, and the files written at the end.

Columns, in order: ``point_id``; the grid axes (dotted paths, e.g. ``strategy.workers``);
``status`` (``ok`` | ``infeasible`` | ``error``) and ``reason`` (one line, empty when ok); the
engine's outputs in the order they first appear; ``speedup`` and ``scaling_efficiency``; and
``wall_s``, the seconds the point took to run (the only column that differs between two runs of
one spec). An output whose name is a grid axis is left out when it equals the axis value (the
Paleo engine's ``workers``) and kept as ``result.<name>`` otherwise.

Speedup is throughput against the 1-worker point that shares every other grid coordinate
(``samples_per_s / samples_per_s(1 worker)``, so weak and strong scaling read alike, as
``paleosim simulate`` computes it); scaling efficiency is ``speedup / workers``. With no such
point, or when it did not run ``ok``, both are empty (NaN).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.atomic import replace_atomic, write_bytes_atomic
from simulator.sweep._plain import canonical_json, is_number
from simulator.sweep.grid import SweepPlan

RESERVED = ("point_id", "status", "reason", "speedup", "scaling_efficiency", "wall_s")


def assemble(plan: SweepPlan, rows: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """The table of ``plan``'s points from their journal rows (``rows[point.index]``)."""
    inputs = plan.input_columns
    taken = set(inputs) | set(RESERVED)
    records = []
    outputs: dict[str, None] = {}  # insertion-ordered set
    for point in plan.points:
        row = rows[point.index]
        record = {"point_id": point.point_id, **point.inputs, "status": row["status"],
                  "reason": row["reason"]}
        for key, value in row["outputs"].items():
            if key in taken:
                if key in point.inputs and point.inputs[key] == value:
                    continue
                key = f"result.{key}"
            record[key] = value
            outputs.setdefault(key)
        record["wall_s"] = row["wall_s"]
        records.append(record)
    _speedups(plan, records)
    columns = (["point_id", *inputs, "status", "reason", *outputs, "speedup",
                "scaling_efficiency", "wall_s"])
    return pd.DataFrame.from_records(records, columns=columns)


def _speedups(plan: SweepPlan, records: list[dict[str, Any]]) -> None:
    def others(point) -> tuple:
        return tuple(c for i, c in enumerate(point.coords) if i != plan.workers_group)

    base: dict[tuple, float] = {}
    for point, record in zip(plan.points, records):
        rate = record.get("samples_per_s")
        if point.workers == 1 and record["status"] == "ok" and is_number(rate) and rate > 0:
            base[others(point)] = rate
    for point, record in zip(plan.points, records):
        rate, ref = record.get("samples_per_s"), base.get(others(point))
        ok = record["status"] == "ok" and ref is not None and is_number(rate)
        record["speedup"] = rate / ref if ok else math.nan
        record["scaling_efficiency"] = rate / ref / point.workers if ok else math.nan


def parquet_engine() -> str | None:
    """``"pyarrow"`` or ``"fastparquet"`` if one is importable, else ``None``."""
    for name in ("pyarrow", "fastparquet"):
        try:
            __import__(name)
        except ImportError:
            continue
        return name
    return None


def write_results(frame: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """Write ``results.csv`` (and ``results.parquet`` when a Parquet engine is installed) into
    ``folder``, each atomically (a temporary file, then a rename); returns the paths."""
    folder = Path(folder)
    csv = folder / "results.csv"
    write_bytes_atomic(csv, frame.to_csv(index=False).encode("utf-8"))
    written = [csv]
    engine = parquet_engine()
    if engine is not None:
        target = folder / "results.parquet"
        replace_atomic(target, lambda tmp: _parquet_ready(frame).to_parquet(
            tmp, engine=engine, index=False))
        written.append(target)
    return written


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding more than strings (Parquet columns have one type) as JSON text."""
    out = frame.copy()
    for column in out.columns[out.dtypes == object]:
        values = out[column]
        if not all(v is None or isinstance(v, str) or (isinstance(v, float) and math.isnan(v))
                   for v in values):
            out[column] = [None if v is None or (isinstance(v, float) and math.isnan(v))
                           else v if isinstance(v, str) else canonical_json(v) for v in values]
    return out
