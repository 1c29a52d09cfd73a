"""Peak memory of one rank, and the check that it fits its device.

:func:`training_memory` adds the model states (:mod:`simulator.memory.states`) and the activations
of the microbatches in flight (:mod:`simulator.memory.activations`,
:mod:`simulator.memory.pipeline`). :func:`check_fits` raises :class:`OutOfMemoryError` (an
:class:`~simulator.errors.InfeasibleError`) naming the rank, its node and device, the capacity,
the bytes needed with their breakdown, and the overflow.

What is not counted: the memory allocator's fragmentation, communication buffers (DDP's gradient
buckets, NCCL's), cuDNN workspaces and the CUDA context. Pass ``workspace_bytes`` for the first
ones and ``reserve_bytes`` for the context (a CUDA context and framework typically take some
hundreds of MiB; the default 0 assumes all of ``Device.memory_bytes`` is usable).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from simulator.errors import InfeasibleError, SpecError
from simulator.memory.activations import activation_memory, as_layers
from simulator.memory.states import (bytes_per_param, check_zero_stage, local_layer_params,
                                     local_params, model_state_bytes)
from simulator.units import GiB, KiB, MiB
from workloads.graph import Layer, LayerGraph

COMPONENTS = ("weights", "gradients", "optimizer", "activations", "workspace")


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Peak bytes on one rank, by what they hold.

    ``weights``, ``gradients``, ``optimizer``: model states (after tensor, pipeline and ZeRO
    partitioning); ``activations``: tensors kept for the backward pass, for every microbatch in
    flight; ``workspace``: transient buffers (a rematerialised Block under full recomputation,
    ZeRO-3's gathered layer, anything passed as ``workspace_bytes``).
    """

    weights: float
    gradients: float
    optimizer: float
    activations: float
    workspace: float = 0.0

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not value >= 0:
                raise SpecError("must be a number of bytes >= 0", field=f"memory.{name}",
                                value=value)
            object.__setattr__(self, name, float(value))

    @property
    def total(self) -> float:
        return sum(getattr(self, name) for name in COMPONENTS)

    def __add__(self, other: "MemoryBreakdown") -> "MemoryBreakdown":
        """Two sets of layers on one rank: states and activations add; transient workspaces are
        not live at once, so the larger one counts."""
        return MemoryBreakdown(weights=self.weights + other.weights,
                               gradients=self.gradients + other.gradients,
                               optimizer=self.optimizer + other.optimizer,
                               activations=self.activations + other.activations,
                               workspace=max(self.workspace, other.workspace))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def training_memory(graph_or_layers: LayerGraph | Sequence[Layer] | None = None, *, dtype: str,
                    optimizer: str, params: float | None = None, zero_stage: int = 0,
                    dp: int = 1, tp: int = 1, sequence_parallel: bool = False,
                    in_flight_microbatches: float = 1, recompute: str = "none",
                    workspace_bytes: float = 0.0) -> MemoryBreakdown:
    """Peak memory of one training rank.

    Parameters
    ----------
    graph_or_layers : LayerGraph, sequence of Layer, or None
        The net at the microbatch size, or one pipeline stage's layers. ``None`` counts model
        states only (give ``params``).
    dtype, optimizer : str
        The workload's training dtype and optimizer (``sgd``, ``momentum``, ``adam``).
    params : float, optional
        Parameters this rank holds before ZeRO partitioning; default: those of
        ``graph_or_layers`` on one of ``tp`` tensor-parallel ranks.
    zero_stage, dp : int
        ZeRO stage (0 to 3) and the data-parallel degree it partitions over.
    tp : int
        Tensor-parallel degree (layers with a ``tensor_parallel`` field are split).
    sequence_parallel : bool
        Megatron-LM sequence parallelism (activations split over ``tp``).
    in_flight_microbatches : float
        Microbatches whose activations are held at once (see
        :func:`~simulator.memory.pipeline.in_flight_microbatches`); 1 without pipelining.
    recompute : {"none", "selective", "full"}
        Activation recomputation policy.
    workspace_bytes : float
        Extra transient bytes to count (communication buffers, kernel workspaces).

    Examples
    --------
    GPT-3's 175 billion parameters with mixed-precision Adam: 16 bytes each.

    >>> training_memory(params=175e9, dtype="fp16", optimizer="adam").total / 1e12
    2.8
    """
    check_zero_stage(zero_stage)
    if not (isinstance(in_flight_microbatches, (int, float))
            and not isinstance(in_flight_microbatches, bool) and in_flight_microbatches >= 0):
        raise SpecError("must be a number >= 0", field="in_flight_microbatches",
                        value=in_flight_microbatches)
    layers = as_layers(graph_or_layers) if graph_or_layers is not None else ()
    if params is None:
        if graph_or_layers is None:
            raise SpecError("give a graph, its layers, or a parameter count", field="params")
        params = local_params(layers, tp=tp)
    weights, gradients, optim = model_state_bytes(params, dtype=dtype, optimizer=optimizer,
                                                  zero_stage=zero_stage, dp=dp)
    activations, workspace = 0.0, float(workspace_bytes)
    if layers:
        acts = activation_memory(layers, dtype=dtype, recompute=recompute, tp=tp,
                                 sequence_parallel=sequence_parallel)
        activations = in_flight_microbatches * acts.saved_bytes
        workspace += acts.recompute_bytes
        if zero_stage == 3 and dp > 1:  # each layer's weights are gathered whole before use
            largest = max((local_layer_params(layer, tp) for layer in layers), default=0.0)
            workspace += bytes_per_param(dtype, optimizer)[0] * largest
    return MemoryBreakdown(weights=weights, gradients=gradients, optimizer=optim,
                           activations=activations, workspace=workspace)


class OutOfMemoryError(InfeasibleError):
    """A rank's (or a device's ranks') peak memory exceeds the device's capacity.

    Attributes name the ``ranks``, the ``node``, the ``device`` name, ``capacity_bytes``,
    ``reserve_bytes``, ``needed_bytes``, ``overflow_bytes`` and the ``breakdown``.
    """

    def __init__(self, *, ranks: Sequence[int], node, device: str, capacity_bytes: float,
                 reserve_bytes: float, breakdown: MemoryBreakdown, others: int = 0) -> None:
        self.ranks = tuple(ranks)
        self.node = node
        self.device = device
        self.capacity_bytes = float(capacity_bytes)
        self.reserve_bytes = float(reserve_bytes)
        self.breakdown = breakdown
        self.needed_bytes = breakdown.total
        self.overflow_bytes = self.needed_bytes - (self.capacity_bytes - self.reserve_bytes)
        super().__init__(self._message(others))

    def _message(self, others: int) -> str:
        who = (f"rank {self.ranks[0]}" if len(self.ranks) == 1
               else "ranks " + ", ".join(str(r) for r in self.ranks))
        verb = "needs" if len(self.ranks) == 1 else "need"
        reserve = f", {format_bytes(self.reserve_bytes)} reserved" if self.reserve_bytes else ""
        unit = _unit(self.needed_bytes)
        parts = ", ".join(f"{name} {getattr(self.breakdown, name) / unit[1]:.1f}"
                          for name in COMPONENTS
                          if name != "workspace" or self.breakdown.workspace > 0)
        text = (f"{who} on {self.node} ({self.device}, {format_bytes(self.capacity_bytes)}"
                f"{reserve}) {verb} {format_bytes(self.needed_bytes)} ({parts}): over by "
                f"{format_bytes(self.overflow_bytes)}")
        if others:
            text += f" ({others} other device{'s' if others > 1 else ''} also overflow)"
        return text


def _unit(nbytes: float) -> tuple[str, float]:
    for name, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if nbytes >= size:
            return name, size
    return "B", 1.0


def format_bytes(nbytes: float) -> str:
    """``nbytes`` in binary units with one decimal, e.g. ``16.0 GiB``."""
    name, size = _unit(abs(nbytes))
    return f"{nbytes / size:.1f} {name}" if size > 1 else f"{nbytes:.0f} B"


def overflow_bytes(breakdown: MemoryBreakdown, device, *, reserve_bytes: float = 0.0) -> float:
    """Bytes by which ``breakdown`` exceeds ``device.memory_bytes - reserve_bytes`` (<= 0 fits)."""
    return breakdown.total - (device.memory_bytes - reserve_bytes)


def check_fits(breakdown: MemoryBreakdown, device, *, rank: int, node,
               reserve_bytes: float = 0.0) -> None:
    """Raise :class:`OutOfMemoryError` if ``breakdown`` does not fit ``device``.

    ``reserve_bytes`` is held back from ``device.memory_bytes`` (CUDA context, framework).

    >>> from simulator.catalog import get_device
    >>> check_fits(training_memory(params=175e9, dtype="fp16", optimizer="adam"),
    ...            get_device("V100"), rank=0, node=("gpu", 0, 0))
    Traceback (most recent call last):
    ...
    simulator.memory.breakdown.OutOfMemoryError: rank 0 on ('gpu', 0, 0) (V100, 16.0 GiB) needs \
2607.7 GiB (weights 326.0, gradients 326.0, optimizer 1955.8, activations 0.0): over by 2591.7 GiB
    """
    if not reserve_bytes >= 0:
        raise SpecError("must be a number of bytes >= 0", field="reserve_bytes",
                        value=reserve_bytes)
    if overflow_bytes(breakdown, device, reserve_bytes=reserve_bytes) > 0:
        raise OutOfMemoryError(ranks=(rank,), node=node, device=device.name,
                               capacity_bytes=device.memory_bytes, reserve_bytes=reserve_bytes,
                               breakdown=breakdown)
