"""Megatron-style tensor parallelism: what each layer does on one of ``t`` ranks, and where the
tensor-parallel collectives go.

Layers say how they are split with the field ``tensor_parallel`` (written by the transformer
generator, ``workloads/transformer``), after Shoeybi et al., "Megatron-LM" (arXiv:1909.08053,
section 3):

- ``column``: the weight is split by output features; the input is replicated and the output
  split. Megatron's *f* operator sits before it: identity forward, all-reduce of the input
  gradient backward.
- ``row``: the weight is split by input features; the input is split and the output is a partial
  sum. The *g* operator after it: all-reduce of the output forward, identity backward.
- ``heads``: the attention core, heads split over the ranks (input and output split).
- ``vocab``: an ``Embedding`` split by vocabulary: each rank looks up its part and the partial
  outputs are all-reduced (like ``row``). A ``vocab`` layer of any other type is treated as
  ``column`` (an output layer split by vocabulary).

A GPT or Llama layer therefore does two all-reduces in the forward pass (after the attention
projection and after the second MLP matrix) and two in the backward pass (of the gradients of the
inputs of the QKV projection and of the first MLP matrix; several column layers reading the same
tensor, such as Llama's gate and up, share one). Each all-reduce moves the whole activation
``[b, s, h]`` at the training dtype.

Sequence parallelism (Korthikanti et al., "Reducing Activation Recomputation in Large Transformer
Models", MLSys 2023, section 4.2.2) keeps the tensors outside the column-to-row regions split
along the sequence: each all-reduce becomes a reduce-scatter (after a row layer, of its output;
after a column layer's backward, of the input gradient) plus an all-gather (before the first
column layer reading a tensor, of that tensor; before a row layer's backward, of its output
gradient), the same bytes in total, and the work of the layers outside the regions (LayerNorm,
dropout, residual adds) is divided by ``t``.

Work of a split layer on one rank: the layer's per-phase work (FLOPs and bytes) divided by
``t``. Layers without the field whose input is split (the GELU between the MLP matrices, the
softmax on vocabulary-split logits) are split too; the others are replicated. Dividing the bytes
by ``t`` ignores that a column layer still reads its whole (replicated) input, which matters only
when the layer is memory-bound; feature counts that ``t`` does not divide (a vocabulary of 50257)
are treated as evenly split, as Megatron-LM pads the vocabulary. The tiny all-reduces of the
vocabulary-parallel cross-entropy (two floats per token) are not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.costmodel import DTYPE_BYTES
from simulator.errors import SpecError
from workloads.graph import LayerGraph

TENSOR_PARALLEL_KINDS = ("column", "heads", "row", "vocab")


@dataclass(frozen=True)
class Comm:
    """One tensor-parallel collective over the ``t`` ranks of a group: ``nbytes`` is the full
    tensor (the buffer of an all-reduce or reduce-scatter, the output of an all-gather)."""

    collective: str
    nbytes: float
    layer: str


@dataclass(frozen=True)
class TPLayer:
    """One layer on one tensor-parallel rank: the fraction of its work it does, whether its
    output is split over the ranks, and the collectives before and after its passes."""

    factor: float = 1.0
    split: bool = False
    forward_before: tuple[Comm, ...] = ()
    forward_after: tuple[Comm, ...] = ()
    backward_before: tuple[Comm, ...] = ()
    backward_after: tuple[Comm, ...] = ()

    @property
    def collectives(self) -> tuple[Comm, ...]:
        return (self.forward_before + self.forward_after + self.backward_before
                + self.backward_after)


REPLICATED = TPLayer()


def tensor_parallel_kind(layer, source: str) -> str | None:
    kind = layer.fields.get("tensor_parallel")
    if kind is not None and kind not in TENSOR_PARALLEL_KINDS:
        raise SpecError(f"unknown tensor_parallel kind; valid: {', '.join(TENSOR_PARALLEL_KINDS)}",
                        source=source, field=f"layers.{layer.name}.tensor_parallel", value=kind)
    if kind == "vocab" and layer.type != "Embedding":
        return "column"
    return kind


def tensor_parallel_plan(graph: LayerGraph, tp: int, *, sequence_parallel: bool = False,
                         dtype: str = "fp32") -> list[TPLayer]:
    """One :class:`TPLayer` per layer of ``graph`` (same order) for ``tp`` ranks.

    Raises
    ------
    SpecError
        ``tp > 1`` on a net without ``tensor_parallel`` fields; ``tp`` not dividing an attention
        layer's heads or key/value heads; a column layer fed by a split tensor or a row or heads
        layer fed by a whole one (not a Megatron layout).
    """
    layers = graph.layers
    if tp == 1:
        return [REPLICATED] * len(layers)
    size = DTYPE_BYTES[dtype]
    kinds = [tensor_parallel_kind(layer, graph.source) for layer in layers]
    if not any(kinds):
        raise SpecError(f"tp={tp} needs a net whose layers say how they split (the field "
                        "'tensor_parallel': column, row, heads, vocab), as the transformer "
                        f"generator writes; {graph.name!r} has none", source=graph.source,
                        field="strategy.tp", value=tp)
    index = {layer.name: i for i, layer in enumerate(layers)}
    column_readers: dict[str, list[int]] = {}
    for i, (layer, kind) in enumerate(zip(layers, kinds)):
        if kind == "column":
            column_readers.setdefault(_single_parent(layer, graph.source), []).append(i)
    split = [False] * len(layers)
    plan: list[TPLayer] = []
    for i, (layer, kind) in enumerate(zip(layers, kinds)):
        parents_split = [split[index[p]] for p in layer.parents]
        if kind == "heads":
            heads, kv = layer.attrs.get("heads", tp), layer.attrs.get("kv_heads", tp)
            if heads % tp or kv % tp:
                raise SpecError(f"tp={tp} must divide the attention heads ({heads}) and key/"
                                f"value heads ({kv}) of layer {layer.name!r}",
                                source=graph.source, field="strategy.tp", value=tp)
        if kind in ("row", "heads") and not all(parents_split):
            raise SpecError(f"a {kind}-parallel layer must read a split tensor (follow a column-"
                            "parallel layer)", source=graph.source,
                            field=f"layers.{layer.name}.tensor_parallel", value=kind)
        if kind == "column" and any(parents_split):
            raise SpecError("a column-parallel layer must read a whole tensor (a row-parallel "
                            "layer's output, not another column's)", source=graph.source,
                            field=f"layers.{layer.name}.tensor_parallel", value=kind)
        entry: TPLayer
        if kind in ("column", "heads"):
            split[i] = True
            entry = TPLayer(factor=1 / tp, split=True)
            if kind == "column":
                readers = column_readers[layer.parents[0]]
                if readers[0] == i:  # the first reader carries the f operator of the tensor
                    parent = layers[index[layer.parents[0]]]
                    nbytes = parent.output_elems * size
                    if sequence_parallel:
                        entry = TPLayer(
                            factor=1 / tp, split=True,
                            forward_before=(Comm("allgather", nbytes, layer.name),),
                            backward_after=(Comm("reducescatter", nbytes, layer.name),))
                    else:
                        entry = TPLayer(factor=1 / tp, split=True,
                                        backward_after=(Comm("allreduce", nbytes, layer.name),))
        elif kind in ("row", "vocab"):  # partial sums, reduced right after the forward
            nbytes = layer.output_elems * size
            if sequence_parallel:
                entry = TPLayer(factor=1 / tp,
                                forward_after=(Comm("reducescatter", nbytes, layer.name),),
                                backward_before=(Comm("allgather", nbytes, layer.name),))
            else:
                entry = TPLayer(factor=1 / tp,
                                forward_after=(Comm("allreduce", nbytes, layer.name),))
        elif any(parents_split):
            split[i] = True
            entry = TPLayer(factor=1 / tp, split=True)
        else:
            entry = TPLayer(factor=1 / tp) if sequence_parallel else REPLICATED
        plan.append(entry)
    return plan


def _single_parent(layer, source: str) -> str:
    if len(layer.parents) != 1:
        raise SpecError("a column-parallel layer must have exactly one parent", source=source,
                        field=f"layers.{layer.name}.parents", value=list(layer.parents))
    return layer.parents[0]
