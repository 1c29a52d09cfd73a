"""Cost models behind the one :class:`~simulator.costmodel.CostModel` interface, and energy.

- :mod:`~simulator.costmodels.profiled`: measured per-layer times from a CSV, looked up exactly
  or interpolated (:class:`ProfiledCostModel`; registry name ``profiled:PATH.csv``).
- :mod:`~simulator.costmodels.learned` and :mod:`~simulator.costmodels.learned_cost`: a small
  numpy model fitted on single-layer timings (:class:`LearnedModel`,
  :class:`LearnedCostModel`; registry name ``learned:MODEL.json``), warning with
  :class:`ExtrapolationWarning` outside its training range;
  :mod:`~simulator.costmodels.evaluate` measures its errors.
- :mod:`~simulator.costmodels.accelerator`: FODLAM's accelerator energy and latency from the
  published Eyeriss and EIE tables, with process-node scaling (:class:`AcceleratorCostModel`).
- :mod:`~simulator.costmodels.power`: energy per op, per device and per iteration of a timeline.

See ``docs/COST_MODELS.md`` for the formulas, their sources and the measured errors.
"""
from simulator.costmodels.accelerator import AcceleratorCostModel, FodlamData, totals
from simulator.costmodels.features import gpu_features, known_gpus, read_timings
from simulator.costmodels.learned import (
    ExtrapolationWarning, LearnedModel, fit_learned, read_training_files,
)
from simulator.costmodels.learned_cost import LearnedCostModel, load_learned_cost_model
from simulator.costmodels.power import device_energy, iteration_energy, op_energy
from simulator.costmodels.profiled import (
    Profile, ProfiledCostModel, layer_signature, load_profiled_cost_model, profile_frame,
)

__all__ = [
    "AcceleratorCostModel", "ExtrapolationWarning", "FodlamData", "LearnedCostModel",
    "LearnedModel", "Profile", "ProfiledCostModel", "device_energy", "fit_learned",
    "gpu_features", "iteration_energy", "known_gpus", "layer_signature",
    "load_learned_cost_model", "load_profiled_cost_model", "op_energy", "profile_frame",
    "read_timings", "read_training_files", "totals",
]
