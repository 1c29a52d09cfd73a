"""Activation memory: the tensors each layer keeps from its forward pass until its backward pass.

The count follows what autograd frameworks save for the backward pass (PyTorch's saved tensors,
cuDNN's reserve spaces), per layer type, at the graph's batch (pass the graph at the microbatch
size). A tensor saved by several layers is counted once, against the first layer in topological
order that saves it (frameworks keep one storage, however many references). Per layer:

==========================================  ===================================================
layer                                       saved for backward
==========================================  ===================================================
Convolution, Deconvolution, InnerProduct    its input (for the weight gradient); a fused
                                            ``normalizer_fn`` adds the pre-norm output, a fused
                                            ``activation_fn`` what that activation saves
MatMul (two activations)                    each operand whose partner needs a gradient
Attention core                              the fused QKV input; the softmax probabilities;
                                            with ``dropout`` > 0 also the 1-byte mask and the
                                            dropped-out probabilities
LayerNorm, BatchNorm                        the input (per-row statistics are ignored)
Activation relu/relu6/sigmoid/tanh          the output
Activation gelu/silu/swish                  the input
Dropout                                     a 1-byte mask per element (none at keep prob 1)
Softmax, Sigmoid                            the output
Pooling (max), LRN                          input and output
Elementwise prod/max                        every input
Embedding                                   the token ids, 8 bytes each (int64)
RNN/LSTM/GRU                                input, output (hidden states), gate activations,
                                            and the LSTM's cell states
Input, Reshape, Flatten, Concatenate,       nothing
Elementwise sum, average pools, upsampling
==========================================  ===================================================

Tensors are stored at the training dtype; masks at 1 byte; Flatten and Reshape outputs are views
of their input (the same storage). A layer whose output needs no gradient (no parameters
upstream) saves nothing. This reproduces Korthikanti et al., "Reducing Activation
Recomputation in Large Transformer Models" (MLSys 2023, arXiv 2205.05198), section 4.1: for a
GPT layer with attention dropout it gives exactly ``s*b*h*(34 + 5*a*s/h)`` bytes at fp16
(eq. 1) and, with tensor parallelism over ``t`` ranks, ``s*b*h*(10 + 24/t + 5*a*s/(h*t))``
(eq. 2): tensors produced by ``column``/``heads``-parallel layers (and the elementwise layers
after them) are split over ``t``; ``row``-parallel layers produce whole tensors again. With
sequence parallelism (section 4.2.2) every tensor is split over ``t``.

Recomputation (Chen et al., "Training Deep Nets with Sublinear Memory Cost", 2016; Korthikanti
et al. section 5):

- ``selective``: the attention core's ``s x s`` tensors are recomputed, not kept.
- ``full``: a layer inside a top-level Block (a transformer layer ``layer{i}``, a ResNet unit)
  keeps only the Block's inputs; its other activations are rematerialised during the Block's
  backward pass, so the peak also holds the largest Block's activations once
  (:attr:`ActivationMemory.recompute_bytes`). Layers outside Blocks keep everything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError, UnknownNameError
from simulator.memory.states import check_positive_int, tensor_parallel_kind
from workloads.graph import Layer, LayerGraph

RECOMPUTE = ("full", "none", "selective")
MASK_BYTES = 1
TOKEN_ID_BYTES = 8
SAVES_OUTPUT = ("relu", "relu6", "sigmoid", "tanh")
SAVES_INPUT = ("gelu", "silu", "swish")
RECURRENT_TYPES = ("Recurrent", "RNN", "LSTM", "GRU")
#: Layers whose output is a view of their input's storage (no copy).
VIEW_TYPES = ("Flatten", "Reshape")


@dataclass(frozen=True)
class Saved:
    """One tensor a layer keeps for its backward pass.

    ``key`` names the tensor (a layer name for that layer's output, ``layer#what`` for internal
    ones), ``bytes_per_elem`` its storage, ``sharded`` whether tensor parallelism splits it, and
    ``score`` whether it is one of the attention core's ``s x s`` tensors.
    """

    key: str
    elems: float
    bytes_per_elem: float
    sharded: bool = False
    score: bool = False


@dataclass(frozen=True)
class ActivationMemory:
    """Bytes one microbatch keeps between its forward and backward pass, per layer, and the
    extra bytes full recomputation rematerialises at once (the largest Block)."""

    per_layer: Mapping[str, float]
    recompute_bytes: float = 0.0
    blocks: Mapping[str, float] = field(default_factory=dict)

    @property
    def saved_bytes(self) -> float:
        return float(sum(self.per_layer.values()))


def as_layers(graph_or_layers: LayerGraph | Sequence[Layer]) -> tuple[Layer, ...]:
    if isinstance(graph_or_layers, LayerGraph):
        return graph_or_layers.layers
    layers = tuple(graph_or_layers)
    if not all(isinstance(layer, Layer) for layer in layers):
        raise SpecError("must be a LayerGraph or a sequence of Layers", field="graph_or_layers",
                        value=type(graph_or_layers).__name__)
    return layers


def check_recompute(recompute: str) -> str:
    if recompute not in RECOMPUTE:
        raise UnknownNameError("recompute policy", str(recompute), list(RECOMPUTE),
                               field="recompute")
    return recompute


def activation_memory(graph_or_layers: LayerGraph | Sequence[Layer], *, dtype: str,
                      recompute: str = "none", tp: int = 1,
                      sequence_parallel: bool = False) -> ActivationMemory:
    """What one microbatch keeps for its backward pass on one rank, in bytes.

    Parameters
    ----------
    graph_or_layers : LayerGraph or sequence of Layer
        The net at the microbatch size, or one pipeline stage's layers (a parent outside them is
        the stage's input, received from the previous stage).
    dtype : str
        Training dtype (a key of ``DTYPE_BYTES``): the storage of saved tensors.
    recompute : {"none", "selective", "full"}
        Activation recomputation policy (see the module docstring).
    tp : int
        Tensor-parallel degree; splits the tensors of ``tensor_parallel`` layers.
    sequence_parallel : bool
        Megatron-LM sequence parallelism: every saved tensor split over ``tp``.
    """
    layers = as_layers(graph_or_layers)
    if dtype not in DTYPE_BYTES:
        raise UnknownNameError("dtype", str(dtype), list(DTYPE_BYTES), field="dtype")
    check_recompute(recompute)
    check_positive_int(tp, "tp")
    d = DTYPE_BYTES[dtype]
    needs_grad: dict[str, bool] = {}
    sharded: dict[str, bool] = {}
    storage: dict[str, str] = {}  # a view's output -> the tensor it views
    saved: list[list[Saved]] = []
    for layer in layers:
        needs_grad[layer.name] = bool(layer.params or layer.attrs.get("tied_to")) or any(
            needs_grad.get(p, True) for p in layer.parents)
        sharded[layer.name] = _output_sharded(layer, sharded) if tp > 1 else False
        if layer.type in VIEW_TYPES:
            storage[layer.name] = storage.get(layer.parents[0], layer.parents[0])
        tensors = _saved_tensors(layer, d, needs_grad, sharded) if needs_grad[layer.name] else []
        saved.append([replace(t, key=storage.get(t.key, t.key)) for t in tensors])
    split = tp if sequence_parallel else 1

    def size(t: Saved) -> float:
        return t.elems * t.bytes_per_elem / (tp if (t.sharded and tp > 1) else split)

    if recompute == "selective":
        saved = [[t for t in ts if not t.score] for ts in saved]
    blocks: dict[str, float] = {}
    if recompute == "full":
        saved, blocks = _checkpoint_blocks(layers, saved, size, d, sharded, needs_grad,
                                           storage)
    per_layer: dict[str, float] = {}
    seen: set[str] = set()
    for layer, tensors in zip(layers, saved):
        total = 0.0
        for t in tensors:
            if t.key not in seen:
                seen.add(t.key)
                total += size(t)
        per_layer[layer.name] = total
    return ActivationMemory(per_layer=per_layer, recompute_bytes=max(blocks.values(), default=0.0),
                            blocks=blocks)


def layer_activation_bytes(graph_or_layers: LayerGraph | Sequence[Layer], *, dtype: str,
                           recompute: str = "none", tp: int = 1,
                           sequence_parallel: bool = False) -> dict[str, float]:
    """Per layer, the bytes it keeps for its backward pass (one microbatch, one rank); see
    :func:`activation_memory`."""
    return dict(activation_memory(graph_or_layers, dtype=dtype, recompute=recompute, tp=tp,
                                  sequence_parallel=sequence_parallel).per_layer)


def _top_block(layer: Layer) -> str | None:
    return layer.block.split("/")[0] if layer.block else None


def _checkpoint_blocks(layers, saved, size, d: int, sharded: Mapping[str, bool],
                       needs_grad: Mapping[str, bool], storage: Mapping[str, str]):
    """Full recomputation: inside each top-level Block keep only the tensors entering it; also
    return each Block's rematerialised bytes (its tensors other than those inputs)."""
    block_of = {layer.name: _top_block(layer) for layer in layers}
    out: list[list[Saved]] = []
    inner: dict[str, dict[str, float]] = {}
    for layer, tensors in zip(layers, saved):
        block = block_of[layer.name]
        if block is None:
            out.append(tensors)
            continue
        keep = []
        for t in tensors:
            if block_of.get(t.key.split("#")[0]) == block:
                inner.setdefault(block, {}).setdefault(t.key, size(t))
            else:  # produced outside the Block: one of its checkpointed inputs
                keep.append(t)
        kept = {t.key for t in keep}
        for i, p in enumerate(layer.parents):  # needed to recompute, even if nothing saves it
            key = storage.get(p, p)
            if needs_grad[layer.name] and block_of.get(key) != block and key not in kept:
                keep.append(Saved(key, math.prod(layer.input_shapes[i]), d,
                                  sharded.get(p, False)))
                kept.add(key)
        out.append(keep)
    return out, {b: float(sum(v.values())) for b, v in inner.items()}


def _output_sharded(layer: Layer, sharded: Mapping[str, bool]) -> bool:
    """Whether tensor parallelism leaves ``layer``'s output split over the ``tp`` ranks."""
    kind = tensor_parallel_kind(layer)
    if kind in ("column", "heads"):
        return True
    if kind == "vocab":  # a vocabulary-parallel output layer's logits stay split; an embedding's
        return layer.type != "Embedding"  # output is reduced
    if kind == "row":
        return False
    return any(sharded.get(p, False) for p in layer.parents)


def _saved_tensors(layer: Layer, d: int, needs_grad: Mapping[str, bool],
                   sharded: Mapping[str, bool]) -> list[Saved]:
    """The tensors ``layer`` keeps for its backward pass (table in the module docstring)."""
    out_sharded = sharded[layer.name]

    def inp(i: int = 0, per_elem: float = d) -> Saved:
        p = layer.parents[i]
        return Saved(p, math.prod(layer.input_shapes[i]), per_elem, sharded.get(p, False))

    def output() -> Saved:
        return Saved(layer.name, layer.output_elems, d, out_sharded)

    def internal(what: str, elems: float, per_elem: float = d, score: bool = False) -> Saved:
        return Saved(f"{layer.name}#{what}", elems, per_elem, out_sharded, score)

    t = layer.type
    if t in ("Convolution", "Deconvolution", "InnerProduct"):
        saved = [inp()]
        if layer.attrs.get("normalizer_fn"):
            saved.append(internal("prenorm", layer.output_elems))
        fn = (layer.attrs.get("activation_fn") or "").lower()
        if fn in SAVES_OUTPUT:
            saved.append(output())
        elif fn in SAVES_INPUT:
            saved.append(internal("preactivation", layer.output_elems))
        return saved
    if t == "MatMul":
        a, b = layer.parents
        return ([inp(0)] if needs_grad.get(b, True) else []) + (
            [inp(1)] if needs_grad.get(a, True) else [])
    if t == "Attention":
        scores = layer.output_shape[0] * layer.attrs["heads"] * layer.attrs["seq_len"] ** 2
        saved = [inp(), internal("probs", scores, d, score=True)]
        if _attention_dropout(layer) > 0:
            saved += [internal("mask", scores, MASK_BYTES, score=True),
                      internal("dropped", scores, d, score=True)]
        return saved
    if t in ("LayerNorm", "BatchNorm"):
        return [inp()]
    if t == "Activation":
        fn = layer.attrs.get("function")
        return [output()] if fn in SAVES_OUTPUT else [inp()] if fn in SAVES_INPUT else []
    if t == "Dropout":
        keep = layer.attrs.get("keep_prob")
        return [] if keep == 1 else [internal("mask", layer.output_elems, MASK_BYTES)]
    if t in ("Softmax", "Sigmoid"):
        return [output()]
    if t in ("Pooling", "AvgPool"):
        return [inp(), output()] if layer.attrs.get("pool") == "max" else []
    if t == "LRN":
        return [inp(), output()]
    if t == "Elementwise":
        if layer.attrs.get("operation") == "sum":
            return []
        return [inp(i) for i in range(len(layer.parents))]
    if t == "Embedding":
        return [Saved(layer.parents[0], math.prod(layer.input_shapes[0]), TOKEN_ID_BYTES)]
    if t in RECURRENT_TYPES:
        from workloads.ops_rnn import CELLS
        cell = CELLS[layer.attrs["cell"]]
        rows = layer.output_elems // layer.attrs["hidden"]
        saved = [inp(), output(), internal("gates", rows * cell.gates * layer.attrs["hidden"])]
        if cell.states > 1:
            saved.append(internal("cells", rows * (cell.states - 1) * layer.attrs["hidden"]))
        return saved
    return []  # Input, Reshape, Flatten, Concatenate, pools without state, unknown free layers


def _attention_dropout(layer: Layer) -> float:
    p = layer.fields.get("dropout", 0.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise SpecError("'dropout' must be a probability in [0, 1)",
                        field=f"layers.{layer.name}.dropout", value=p)
    return float(p)
