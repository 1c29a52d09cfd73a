"""Per-layer, per-phase compute time on a device: the analytical cost model.

The default is a roofline (Williams, Waterman, Patterson, CACM 2009): a phase takes the longer of its
compute time, FLOPs / (peak FLOP/s at the dtype x the device's efficiency for the op class), and its
memory time, bytes / (memory bandwidth x memory efficiency). ``combine="sum"`` adds the two instead,
which is Paleo's per-layer rule (Qi et al., ICLR 2017, section 3.1) without its quirks; the exact
Paleo arithmetic lives in ``simulator.paleo``.

Unlike Paleo, this model counts backward-data and backward-filter of a convolution at the forward's
multiply-adds (no dilated-gradient over-count, Paleo bug of section 2.2), charges BatchNorm,
activations, LRN and other elementwise layers their memory traffic, and uses SI units throughout.
Convolutions take the fastest of the algorithms the device's software stack offers (direct, or
Winograd's F(2x2,3x3) for eligible 3x3 layers, or cuDNN's FFT algorithms;
:mod:`simulator.fastconv`).

Cost models share one small interface (:class:`CostModel`) and a registry, so profiled and learned
models can stand in for the roofline wherever simulations run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from simulator.errors import SpecError, UnknownNameError
from simulator.fastconv import DIRECT, algorithm_works
from workloads.graph import Layer, LayerGraph
from workloads.ops import PHASES, Work

DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1}

# Parameter-update cost per parameter for each optimizer: (FLOPs, elements read, elements written).
# SGD: w -= lr*g (read w, g; write w; Paleo section 2.5 counts 2 FLOPs and 3 accesses).
# Momentum: v = mu*v + g; w -= lr*v. Adam (Kingma & Ba 2015, Algorithm 1): m, v, bias corrections,
# sqrt and divide.
OPTIMIZERS = {
    "sgd": (2, 2, 1),
    "momentum": (4, 3, 2),
    "adam": (12, 4, 3),
}

# Op classes whose arithmetic runs on the matrix (tensor-core) units at the training dtype; the rest
# run on the vector units at fp32 rates.
MATRIX_OP_CLASSES = ("conv", "matmul")


class CostModel(Protocol):
    """Seconds for one phase of one layer on one device."""

    name: str

    def phase_time_s(self, layer: Layer, phase: str, device, *, dtype: str) -> float: ...

    def update_time_s(self, params: int, device, *, dtype: str, optimizer: str) -> float: ...


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPE_BYTES:
        raise UnknownNameError("dtype", dtype, list(DTYPE_BYTES))
    return dtype


@dataclass(frozen=True, kw_only=True)
class RooflineCostModel:
    """Roofline per layer phase; ``combine='sum'`` adds compute and memory time (Paleo's rule)."""

    combine: str = "max"
    name: str = "roofline"

    def __post_init__(self) -> None:
        if self.combine not in ("max", "sum"):
            raise SpecError("combine must be 'max' or 'sum'", field="combine", value=self.combine)

    def work_time_s(self, work: Work, op_class: str, device, *, dtype: str) -> float:
        """Time of ``work`` of class ``op_class`` on ``device`` at ``dtype``."""
        if work.flops == 0 and work.elems == 0:
            return 0.0
        compute_s = 0.0
        if work.flops:
            compute_dtype = dtype if op_class in MATRIX_OP_CLASSES else _vector_dtype(device, dtype)
            compute_s = work.flops / (device.peak(compute_dtype) * device.efficiency(op_class))
        memory_s = (work.elems * DTYPE_BYTES[dtype]
                    / (device.memory_bandwidth_Bps * device.memory_efficiency))
        if self.combine == "sum":
            return compute_s + memory_s
        return max(compute_s, memory_s)

    def phase_time_s(self, layer: Layer, phase: str, device, *, dtype: str = "fp32") -> float:
        """The phase's time; a convolution takes its fastest algorithm among the device's
        ``conv_algorithms`` (:mod:`simulator.fastconv`), as autotuning frameworks do."""
        check_dtype(dtype)
        algorithms = getattr(device, "conv_algorithms", (DIRECT,))
        if layer.op_class != "conv" or algorithms == (DIRECT,):
            return self.work_time_s(layer.work[phase], layer.op_class, device, dtype=dtype)
        return min(sum(self.work_time_s(work, layer.op_class, device, dtype=dtype) / fraction
                       for work, fraction in kernels)
                   for _, kernels in algorithm_works(layer, phase, algorithms, dtype))

    def update_time_s(self, params: int, device, *, dtype: str = "fp32",
                      optimizer: str = "sgd") -> float:
        """One optimizer step over ``params`` parameters (fp32 optimizer state)."""
        flops, reads, writes = optimizer_costs(optimizer)
        work = Work(flops=flops * params, read_elems=reads * params, write_elems=writes * params)
        return self.work_time_s(work, "elementwise", device, dtype="fp32")


def optimizer_costs(optimizer: str) -> tuple[int, int, int]:
    try:
        return OPTIMIZERS[optimizer]
    except KeyError:
        raise UnknownNameError("optimizer", optimizer, list(OPTIMIZERS)) from None


def _vector_dtype(device, dtype: str) -> str:
    """Elementwise arithmetic runs on the vector units; use fp32 rates where the device has them."""
    return "fp32" if "fp32" in device.peak_flops else dtype


_COST_MODELS = {
    "roofline": lambda: RooflineCostModel(combine="max"),
    "roofline-sum": lambda: RooflineCostModel(combine="sum"),
}

# Parameterised names "KIND:ARGUMENT" -> "module:factory", the factory called with ARGUMENT (a
# path). Imported on use: those modules build on this one.
_PARAMETERISED_COST_MODELS = {
    "learned": "simulator.costmodels.learned_cost:load_learned_cost_model",
    "profiled": "simulator.costmodels.profiled:load_profiled_cost_model",
    "paleo": "simulator.paleo.costmodel:paleo_cost_model",
}
#: The parameterised forms, as help texts and error messages show them.
PARAMETERISED_COST_MODELS = ("learned:MODEL.json", "profiled:PROFILE.csv",
                             "paleo:PPP_COMP_OR_SOFTWARE[,MEMORY_TERM]")


def get_cost_model(name: str) -> CostModel:
    """A cost model by registry name.

    Plain names (:func:`cost_models`) or a parameterised ``learned:MODEL.json`` (a model file
    written by ``paleosim costmodel fit``) or ``profiled:PROFILE.csv`` (measured layer times);
    see ``docs/COST_MODELS.md``. Unknown names raise :class:`UnknownNameError` listing both.
    """
    import importlib

    if name in _COST_MODELS:
        return _COST_MODELS[name]()
    kind, sep, argument = str(name).partition(":")
    if sep and kind in _PARAMETERISED_COST_MODELS:
        if not argument:
            raise SpecError(f"cost model {kind!r} needs an argument: "
                            f"{[f for f in PARAMETERISED_COST_MODELS if f.startswith(kind)][0]}",
                            field="cost_model", value=name)
        module_name, factory = _PARAMETERISED_COST_MODELS[kind].split(":")
        return getattr(importlib.import_module(module_name), factory)(argument)
    raise UnknownNameError("cost model", name,
                           list(_COST_MODELS) + list(PARAMETERISED_COST_MODELS))


def cost_models() -> tuple[str, ...]:
    """Plain registry names; :data:`PARAMETERISED_COST_MODELS` lists the forms with a file."""
    return tuple(sorted(_COST_MODELS))


def layer_times_s(graph: LayerGraph, device, *, dtype: str = "fp32",
                  cost_model: CostModel | None = None) -> dict[str, dict[str, float]]:
    """``{layer name: {phase: seconds}}`` for every layer of ``graph``."""
    model = cost_model or RooflineCostModel()
    check_dtype(dtype)
    return {layer.name: {phase: model.phase_time_s(layer, phase, device, dtype=dtype)
                         for phase in PHASES} for layer in graph.layers}
