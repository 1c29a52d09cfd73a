"""Features of the learned cost model: timing CSVs in, layers in, design matrices out.

Two layer kinds are modelled, each from its own training file in the format of Justus et al.,
"Predicting the Computational Cost of Deep Learning Models" (IEEE BigData 2018), as sampled in
``shared/data/mlperf_prediction/layer_timings_{conv,dense}.csv`` (see its README):

``conv`` (a ``tf.layers.conv2d``)
    ``batch``, ``matsize`` (input height = width), ``kernel`` (square), ``channels_in``,
    ``channels_out``, ``stride``, ``padding`` (1 SAME, 0 VALID), ``bias`` (0/1)
``dense`` (a ``tf.layers.dense``)
    ``batch``, ``dim_input``, ``dim_output``

and for both ``activation`` (0 none, 1 relu, 2 tanh, 3 sigmoid), ``optimizer`` (0 forward only,
1 SGD, 2 Adadelta, 3 Adagrad, 4 Momentum, 5 Adam, 6 RMSProp: a training step) and the GPU's
``bandwidth_Bps``, ``cores`` and ``clock_hz`` (:mod:`gpus.json <simulator.costmodels>`). These raw
columns are what a model's training ranges are recorded on.

The design matrix takes logarithms of every size (times of GPU kernels are close to products of
powers of the sizes, so a log-log model is nearly linear), adds the logs of the derived products
that set the work (multiply-adds, input, output and weight elements: the README's MAC formula for
conv, without rounding), and one-hot codes for activation and optimizer.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from simulator.errors import SpecError, UnknownNameError

KINDS = ("conv", "dense")
GPU_COLUMNS = ("bandwidth_Bps", "cores", "clock_hz")
RAW_COLUMNS = {
    "conv": ("batch", "matsize", "kernel", "channels_in", "channels_out", "stride", "padding",
             "bias", "activation", "optimizer") + GPU_COLUMNS,
    "dense": ("batch", "dim_input", "dim_output", "activation", "optimizer") + GPU_COLUMNS,
}
#: Raw columns whose training range is recorded and checked at prediction time.
RANGE_COLUMNS = {
    "conv": ("batch", "matsize", "kernel", "channels_in", "channels_out", "stride") + GPU_COLUMNS,
    "dense": ("batch", "dim_input", "dim_output") + GPU_COLUMNS,
}
ACTIVATION_CODES = {None: 0, "relu": 1, "tanh": 2, "sigmoid": 3}
OPTIMIZER_CODES = {"none": 0, "sgd": 1, "adadelta": 2, "adagrad": 3, "momentum": 4, "adam": 5,
                   "rmsprop": 6}

# CSV column (the original benchmark's name) -> raw column.
_CSV_COLUMNS = {
    "conv": {"batchsize": "batch", "matsize": "matsize", "kernelsize": "kernel",
             "channels_in": "channels_in", "channels_out": "channels_out", "strides": "stride",
             "padding": "padding", "use_bias": "bias", "activation_fct": "activation",
             "optimizer": "optimizer"},
    "dense": {"batchsize": "batch", "dim_input": "dim_input", "dim_output": "dim_output",
              "activation_fct": "activation", "optimizer": "optimizer"},
}
_TIME_COLUMN = "timeUsed_median"  # milliseconds per iteration


@dataclass(frozen=True, kw_only=True)
class GpuFeatures:
    """A GPU as the learned model sees it (units SI: bytes/s, cores, Hz)."""

    name: str
    bandwidth_Bps: float
    cores: int
    clock_hz: float
    source: str

    def as_tuple(self) -> tuple[float, float, float]:
        return (float(self.bandwidth_Bps), float(self.cores), float(self.clock_hz))


@functools.lru_cache(maxsize=1)
def _gpu_table() -> tuple[dict[str, GpuFeatures], tuple[str, ...]]:
    text = resources.files("simulator.costmodels").joinpath("gpus.json").read_text("utf-8")
    index: dict[str, GpuFeatures] = {}
    names = []
    for entry in json.loads(text)["gpus"]:
        gpu = GpuFeatures(name=entry["name"], bandwidth_Bps=float(entry["bandwidth_Bps"]),
                          cores=int(entry["cores"]), clock_hz=float(entry["clock_hz"]),
                          source=entry["source"])
        for key in [entry["name"], *entry["aliases"]]:
            index[key.casefold()] = gpu
            names.append(key)
    return index, tuple(names)


def gpu_features(name: str) -> GpuFeatures:
    """The (bandwidth, cores, clock) entry of the GPU called ``name`` (case-insensitive).

    Raises
    ------
    UnknownNameError
        If the GPU has no entry; the message lists the known ones.
    """
    index, names = _gpu_table()
    gpu = index.get(str(name).casefold())
    if gpu is None:
        raise UnknownNameError("GPU for the learned cost model", name, names,
                               field="gpus.json")
    return gpu


def known_gpus() -> tuple[GpuFeatures, ...]:
    """Every GPU of the feature table, once each, in file order."""
    index, _ = _gpu_table()
    return tuple(dict.fromkeys(index.values()))


def read_timings(path: str | Path) -> tuple[str, pd.DataFrame]:
    """Read one per-layer timing CSV: its kind and a frame of raw columns, ``gpu`` and ``time_s``.

    The kind is ``conv`` when the file has a ``matsize`` column and ``dense`` when it has
    ``dim_input``. Times are converted from the file's milliseconds (``timeUsed_median``) to
    seconds. Only fp32 rows (``precision`` 32) are accepted: the model knows no other dtype.
    """
    source = str(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise SpecError("no such file", source=source) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SpecError(f"not a readable CSV: {exc}", source=source) from None
    if "matsize" in frame.columns:
        kind = "conv"
    elif "dim_input" in frame.columns:
        kind = "dense"
    else:
        raise SpecError("cannot tell the layer kind: expected a 'matsize' (conv) or "
                        "'dim_input' (dense) column", source=source, field="columns",
                        value=list(frame.columns))
    needed = ["gpu_model", _TIME_COLUMN, *_CSV_COLUMNS[kind]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SpecError(f"missing columns for a {kind} timing file: {', '.join(missing)}",
                        source=source, field="columns")
    if "precision" in frame.columns and (frame["precision"] != 32).any():
        bad = frame.loc[frame["precision"] != 32, "precision"].iloc[0]
        raise SpecError("only fp32 rows (precision 32) are supported", source=source,
                        field="precision", value=bad.item() if hasattr(bad, "item") else bad)
    out = pd.DataFrame({"gpu": frame["gpu_model"].astype(str)})
    for csv_col, raw in _CSV_COLUMNS[kind].items():
        out[raw] = _numeric(frame[csv_col], source=source, field=csv_col)
    times = _numeric(frame[_TIME_COLUMN], source=source, field=_TIME_COLUMN)
    if (times <= 0).any():
        raise SpecError("times must be positive", source=source, field=_TIME_COLUMN,
                        value=float(times[times <= 0].iloc[0]))
    out["time_s"] = times * 1e-3
    for gpu_name in out["gpu"].unique():
        try:
            triple = gpu_features(gpu_name)
        except UnknownNameError as exc:
            raise UnknownNameError(exc.kind, exc.name, exc.valid, source=source,
                                   field="gpu_model") from None
        rows = out["gpu"] == gpu_name
        for col, value in zip(GPU_COLUMNS, triple.as_tuple()):
            out.loc[rows, col] = value
    return kind, out[["gpu", *RAW_COLUMNS[kind], "time_s"]]


def _numeric(column: pd.Series, *, source: str, field: str) -> pd.Series:
    if column.dtype == bool or column.dtype == object:
        mapped = column.map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
        if mapped.notna().all():
            return mapped.astype(float)
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise SpecError("non-numeric value", source=source, field=field,
                        value=column[values.isna()].iloc[0])
    return values.astype(float)


def conv_macs(raw: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
    """Multiply-adds of a conv row, as the original notebooks counted them (no rounding)::

        batch * ((matsize - (padding == 0) * (kernel - 1)) / stride)**2 * kernel**2
              * channels_in * channels_out
    """
    valid = np.asarray(raw["padding"], dtype=float) == 0
    side = (np.asarray(raw["matsize"], float) - valid * (np.asarray(raw["kernel"], float) - 1)) \
        / np.asarray(raw["stride"], float)
    return (np.asarray(raw["batch"], float) * side ** 2 * np.asarray(raw["kernel"], float) ** 2
            * np.asarray(raw["channels_in"], float) * np.asarray(raw["channels_out"], float))


def design_matrix(kind: str, raw: pd.DataFrame) -> tuple[tuple[str, ...], np.ndarray]:
    """Feature names and the float64 matrix (rows x features) for raw columns of ``kind``."""
    if kind not in KINDS:
        raise UnknownNameError("layer kind", kind, KINDS)
    col = {c: np.asarray(raw[c], dtype=float) for c in RAW_COLUMNS[kind]}
    feats: dict[str, np.ndarray] = {}
    if kind == "conv":
        for c in ("batch", "matsize", "kernel", "channels_in", "channels_out", "stride"):
            feats[f"log_{c}"] = _log(col[c])
        side = (col["matsize"] - (col["padding"] == 0) * (col["kernel"] - 1)) / col["stride"]
        feats["padding_same"] = col["padding"]
        feats["bias"] = col["bias"]
        feats["log_macs"] = _log(conv_macs(col))
        feats["log_input_elems"] = _log(col["batch"] * col["matsize"] ** 2 * col["channels_in"])
        feats["log_output_elems"] = _log(col["batch"] * side ** 2 * col["channels_out"])
        feats["log_weights"] = _log(col["kernel"] ** 2 * col["channels_in"]
                                    * col["channels_out"])
    else:
        for c in ("batch", "dim_input", "dim_output"):
            feats[f"log_{c}"] = _log(col[c])
        feats["log_macs"] = _log(col["batch"] * col["dim_input"] * col["dim_output"])
        feats["log_input_elems"] = _log(col["batch"] * col["dim_input"])
        feats["log_output_elems"] = _log(col["batch"] * col["dim_output"])
        feats["log_weights"] = _log(col["dim_input"] * col["dim_output"])
    for code in (1, 2, 3):
        feats[f"activation_{code}"] = (col["activation"] == code).astype(float)
    for code in range(1, 7):
        feats[f"optimizer_{code}"] = (col["optimizer"] == code).astype(float)
    for c in GPU_COLUMNS:
        feats[f"log_{c}"] = _log(col[c])
    return tuple(feats), np.column_stack(list(feats.values()))


def _log(values: np.ndarray) -> np.ndarray:
    # Sizes are >= 1 in valid input; the floor only guards a VALID conv whose kernel exceeds the
    # input (no output), which the layer mapping never produces.
    return np.log(np.maximum(values, 1e-9))


# --- our layers -> raw features ---------------------------------------------------------------

def layer_kind(layer) -> str | None:
    """``"conv"`` or ``"dense"`` if the learned model can describe ``layer``, else ``None``.

    A ``Convolution`` qualifies unless it is grouped or dilated (the training data has neither);
    every ``InnerProduct`` qualifies. Other layer types are left to the fallback model.
    """
    if layer.type == "Convolution":
        attrs = layer.attrs
        if attrs.get("groups", 1) != 1 or tuple(attrs.get("dilation_hw", (1, 1))) != (1, 1):
            return None
        return "conv"
    if layer.type == "InnerProduct":
        return "dense"
    return None


def layer_raw_features(layer, kind: str) -> dict[str, float]:
    """Raw feature values of ``layer`` (without ``optimizer`` and the GPU columns).

    Conv: ``matsize``, ``kernel`` and ``stride`` are the geometric means of height and width
    (exact for square layers, which is all the training data holds; for a non-square input the
    area, hence the work, is preserved). Explicit padding ``(ph, pw)`` counts as SAME when any
    pad is non-zero (a Caffe ``pad = k // 2`` gives SAME's output size) and as VALID otherwise.
    An activation other than none/relu/tanh/sigmoid is coded as relu (a cheap fused epilogue).

    Dense: a rank-3 input ``[N, S, D]`` is ``N*S`` rows of ``D`` features; a rank-4 input is
    flattened (as the layer itself does). Bias is always on in the training data, so it is not a
    feature.
    """
    if kind == "conv":
        n, h, w, _ = layer.input_shapes[0]
        attrs = layer.attrs
        kh, kw = attrs["kernel_hw"]
        sh, sw = attrs["stride_hw"]
        padding = attrs["padding"]
        if isinstance(padding, str):
            same = padding == "SAME"
        else:
            same = any(p > 0 for p in padding)
        return {"batch": float(n), "matsize": math.sqrt(h * w), "kernel": math.sqrt(kh * kw),
                "channels_in": float(attrs["in_channels"]),
                "channels_out": float(attrs["out_channels"]), "stride": math.sqrt(sh * sw),
                "padding": 1.0 if same else 0.0, "bias": 1.0 if attrs.get("bias") else 0.0,
                "activation": float(_activation_code(attrs.get("activation_fn")))}
    if kind == "dense":
        shape = layer.input_shapes[0]
        if len(shape) == 3:
            rows, dim_in = shape[0] * shape[1], shape[2]
        else:
            rows, dim_in = shape[0], int(np.prod(shape[1:]))
        return {"batch": float(rows), "dim_input": float(dim_in),
                "dim_output": float(layer.output_shape[-1]),
                "activation": float(_activation_code(layer.attrs.get("activation_fn")))}
    raise UnknownNameError("layer kind", kind, KINDS)


def _activation_code(name) -> int:
    if name is None:
        return 0
    return ACTIVATION_CODES.get(str(name).lower(), ACTIVATION_CODES["relu"])
