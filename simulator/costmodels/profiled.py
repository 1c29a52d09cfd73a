"""A profiled cost model: measured per-layer times, looked up exactly or interpolated.

Profile CSV
-----------
One row per measured (device, layer shape, phase, batch). Columns:

``device``
    catalog device name (matched case-insensitively; catalog aliases resolve to their entry).
``dtype``
    optional, default ``fp32``.
``layer_type``
    the layer's type string, e.g. ``Convolution``.
``signature``
    the batch-independent shape of the layer, as :func:`layer_signature` writes it, e.g.
    ``Convolution|in=56x56x64|out=56x56x64|k=3x3|s=1x1|p=1x1|g=1|d=1x1``.
``phase``
    ``forward``, ``backward_data`` or ``backward_filter``.
``batch``
    the batch size measured (a positive integer).
``macs``
    forward multiply-adds of the layer at that batch (0 for layers without any).
``time_s``
    measured seconds (>= 0).

:func:`profile_frame` writes these rows from a net and a table of times.

Lookup, for one layer phase on one device at one dtype, in order:

1. **same signature**: the measured time at the same batch (``exact``), else linear
   interpolation in batch between the nearest measured batches below and above
   (``batch-interpolated``);
2. **same layer type** (layers with multiply-adds only): log-log interpolation in forward MACs
   between the nearest measured layers below and above, ``log t = log t0 + (log t1 - log t0)
   (log m - log m0) / (log m1 - log m0)`` (``macs-interpolated``; an exact MAC match takes the
   mean of the times there; linear when a bracketing time is zero);
3. otherwise the **fallback** cost model (the roofline by default), or, with ``fallback=None``,
   a :class:`~simulator.errors.SpecError` naming the layer, phase, device and batch.

Nothing is extrapolated beyond the measured batches or MACs. Optimizer updates are not profiled:
:meth:`ProfiledCostModel.update_time_s` uses the roofline.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from simulator.costmodel import RooflineCostModel, check_dtype
from simulator.errors import SpecError, UnknownNameError
from workloads.ops import PHASES

PROFILE_COLUMNS = ("device", "dtype", "layer_type", "signature", "phase", "batch", "macs",
                   "time_s")
LOOKUP_KINDS = ("exact", "batch-interpolated", "macs-interpolated", "fallback")


def layer_signature(layer) -> str:
    """A batch-independent key for a layer's shape: type, per-sample shapes, window geometry."""
    parts = [layer.type,
             "in=" + ";".join("x".join(str(d) for d in s[1:]) for s in layer.input_shapes),
             "out=" + "x".join(str(d) for d in layer.output_shape[1:])]
    attrs = layer.attrs
    for key, label in (("kernel_hw", "k"), ("stride_hw", "s"), ("pad_hw", "p"),
                       ("groups", "g"), ("dilation_hw", "d")):
        if key in attrs:
            value = attrs[key]
            text = "x".join(str(v) for v in value) if isinstance(value, (tuple, list)) \
                else str(value)
            parts.append(f"{label}={text}")
    return "|".join(parts)


@dataclass(frozen=True, kw_only=True, eq=False)
class Profile:
    """Measured times indexed for lookup (build with :meth:`from_frame` or :meth:`read_csv`)."""

    source: str
    by_signature: Mapping[tuple, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    by_type: Mapping[tuple, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    rows: int

    @classmethod
    def read_csv(cls, path: str | Path) -> "Profile":
        source = str(path)
        try:
            frame = pd.read_csv(path, dtype={"signature": str, "layer_type": str,
                                             "device": str, "phase": str})
        except FileNotFoundError:
            raise SpecError("no such file", source=source) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SpecError(f"not a readable CSV: {exc}", source=source) from None
        return cls.from_frame(frame, source=source)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, source: str = "<profile>") -> "Profile":
        frame = frame.copy()
        if "dtype" not in frame.columns:
            frame["dtype"] = "fp32"
        missing = [c for c in PROFILE_COLUMNS if c not in frame.columns]
        if missing:
            raise SpecError(f"missing columns: {', '.join(missing)}; a profile has "
                            f"{', '.join(PROFILE_COLUMNS)} (dtype optional)", source=source,
                            field="columns")
        if frame.empty:
            raise SpecError("the profile has no rows", source=source)
        for i, row in enumerate(frame.itertuples(index=False), start=2):  # line 1 = header
            _check_row(row, source=source, line=i)
        frame["device"] = [_canonical_device(d) for d in frame["device"]]
        frame["batch"] = frame["batch"].astype(int)
        key = ["device", "dtype", "phase", "signature", "batch"]
        dup = frame.duplicated(key, keep=False)
        if dup.any():
            first = frame[dup].iloc[0]
            raise SpecError("duplicate measurement (same device, dtype, phase, signature and "
                            "batch)", source=source, field="signature",
                            value=f"{first['signature']} batch {first['batch']}")
        by_signature = {}
        for k, rows in frame.groupby(["device", "dtype", "phase", "signature"], sort=True):
            rows = rows.sort_values("batch")
            by_signature[k] = (rows["batch"].to_numpy(float), rows["time_s"].to_numpy(float))
        by_type = {}
        with_macs = frame[frame["macs"] > 0]
        for k, rows in with_macs.groupby(["device", "dtype", "phase", "layer_type"], sort=True):
            mean = rows.groupby("macs")["time_s"].mean()
            by_type[k] = (mean.index.to_numpy(float), mean.to_numpy(float))
        return cls(source=source, by_signature=by_signature, by_type=by_type, rows=len(frame))


def _check_row(row, *, source: str, line: int) -> None:
    where = f"line {line}"
    if row.phase not in PHASES:
        raise UnknownNameError("phase", row.phase, PHASES, source=source, field=f"{where}.phase")
    check_dtype(row.dtype)
    for name in ("device", "layer_type", "signature"):
        value = getattr(row, name)
        if not isinstance(value, str) or not value.strip():
            raise SpecError("must be a non-empty string", source=source,
                            field=f"{where}.{name}", value=value)
    batch = row.batch
    if not (isinstance(batch, (int, np.integer)) or (isinstance(batch, float)
                                                     and batch.is_integer())) or batch < 1:
        raise SpecError("batch must be a positive integer", source=source,
                        field=f"{where}.batch", value=batch)
    for name in ("macs", "time_s"):
        value = getattr(row, name)
        if not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise SpecError("must be a finite number >= 0", source=source,
                            field=f"{where}.{name}", value=value)


def _canonical_device(name: str) -> str:
    """The catalog entry's name for ``name`` (aliases resolved), casefolded for matching."""
    from simulator.catalog import get_device
    try:
        return get_device(name).name.casefold()
    except UnknownNameError:  # a device outside the catalog: matched by its own name
        return name.casefold()


@dataclass(frozen=True, kw_only=True, eq=False)
class ProfiledCostModel:
    """Phase times from a :class:`Profile`; ``fallback=None`` makes uncovered layers an error."""

    profile: Profile
    fallback: RooflineCostModel | None = field(default_factory=RooflineCostModel)
    name: str = "profiled"

    def lookup(self, layer, phase: str, device, *, dtype: str = "fp32") -> tuple[float, str]:
        """(seconds, how) where ``how`` is one of :data:`LOOKUP_KINDS`."""
        check_dtype(dtype)
        if phase not in PHASES:
            raise UnknownNameError("phase", phase, PHASES)
        dev = device.name.casefold()
        batch = layer.input_shapes[0][0] if layer.input_shapes else layer.output_shape[0]
        points = self.profile.by_signature.get((dev, dtype, phase, layer_signature(layer)))
        if points is not None:
            batches, times = points
            hit = _bracket(batches, float(batch))
            if hit is not None:
                lo, hi = hit
                if lo == hi:
                    return float(times[lo]), "exact"
                frac = (batch - batches[lo]) / (batches[hi] - batches[lo])
                return float(times[lo] + frac * (times[hi] - times[lo])), "batch-interpolated"
        points = self.profile.by_type.get((dev, dtype, phase, layer.type))
        if points is not None and layer.macs > 0:
            macs, times = points
            hit = _bracket(macs, float(layer.macs))
            if hit is not None:
                return _loglog(macs, times, float(layer.macs), *hit), "macs-interpolated"
        if self.fallback is None:
            raise SpecError(f"layer {layer.name!r} ({layer.type}, {phase}, batch {batch}) on "
                            f"{device.name} at {dtype} is not covered by the profile",
                            source=self.profile.source, field="signature",
                            value=layer_signature(layer))
        return self.fallback.phase_time_s(layer, phase, device, dtype=dtype), "fallback"

    def phase_time_s(self, layer, phase: str, device, *, dtype: str = "fp32") -> float:
        return self.lookup(layer, phase, device, dtype=dtype)[0]

    def update_time_s(self, params: int, device, *, dtype: str = "fp32",
                      optimizer: str = "sgd") -> float:
        """The roofline's optimizer step (profiles hold layer phases only)."""
        model = self.fallback or RooflineCostModel()
        return model.update_time_s(params, device, dtype=dtype, optimizer=optimizer)

    def coverage(self, graph, device, *, dtype: str = "fp32") -> pd.DataFrame:
        """How each layer phase of ``graph`` is answered: layer, phase, time_s, how."""
        rows = []
        for layer in graph.layers:
            for phase in PHASES:
                seconds, how = self.lookup(layer, phase, device, dtype=dtype)
                rows.append({"layer": layer.name, "phase": phase, "time_s": seconds,
                             "how": how})
        return pd.DataFrame(rows, columns=["layer", "phase", "time_s", "how"])


def _bracket(xs: np.ndarray, x: float) -> tuple[int, int] | None:
    """Indices (i, i) of an exact match in sorted ``xs``, (i, i+1) around ``x``, or None."""
    i = bisect.bisect_left(xs.tolist(), x)
    if i < len(xs) and xs[i] == x:
        return i, i
    if i == 0 or i == len(xs):
        return None
    return i - 1, i


def _loglog(xs: np.ndarray, ys: np.ndarray, x: float, lo: int, hi: int) -> float:
    if lo == hi:
        return float(ys[lo])
    y0, y1 = float(ys[lo]), float(ys[hi])
    if y0 <= 0 or y1 <= 0:
        frac = (x - xs[lo]) / (xs[hi] - xs[lo])
        return y0 + frac * (y1 - y0)
    frac = math.log(x / xs[lo]) / math.log(xs[hi] / xs[lo])
    return math.exp(math.log(y0) + frac * (math.log(y1) - math.log(y0)))


def profile_frame(graph, device_name: str, times: Mapping[str, Mapping[str, float]], *,
                  dtype: str = "fp32") -> pd.DataFrame:
    """Profile rows for ``graph`` (at its batch) from ``{layer: {phase: seconds}}``.

    Layers or phases missing from ``times`` are skipped, so a partial profile is easy to write.
    """
    check_dtype(dtype)
    rows = []
    for layer in graph.layers:
        for phase, seconds in times.get(layer.name, {}).items():
            if phase not in PHASES:
                raise UnknownNameError("phase", phase, PHASES, field=f"times.{layer.name}")
            rows.append({"device": device_name, "dtype": dtype, "layer_type": layer.type,
                         "signature": layer_signature(layer), "phase": phase,
                         "batch": graph.batch, "macs": layer.macs, "time_s": float(seconds)})
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


def load_profiled_cost_model(path: str | Path) -> ProfiledCostModel:
    """The registry's ``profiled:PATH`` entry: a profile CSV with the roofline as fallback."""
    return ProfiledCostModel(profile=Profile.read_csv(path), name=f"profiled:{path}")
