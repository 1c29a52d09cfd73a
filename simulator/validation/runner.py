"""Run the reference table: simulate every row, measure its error, judge it.

For each selected row (``pending`` rows are listed, not simulated) :func:`run_validation` gives
the prediction in the row's unit, the signed relative error ``predicted / published - 1``, and a
verdict:

==================  =========================================================================
``pass``            an active high/medium row within its tolerance
``FAIL``            an active high/medium row outside it
``known miss``      a ``known_miss`` row outside its tolerance (expected; ``reason`` says why)
``now passes``      a ``known_miss`` row within its tolerance: the prediction moved closer, the
                    table's status and reason should be updated (reported, never a failure)
``bound ok``        a lower-bound row whose prediction is at least the published figure
``bound FAIL``      one whose prediction falls short of it
``trend ok``        a low row whose trend groups order their predictions as the published values
``trend FAIL``      a low row that breaks its trend
``pending``         not simulated (``reason``)
==================  =========================================================================

``FAIL`` and ``trend FAIL`` make the run fail (``ValidationResult.failed``); ``now passes`` is
listed by ``ValidationResult.now_passing`` (a prediction that got closer never fails a run).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.validation.cases import Simulations, predict
from simulator.validation.paleo_cases import PaleoPredictor, best_scheme
from simulator.validation.summary import paleo_comparison, summarise
from simulator.validation.table import ReferenceTable, load_reference

FAILING = ("FAIL", "trend FAIL", "bound FAIL")
#: The verdict of a known miss that landed inside its tolerance.
NOW_PASSES = "now passes"
ROW_COLUMNS = ["id", "source", "device", "metric", "unit", "confidence", "role", "status", "bound",
               "published", "predicted", "error", "abs_error", "tolerance", "verdict",
               "paleo", "paleo_scheme", "paleo_error", "fits_memory", "algorithm", "wall_s",
               "reason"]


@dataclass
class ValidationResult:
    """Per-row results, the error summary, the Paleo comparison, and notes for the reader."""

    rows: pd.DataFrame
    summary: pd.DataFrame
    paleo: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.rows["verdict"].isin(FAILING).any())

    @property
    def now_passing(self) -> list[str]:
        """Known misses that now land inside their tolerance (update the table)."""
        return self.rows.loc[self.rows["verdict"] == NOW_PASSES, "id"].tolist()


def run_validation(*, rows: str | None = None, table: ReferenceTable | None = None,
                   paleo_nets: str | Path | None = None, cost_model: Any = None
                   ) -> ValidationResult:
    """Simulate the reference rows and judge them.

    Parameters
    ----------
    rows : str, optional
        Glob pattern(s) of row ids, comma-separated (default: every row).
    table : ReferenceTable, optional
        Default: the project's table (:func:`load_reference`).
    paleo_nets : path, optional
        Folder with Paleo's net files; when given, rows with a ``paleo`` case get Paleo's
        prediction beside ours.
    cost_model : CostModel, optional
        Stands in for every case's own cost model (used by the calibration procedure).
    """
    table = table or load_reference()
    selected = table.select(rows)
    sims = Simulations(cost_model)
    paleo = PaleoPredictor(paleo_nets) if paleo_nets is not None else None
    records = []
    for row in selected:
        rec = {"id": row.id, "source": row.source, "device": row.device, "metric": row.metric,
               "unit": row.unit, "confidence": row.confidence, "role": row.role,
               "status": row.status, "bound": row.bound or "",
               "published": row.published, "predicted": float("nan"),
               "tolerance": table.tolerance(row), "reason": row.reason,
               "paleo": float("nan"), "paleo_scheme": "", "fits_memory": None,
               "algorithm": "",
               "wall_s": 0.0}
        if row.status != "pending":
            prediction = predict(row, sims)
            rec["predicted"] = prediction.value
            rec["fits_memory"] = prediction.details.get("fits_memory")
            rec["algorithm"] = prediction.details.get("algorithm", "")
            rec["wall_s"] = prediction.details.get("wall_s", 0.0)
        if paleo is not None and row.paleo is not None:
            scheme, value = best_scheme(paleo.speedups(row), row.published)
            rec["paleo"], rec["paleo_scheme"] = value, scheme
        records.append(rec)
    frame = pd.DataFrame(records)
    frame["error"] = frame["predicted"] / frame["published"] - 1.0
    frame["abs_error"] = frame["error"].abs()
    frame["paleo_error"] = frame["paleo"] / frame["published"] - 1.0
    frame["verdict"] = _verdicts(frame, selected)
    notes = []
    if paleo_nets is None:
        notes.append("Paleo's predictions omitted: no folder of Paleo's nets was given "
                     "(--paleo-nets, or the shared data folder beside the repository).")
    out = frame[ROW_COLUMNS]
    return ValidationResult(rows=out, summary=summarise(out), paleo=paleo_comparison(out),
                            notes=notes)


def _verdicts(frame: pd.DataFrame, rows) -> list[str]:
    trend_ok = _trend_checks(frame, rows)
    verdicts = []
    for rec, row in zip(frame.to_dict("records"), rows):
        if row.status == "pending":
            verdicts.append("pending")
        elif row.bound == "lower":
            verdicts.append("bound ok" if rec["predicted"] >= rec["published"] else "bound FAIL")
        elif not row.judged:
            ok = trend_ok.get(row.id, True)
            if row.status == "known_miss":
                verdicts.append("known miss" if not ok else NOW_PASSES)
            else:
                verdicts.append("trend ok" if ok else "trend FAIL")
        else:
            within = rec["abs_error"] <= rec["tolerance"]
            if row.status == "known_miss":
                verdicts.append(NOW_PASSES if within else "known miss")
            else:
                verdicts.append("pass" if within else "FAIL")
    return verdicts


def _trend_checks(frame: pd.DataFrame, rows) -> dict[str, bool]:
    """Per low row: whether every trend group it is in orders its predictions as the published
    values (pairs with equal published values are not compared): the issue's "trend check for
    low rows" (e.g. speedup rising with the worker count). Groups are judged over the rows of
    this run."""
    by_id = {rec["id"]: rec for rec in frame.to_dict("records")}
    groups: dict[str, list[str]] = {}
    for row in rows:
        if row.status != "pending":
            for g in row.trend:
                groups.setdefault(g, []).append(row.id)
    ok = {}
    for row in rows:
        if row.judged or row.status == "pending":
            continue
        rec = by_id[row.id]
        good = rec["predicted"] == rec["predicted"]  # not NaN
        for g in row.trend:
            for other in groups.get(g, []):
                o = by_id[other]
                if o["published"] == rec["published"]:
                    continue
                if (o["published"] > rec["published"]) != (o["predicted"] > rec["predicted"]):
                    good = False
        ok[row.id] = bool(good)
    return ok
