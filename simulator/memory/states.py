"""Model states: the bytes of weights, gradients and optimizer state one rank holds.

Mixed-precision training with Adam keeps, per parameter, 2 bytes of fp16 weights, 2 bytes of fp16
gradients and K = 12 bytes of optimizer state: an fp32 master copy of the weights, Adam's momentum
and variance (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models", SC20, section 3.1; Micikevicius et al., "Mixed Precision Training", ICLR 2018, for the
master copy). Generalised to every training dtype and optimizer of :data:`OPTIMIZERS`:

======================  ===============  =================  =====================================
per parameter           weights          gradients          optimizer state
======================  ===============  =================  =====================================
dtype of ``d`` bytes    ``d``            ``d``              4 x moments, + 4 (fp32 master) if d < 4
======================  ===============  =================  =====================================

with one fp32 moment for ``momentum``, two for ``adam`` and none for ``sgd``. So fp16/bf16 + Adam
is 2 + 2 + 12 = 16 bytes, fp32 + Adam 4 + 4 + 8 = 16 bytes, fp16 + plain SGD 2 + 2 + 4.

ZeRO data parallelism (same paper, section 5 and Figure 1) partitions these states over the ``dp``
data-parallel ranks: stage 1 the optimizer state, stage 2 also the gradients, stage 3 also the
weights (PyTorch FSDP's full sharding is stage 3). A partition holds whole elements:
``ceil(params / dp)`` of them.

Tensor parallelism (Shoeybi et al., "Megatron-LM", 2019, section 3) divides the parameters of the
layers that carry a ``tensor_parallel`` field by ``tp``; every other layer (LayerNorms, the biases
of row-parallel layers) is replicated on every tensor-parallel rank.
"""
from __future__ import annotations

from typing import Iterable

from simulator.costmodel import DTYPE_BYTES, OPTIMIZERS
from simulator.errors import SpecError, UnknownNameError
from workloads.graph import Layer

#: fp32 moments each optimizer keeps per parameter (Adam: Kingma & Ba 2015, Algorithm 1).
OPTIMIZER_MOMENTS = {"sgd": 0, "momentum": 1, "adam": 2}
FP32_BYTES = 4
ZERO_STAGES = (0, 1, 2, 3)
#: Values of a layer's ``tensor_parallel`` field (how Megatron-LM splits it over ``tp`` ranks).
TENSOR_PARALLEL_KINDS = ("column", "heads", "row", "vocab")


def check_positive_int(value, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError("must be an integer >= 1", field=field, value=value)
    return value


def check_zero_stage(value) -> int:
    if isinstance(value, bool) or value not in ZERO_STAGES:
        raise SpecError("must be 0, 1, 2 or 3", field="zero_stage", value=value)
    return int(value)


def bytes_per_param(dtype: str, optimizer: str) -> tuple[int, int, int]:
    """``(weights, gradients, optimizer state)`` bytes per parameter, before any sharding.

    >>> bytes_per_param("fp16", "adam"), bytes_per_param("fp32", "adam")
    ((2, 2, 12), (4, 4, 8))
    >>> bytes_per_param("bf16", "sgd"), bytes_per_param("fp32", "momentum")
    ((2, 2, 4), (4, 4, 4))
    """
    if dtype not in DTYPE_BYTES:
        raise UnknownNameError("dtype", str(dtype), list(DTYPE_BYTES), field="dtype")
    if optimizer not in OPTIMIZERS:
        raise UnknownNameError("optimizer", str(optimizer), list(OPTIMIZERS), field="optimizer")
    d = DTYPE_BYTES[dtype]
    master = FP32_BYTES if d < FP32_BYTES else 0
    return d, d, FP32_BYTES * OPTIMIZER_MOMENTS[optimizer] + master


def shard(elements: float, parts: int) -> float:
    """Elements one of ``parts`` partitions holds: ``ceil(elements / parts)``."""
    return float(-(-int(elements) // parts)) if float(elements).is_integer() else elements / parts


def model_state_bytes(params: float, *, dtype: str, optimizer: str, zero_stage: int = 0,
                      dp: int = 1) -> tuple[float, float, float]:
    """``(weights, gradients, optimizer)`` bytes on one rank holding ``params`` parameters
    (already divided by tensor and pipeline parallelism), with ZeRO stage ``zero_stage`` over
    ``dp`` data-parallel ranks.

    Reproduces Figure 1 of Rajbhandari et al. (7.5B parameters, 64 GPUs, fp16 + Adam):

    >>> [round(sum(model_state_bytes(7.5e9, dtype="fp16", optimizer="adam", zero_stage=z,
    ...                              dp=64)) / 1e9, 1) for z in (0, 1, 2, 3)]
    [120.0, 31.4, 16.6, 1.9]
    """
    if params < 0:
        raise SpecError("must be >= 0", field="params", value=params)
    stage = check_zero_stage(zero_stage)
    check_positive_int(dp, "dp")
    w, g, o = bytes_per_param(dtype, optimizer)
    sharded = shard(params, dp)
    return (w * (sharded if stage >= 3 else params), g * (sharded if stage >= 2 else params),
            o * (sharded if stage >= 1 else params))


def tensor_parallel_kind(layer: Layer) -> str | None:
    """The layer's ``tensor_parallel`` field (``column``, ``heads``, ``row``, ``vocab``) or None."""
    kind = layer.fields.get("tensor_parallel")
    if kind is not None and kind not in TENSOR_PARALLEL_KINDS:
        raise UnknownNameError("tensor_parallel kind", str(kind), list(TENSOR_PARALLEL_KINDS),
                               field=f"layers.{layer.name}.tensor_parallel")
    return kind


def replicated_bias(layer: Layer) -> int:
    """Bias elements a row-parallel layer keeps whole on every rank (its output is reduced
    before the bias is added, Shoeybi et al. 2019, section 3)."""
    if not layer.attrs.get("bias"):
        return 0
    return int(layer.attrs.get("out_features", layer.attrs.get("out_channels", 0)) or 0)


def local_layer_params(layer: Layer, tp: int = 1) -> float:
    """Parameters of ``layer`` on one of ``tp`` tensor-parallel ranks."""
    kind = tensor_parallel_kind(layer)
    if tp == 1 or kind is None or not layer.params:
        return float(layer.params)
    if kind == "row":
        bias = replicated_bias(layer)
        return shard(layer.params - bias, tp) + bias
    return shard(layer.params, tp)


def local_params(layers: Iterable[Layer], *, tp: int = 1) -> float:
    """Parameters a rank holds for ``layers`` (a whole net or one pipeline stage's layers)."""
    check_positive_int(tp, "tp")
    return float(sum(local_layer_params(layer, tp) for layer in layers))
