"""Error statistics of a validation run: per source and overall, and against Paleo.

Statistics are over the *judged* rows (high and medium confidence) that were simulated and are
measurements (lower-bound rows are judged only against their bound), of
absolute relative errors ``|predicted / published - 1|``: the median and the maximum. Calibration
rows were fitted to, and known misses are expected to fail, so the overall figures are also given
without them; every scope says how many rows it holds.
"""
from __future__ import annotations

import pandas as pd

SUMMARY_COLUMNS = ["scope", "rows", "median_abs_error", "max_abs_error"]


def _stats(scope: str, frame: pd.DataFrame) -> dict:
    errors = frame["abs_error"].dropna()
    return {"scope": scope, "rows": int(len(errors)),
            "median_abs_error": float(errors.median()) if len(errors) else float("nan"),
            "max_abs_error": float(errors.max()) if len(errors) else float("nan")}


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Median and maximum absolute error per source and overall (see the module docstring)."""
    judged = rows[rows["confidence"].isin(["high", "medium"]) & rows["predicted"].notna()
                  & (rows["bound"] == "")]
    records = [_stats(f"source {key}", part) for key, part in judged.groupby("source", sort=True)]
    calibration = judged["role"] == "calibration"
    missed = judged["status"] == "known_miss"
    records += [
        _stats("overall: high+medium", judged),
        _stats("overall: without calibration rows", judged[~calibration]),
        _stats("overall: without known misses", judged[~missed]),
        _stats("overall: without calibration rows and known misses",
               judged[~calibration & ~missed]),
    ]
    return pd.DataFrame(records, columns=SUMMARY_COLUMNS)


PALEO_COLUMNS = ["id", "confidence", "published", "predicted", "error", "paleo", "paleo_scheme",
                 "paleo_error", "closer"]


def paleo_comparison(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with both predictions, which is closer, and a last row of mean absolute errors."""
    both = rows[rows["paleo"].notna() & rows["predicted"].notna()].copy()
    if both.empty:
        return pd.DataFrame(columns=PALEO_COLUMNS)
    both["closer"] = ["paleosim" if abs(e) < abs(p) else "Paleo" if abs(p) < abs(e) else "tie"
                      for e, p in zip(both["error"], both["paleo_error"])]
    out = both[PALEO_COLUMNS].reset_index(drop=True)
    ours, theirs = both["error"].abs().mean(), both["paleo_error"].abs().mean()
    mean = {"id": "mean |error|", "confidence": "", "published": float("nan"),
            "predicted": float("nan"), "error": ours, "paleo": float("nan"), "paleo_scheme": "",
            "paleo_error": theirs,
            "closer": "paleosim" if ours < theirs else "Paleo" if theirs < ours else "tie"}
    return pd.concat([out, pd.DataFrame([mean])], ignore_index=True)
