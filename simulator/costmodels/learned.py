"""A learned per-layer time model: fit on measured single-layer timings, saved as JSON.

One regressor per layer kind (``conv``, ``dense``; see :mod:`simulator.costmodels.features`)
predicts the natural log of seconds per layer call from standardised log features. The target is
the log of the measured median time: squared error in log space is squared *relative* error,
the quantity that matters for a time model (and what MAPE reports). The default regressor is an
MLP; ridge regression on the same features is the measured alternative (see
``docs/COST_MODELS.md`` for both errors).

A model file records, per kind, everything prediction needs and nothing else: the feature names,
the standardisation (means and standard deviations), the regressor's parameters, the training
range of every raw size and GPU column, the GPU triples it saw, and the settings and seed it was
fitted with. Floats are written with Python's shortest round-trip repr, so a saved and reloaded
model predicts bit-identically.

Asking for a prediction outside the training range is allowed but flagged: it emits an
:class:`ExtrapolationWarning` (the library never prints), naming the column, the value and the
range, or the GPU that was not among the training GPUs.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from simulator.costmodels.features import (
    GPU_COLUMNS, KINDS, RANGE_COLUMNS, RAW_COLUMNS, design_matrix, read_timings,
)
from simulator.costmodels.mlp import estimator, params_from_json, params_to_json
from simulator.errors import SpecError, UnknownNameError

FORMAT = "paleosim-learned-costmodel"
VERSION = 1
#: Settings of each estimator unless overridden (chosen by the held-out errors of
#: ``experiments/learned_costmodel_eval.py``).
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [64, 64], "epochs": 200, "learning_rate": 2e-3, "batch_size": 64,
            "l2": 1e-5},
    "ridge": {"alpha": 1e-3},
}


class ExtrapolationWarning(UserWarning):
    """A learned cost model was asked to predict outside the range it was trained on."""


@dataclass(frozen=True, kw_only=True, eq=False)
class KindModel:
    """The fitted regressor of one layer kind, with its normalisation and training range."""

    kind: str
    estimator: str
    settings: Mapping[str, Any]
    params: Mapping[str, Any] = field(repr=False)
    features: tuple[str, ...]
    x_mean: np.ndarray = field(repr=False)
    x_std: np.ndarray = field(repr=False)
    y_mean: float
    y_std: float
    ranges: Mapping[str, tuple[float, float]]
    gpus: Mapping[str, tuple[float, float, float]]
    rows: int

    def predict_log_s(self, raw: pd.DataFrame) -> np.ndarray:
        """Natural log of seconds for each row of raw columns (no range check)."""
        names, x = design_matrix(self.kind, raw)
        if names != self.features:  # a model from another feature version
            raise SpecError("the model's features do not match this version's",
                            field=f"kinds.{self.kind}.features", value=list(self.features))
        _, predict = estimator(self.estimator)
        return predict(self.params, (x - self.x_mean) / self.x_std) * self.y_std + self.y_mean

    def outside_range(self, raw: pd.DataFrame) -> np.ndarray:
        """Per row: is any range column outside training, or the GPU not a training GPU?"""
        out = np.zeros(len(raw), dtype=bool)
        for col, (lo, hi) in self.ranges.items():
            values = np.asarray(raw[col], dtype=float)
            out |= (values < lo) | (values > hi)
        return out | ~self._seen_gpu(raw)

    def extrapolation_messages(self, raw: pd.DataFrame) -> list[str]:
        """One message per range column that some row leaves, and one for unseen GPUs."""
        messages = []
        for col, (lo, hi) in self.ranges.items():
            values = np.asarray(raw[col], dtype=float)
            bad = values[(values < lo) | (values > hi)]
            if bad.size:
                shown = f"{bad[0]:g}" if bad.min() == bad.max() else \
                    f"{bad.min():g} to {bad.max():g} ({bad.size} rows)"
                messages.append(f"learned cost model ({self.kind}): {col} = {shown} is outside "
                                f"the training range [{lo:g}, {hi:g}]")
        unseen = ~self._seen_gpu(raw)
        if unseen.any():
            first = raw.loc[unseen].iloc[0]
            triple = ", ".join(f"{c} {first[c]:g}" for c in GPU_COLUMNS)
            messages.append(f"learned cost model ({self.kind}): the GPU ({triple}) is not one "
                            f"of its training GPUs ({', '.join(self.gpus)}); expect "
                            f"leave-one-GPU-out errors")
        return messages

    def _seen_gpu(self, raw: pd.DataFrame) -> np.ndarray:
        triples = np.column_stack([np.asarray(raw[c], dtype=float) for c in GPU_COLUMNS])
        seen = np.zeros(len(raw), dtype=bool)
        for triple in self.gpus.values():
            seen |= (triples == np.asarray(triple)).all(axis=1)
        return seen


@dataclass(frozen=True, kw_only=True, eq=False)
class LearnedModel:
    """Fitted regressors by layer kind, plus provenance (seed, training files)."""

    kinds: Mapping[str, KindModel]
    seed: int
    sources: tuple[str, ...] = ()

    def predict_s(self, kind: str, raw: pd.DataFrame, *, warn: bool = True) -> np.ndarray:
        """Seconds per call for each row of raw columns of ``kind``.

        With ``warn`` (the default), rows outside the training range raise an
        :class:`ExtrapolationWarning` per offending column (the prediction is still returned).
        """
        model = self.kind_model(kind)
        missing = [c for c in RAW_COLUMNS[kind] if c not in raw]
        if missing:
            raise SpecError(f"missing raw feature columns: {', '.join(missing)}",
                            field=f"kinds.{kind}")
        if warn:
            for message in model.extrapolation_messages(raw):
                warnings.warn(message, ExtrapolationWarning, stacklevel=2)
        return np.exp(model.predict_log_s(raw))

    def kind_model(self, kind: str) -> KindModel:
        try:
            return self.kinds[kind]
        except KeyError:
            raise UnknownNameError("layer kind of this learned model", kind,
                                   list(self.kinds)) from None

    # --- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        kinds = {}
        for kind, m in self.kinds.items():
            kinds[kind] = {
                "estimator": m.estimator, "settings": dict(m.settings), "rows": m.rows,
                "features": list(m.features), "x_mean": m.x_mean.tolist(),
                "x_std": m.x_std.tolist(), "y_mean": m.y_mean, "y_std": m.y_std,
                "ranges": {c: list(r) for c, r in m.ranges.items()},
                "gpus": {g: dict(zip(GPU_COLUMNS, t)) for g, t in m.gpus.items()},
                "params": params_to_json(dict(m.params)),
            }
        return {"format": FORMAT, "version": VERSION,
                "target": "natural log of seconds per layer call (median of measured times)",
                "seed": self.seed, "sources": list(self.sources), "kinds": kinds}

    def dumps(self) -> str:
        """The model as JSON text (the CLI writes it; the library writes no files)."""
        return json.dumps(self.to_json(), indent=1) + "\n"

    @classmethod
    def from_json(cls, doc: Any, *, source: str = "<model>") -> "LearnedModel":
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise SpecError(f"not a learned cost model (expected \"format\": \"{FORMAT}\")",
                            source=source, field="format",
                            value=doc.get("format") if isinstance(doc, dict) else doc)
        if doc.get("version") != VERSION:
            raise SpecError(f"unsupported version (this paleosim reads {VERSION})",
                            source=source, field="version", value=doc.get("version"))
        kinds_doc = doc.get("kinds")
        if not isinstance(kinds_doc, dict) or not kinds_doc:
            raise SpecError("must be a non-empty object of layer kinds", source=source,
                            field="kinds", value=kinds_doc)
        kinds = {}
        for kind, kd in kinds_doc.items():
            where = f"kinds.{kind}"
            if kind not in KINDS:
                raise UnknownNameError("layer kind", kind, KINDS, source=source, field=where)
            try:
                kinds[kind] = _kind_from_json(kind, kd)
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, SpecError):
                    raise exc.with_source(source) from None
                raise SpecError(f"malformed model entry: {exc!s}", source=source,
                                field=where) from None
        return cls(kinds=kinds, seed=int(doc.get("seed", 0)),
                   sources=tuple(str(s) for s in doc.get("sources", ())))

    @classmethod
    def load(cls, path: str | Path) -> "LearnedModel":
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError("no such file", source=source) from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"invalid JSON: {exc.msg} at line {exc.lineno}",
                            source=source) from None
        return cls.from_json(doc, source=source)


def _kind_from_json(kind: str, kd: dict) -> KindModel:
    features = tuple(str(f) for f in kd["features"])
    x_mean = np.asarray(kd["x_mean"], dtype=float)
    x_std = np.asarray(kd["x_std"], dtype=float)
    if x_mean.shape != (len(features),) or x_std.shape != (len(features),) or (x_std <= 0).any():
        raise ValueError("x_mean and x_std must have one entry per feature, x_std > 0")
    ranges = {str(c): (float(r[0]), float(r[1])) for c, r in kd["ranges"].items()}
    if set(ranges) != set(RANGE_COLUMNS[kind]):
        raise ValueError(f"ranges must cover {', '.join(RANGE_COLUMNS[kind])}")
    gpus = {str(g): tuple(float(t[c]) for c in GPU_COLUMNS) for g, t in kd["gpus"].items()}
    return KindModel(kind=kind, estimator=str(kd["estimator"]), settings=dict(kd["settings"]),
                     params=params_from_json(str(kd["estimator"]), kd["params"]),
                     features=features, x_mean=x_mean, x_std=x_std,
                     y_mean=float(kd["y_mean"]), y_std=float(kd["y_std"]), ranges=ranges,
                     gpus=gpus, rows=int(kd["rows"]))


# --- fitting --------------------------------------------------------------------------------

def fit_kind(kind: str, frame: pd.DataFrame, *, seed: int = 0, estimator_name: str = "mlp",
             settings: Mapping[str, Any] | None = None) -> KindModel:
    """Fit one kind's regressor on a frame of raw columns, ``gpu`` and ``time_s``."""
    if len(frame) < 2:
        raise SpecError("need at least 2 timing rows to fit", field=f"kinds.{kind}",
                        value=len(frame))
    fit, _ = estimator(estimator_name)
    chosen = {**DEFAULT_SETTINGS[estimator_name], **(settings or {})}
    names, x = design_matrix(kind, frame)
    x_mean = x.mean(axis=0)
    x_std = x.std(axis=0)
    x_std[x_std == 0] = 1.0  # a constant feature (one GPU, an unused code) stays at 0
    y = np.log(np.asarray(frame["time_s"], dtype=float))
    y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
    kwargs = dict(chosen)
    if "hidden" in kwargs:
        kwargs["hidden"] = tuple(int(h) for h in kwargs["hidden"])
    params = fit((x - x_mean) / x_std, (y - y_mean) / y_std, seed=seed, **kwargs)
    ranges = {c: (float(frame[c].min()), float(frame[c].max())) for c in RANGE_COLUMNS[kind]}
    gpus = {}
    for gpu, rows in frame.groupby("gpu", sort=False):
        gpus[str(gpu)] = tuple(float(rows[c].iloc[0]) for c in GPU_COLUMNS)
    return KindModel(kind=kind, estimator=estimator_name, settings=chosen, params=params,
                     features=names, x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std,
                     ranges=ranges, gpus=gpus, rows=len(frame))


def fit_learned(frames: Mapping[str, pd.DataFrame], *, seed: int = 0, estimator_name: str = "mlp",
                settings: Mapping[str, Any] | None = None,
                sources: Iterable[str] = ()) -> LearnedModel:
    """Fit a regressor per kind (``{kind: frame}``, frames as :func:`read_timings` gives)."""
    kinds = {kind: fit_kind(kind, frame, seed=seed, estimator_name=estimator_name,
                            settings=settings)
             for kind, frame in sorted(frames.items())}
    return LearnedModel(kinds=kinds, seed=seed, sources=tuple(sources))


def read_training_files(paths: Iterable[str | Path], *,
                        gpus: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read timing CSVs and concatenate them per kind, keeping only ``gpus`` if given.

    Raises
    ------
    SpecError
        If a requested GPU has no rows in the files, or no rows are left.
    """
    parts: dict[str, list[pd.DataFrame]] = {}
    for path in paths:
        kind, frame = read_timings(path)
        parts.setdefault(kind, []).append(frame)
    if not parts:
        raise SpecError("no timing files given", field="files")
    frames = {kind: pd.concat(fs, ignore_index=True) for kind, fs in parts.items()}
    if gpus is not None:
        wanted = [str(g) for g in gpus]
        present = sorted({g for f in frames.values() for g in f["gpu"].unique()})
        by_fold = {g.casefold(): g for g in present}
        unknown = [g for g in wanted if g.casefold() not in by_fold]
        if unknown:
            raise UnknownNameError("GPU in the timing files", unknown[0], present,
                                   field="gpus")
        keep = {by_fold[g.casefold()] for g in wanted}
        frames = {k: f[f["gpu"].isin(keep)].reset_index(drop=True) for k, f in frames.items()}
        frames = {k: f for k, f in frames.items() if len(f)}
    return frames
