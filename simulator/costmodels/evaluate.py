"""Errors of a learned cost model: held-out per GPU, and leave one GPU out.

The error measure is the mean absolute percentage error, MAPE = 100/n * sum |p - t| / t, over
measured times t and predictions p (seconds), reported with the median absolute percentage error
beside it (robust to a few layers near the timing floor).

Protocols
---------
``holdout``
    For each kind and each GPU, a seeded random ``test_fraction`` of its rows is held out; one
    model per kind is fitted on all the remaining rows (every GPU) and scored per GPU on the
    held-out rows.
``leave-one-gpu-out``
    For each GPU, a model per kind is fitted on every other GPU's rows and scored on all of that
    GPU's rows: how well the GPU features (bandwidth, cores, clock) carry to an unseen GPU.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from simulator.costmodels.learned import LearnedModel, fit_learned
from simulator.errors import SpecError

ERROR_COLUMNS = ("kind", "gpu", "rows", "outside_range_rows", "mape_pct", "median_ape_pct")


def ape_pct(predicted_s: np.ndarray, measured_s: np.ndarray) -> np.ndarray:
    """Absolute percentage errors, 100 * |p - t| / t."""
    measured = np.asarray(measured_s, dtype=float)
    return 100.0 * np.abs(np.asarray(predicted_s, dtype=float) - measured) / measured


def evaluate(model: LearnedModel, frames: Mapping[str, pd.DataFrame], *,
             warn: bool = True) -> pd.DataFrame:
    """Errors per kind and GPU (plus an ``all`` row per kind) of ``model`` on ``frames``.

    Kinds the model has no regressor for are an error. ``outside_range_rows`` counts rows outside
    the training range (or on a GPU the model was not trained on).
    """
    rows = []
    for kind, frame in sorted(frames.items()):
        if not len(frame):
            continue
        predicted = model.predict_s(kind, frame, warn=warn)
        errors = ape_pct(predicted, frame["time_s"].to_numpy())
        outside = model.kind_model(kind).outside_range(frame)
        gpus = list(dict.fromkeys(frame["gpu"]))
        for gpu in gpus + (["all"] if len(gpus) > 1 else []):
            mask = np.ones(len(frame), bool) if gpu == "all" else (frame["gpu"] == gpu).to_numpy()
            rows.append({"kind": kind, "gpu": gpu, "rows": int(mask.sum()),
                         "outside_range_rows": int(outside[mask].sum()),
                         "mape_pct": float(errors[mask].mean()),
                         "median_ape_pct": float(np.median(errors[mask]))})
    return pd.DataFrame(rows, columns=list(ERROR_COLUMNS))


def split_per_gpu(frames: Mapping[str, pd.DataFrame], *, test_fraction: float = 0.2,
                  seed: int = 0) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """(train, test) frames per kind: a seeded ``test_fraction`` of each GPU's rows is test."""
    if not 0 < test_fraction < 1:
        raise SpecError("test_fraction must be in (0, 1)", field="test_fraction",
                        value=test_fraction)
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for kind, frame in sorted(frames.items()):
        is_test = np.zeros(len(frame), dtype=bool)
        for gpu in dict.fromkeys(frame["gpu"]):
            idx = np.flatnonzero((frame["gpu"] == gpu).to_numpy())
            chosen = rng.permutation(idx)[:int(round(len(idx) * test_fraction))]
            is_test[chosen] = True
        train[kind] = frame[~is_test].reset_index(drop=True)
        test[kind] = frame[is_test].reset_index(drop=True)
    return train, test


def holdout_errors(frames: Mapping[str, pd.DataFrame], *, seed: int = 0,
                   test_fraction: float = 0.2, estimator_name: str = "mlp",
                   settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The ``holdout`` protocol: errors per kind and GPU on the held-out rows."""
    train, test = split_per_gpu(frames, test_fraction=test_fraction, seed=seed)
    model = fit_learned(train, seed=seed, estimator_name=estimator_name, settings=settings)
    table = evaluate(model, test, warn=False)
    table.insert(0, "protocol", "holdout")
    return table


def leave_one_gpu_out_errors(frames: Mapping[str, pd.DataFrame], *, seed: int = 0,
                             estimator_name: str = "mlp",
                             settings: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The ``leave-one-gpu-out`` protocol: per kind and GPU, errors of a model not trained on it.

    The ``all`` row of a kind pools every GPU's rows, each predicted by the model that did not
    see its GPU.
    """
    rows = []
    for kind, frame in sorted(frames.items()):
        gpus = list(dict.fromkeys(frame["gpu"]))
        if len(gpus) < 2:
            raise SpecError("leave-one-GPU-out needs timings of at least two GPUs",
                            field=f"kinds.{kind}.gpu", value=gpus)
        errors = np.zeros(len(frame))
        outside = np.zeros(len(frame), dtype=bool)
        for gpu in gpus:
            held = (frame["gpu"] == gpu).to_numpy()
            model = fit_learned({kind: frame[~held].reset_index(drop=True)}, seed=seed,
                                estimator_name=estimator_name, settings=settings)
            test = frame[held].reset_index(drop=True)
            errors[held] = ape_pct(model.predict_s(kind, test, warn=False),
                                   test["time_s"].to_numpy())
            outside[held] = model.kind_model(kind).outside_range(test)
        for gpu in gpus + ["all"]:
            mask = np.ones(len(frame), bool) if gpu == "all" else (frame["gpu"] == gpu).to_numpy()
            rows.append({"kind": kind, "gpu": gpu, "rows": int(mask.sum()),
                         "outside_range_rows": int(outside[mask].sum()),
                         "mape_pct": float(errors[mask].mean()),
                         "median_ape_pct": float(np.median(errors[mask]))})
    table = pd.DataFrame(rows, columns=list(ERROR_COLUMNS))
    table.insert(0, "protocol", "leave-one-gpu-out")
    return table
