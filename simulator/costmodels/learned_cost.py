"""The learned model behind the :class:`~simulator.costmodel.CostModel` interface.

How a layer phase is answered
-----------------------------
- ``Convolution`` (not grouped, not dilated) and ``InnerProduct`` layers are described by the
  features of :func:`~simulator.costmodels.features.layer_raw_features` plus the device's GPU
  triple (:func:`~simulator.costmodels.features.gpu_features`; a device without one is an error).
- ``forward`` is the model's prediction at optimizer 0 (forward only).
- The training data times a whole step at optimizer k > 0: forward + backward + update (+ an MSE
  loss, negligible). The backward time is therefore
  ``B = max(T(k) - T(0) - U, 0)``, with ``U`` the fallback roofline's update time for the layer's
  parameters under the same optimizer (``backward_optimizer``, SGD by default), clamped at zero
  because two noisy predictions may cross for tiny layers. ``B`` is split between
  ``backward_data`` and ``backward_filter`` in proportion to the fallback roofline's times for
  those two phases, so a layer fed by the input (no data gradient) puts all of ``B`` on
  ``backward_filter``.
- Every other layer type, grouped or dilated convolutions, and layer kinds the model file has no
  regressor for, fall back to the roofline (``fallback``); so does :meth:`update_time_s`.
- The training data is fp32 only. At another dtype the fp32 prediction is scaled by the
  roofline's time ratio ``t(dtype) / t(fp32)`` for that phase, with an
  :class:`~simulator.costmodels.learned.ExtrapolationWarning`.

Caveat: each measured time includes TensorFlow's per-``session.run`` overhead (a floor of about
0.1-0.3 ms per layer, see the data's README), so the learned times of small layers carry that
floor too; summed over a whole net they overstate a fused framework's step time.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.costmodel import RooflineCostModel, check_dtype
from simulator.costmodels.features import (
    GPU_COLUMNS, OPTIMIZER_CODES, gpu_features, layer_kind, layer_raw_features,
)
from simulator.costmodels.learned import ExtrapolationWarning, LearnedModel
from simulator.errors import UnknownNameError
from workloads.ops import PHASES

#: Optimizers both the learned data and the roofline's update model know.
BACKWARD_OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True, kw_only=True, eq=False)
class LearnedCostModel:
    """Per-layer phase times from a :class:`LearnedModel`, the roofline for the rest."""

    model: LearnedModel
    name: str = "learned"
    backward_optimizer: str = "sgd"
    fallback: RooflineCostModel = field(default_factory=RooflineCostModel)
    # (kind, raw features, GPU triple) -> (forward s, step s): each layer shape is predicted once
    # per model instance (the three phases and repeated layers reuse it).
    _memo: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.backward_optimizer not in BACKWARD_OPTIMIZERS:
            raise UnknownNameError("backward optimizer", self.backward_optimizer,
                                   BACKWARD_OPTIMIZERS, field="backward_optimizer")

    def covers(self, layer) -> str | None:
        """The model kind answering ``layer``, or ``None`` if the fallback does."""
        kind = layer_kind(layer)
        return kind if kind in self.model.kinds else None

    def phase_time_s(self, layer, phase: str, device, *, dtype: str = "fp32") -> float:
        check_dtype(dtype)
        if phase not in PHASES:
            raise UnknownNameError("phase", phase, PHASES)
        kind = self.covers(layer)
        if kind is None:
            return self.fallback.phase_time_s(layer, phase, device, dtype=dtype)
        forward_s, step_s = self._predict(layer, kind, device)
        if phase == "forward":
            seconds = forward_s
        else:
            update_s = self.fallback.update_time_s(layer.params, device, dtype="fp32",
                                                   optimizer=self.backward_optimizer)
            backward_s = max(step_s - forward_s - update_s, 0.0)
            data = self.fallback.phase_time_s(layer, "backward_data", device, dtype="fp32")
            filt = self.fallback.phase_time_s(layer, "backward_filter", device, dtype="fp32")
            share = data / (data + filt) if data + filt > 0 else 0.5
            seconds = backward_s * (share if phase == "backward_data" else 1.0 - share)
        if dtype != "fp32":
            seconds *= self._dtype_ratio(layer, phase, device, dtype)
        return seconds

    def update_time_s(self, params: int, device, *, dtype: str = "fp32",
                      optimizer: str = "sgd") -> float:
        """The fallback roofline's optimizer step (the data has no separate update times)."""
        return self.fallback.update_time_s(params, device, dtype=dtype, optimizer=optimizer)

    def _predict(self, layer, kind: str, device) -> tuple[float, float]:
        """(forward seconds, training-step seconds at ``backward_optimizer``)."""
        raw = layer_raw_features(layer, kind)
        gpu = gpu_features(device.name).as_tuple()
        key = (kind, tuple(raw.items()), gpu)
        if key in self._memo:
            return self._memo[key]
        rows = []
        for optimizer in ("none", self.backward_optimizer):
            rows.append({**raw, "optimizer": float(OPTIMIZER_CODES[optimizer]),
                         **dict(zip(GPU_COLUMNS, gpu))})
        forward_s, step_s = self.model.predict_s(kind, pd.DataFrame(rows))
        self._memo[key] = (float(forward_s), float(step_s))
        return self._memo[key]

    def _dtype_ratio(self, layer, phase: str, device, dtype: str) -> float:
        warnings.warn(f"learned cost model: trained on fp32 only; {layer.name} at {dtype} is "
                      f"the fp32 prediction scaled by the roofline's {dtype}/fp32 ratio",
                      ExtrapolationWarning, stacklevel=3)
        base = self.fallback.phase_time_s(layer, phase, device, dtype="fp32")
        if base == 0:
            return 1.0
        return self.fallback.phase_time_s(layer, phase, device, dtype=dtype) / base


def load_learned_cost_model(path: str | Path) -> LearnedCostModel:
    """The registry's ``learned:PATH`` entry: a model file read from ``path``."""
    return LearnedCostModel(model=LearnedModel.load(path), name=f"learned:{path}")
