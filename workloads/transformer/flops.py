"""Counting a transformer graph's training work, and Megatron-LM's closed forms to check it by.

The closed forms are those of Narayanan et al., "Efficient Large-Scale Language Model Training on
GPU Clusters Using Megatron-LM", SC21 (arXiv:2104.04473), section 5.1, for a GPT model of ``l``
layers, width ``h``, sequence ``s``, vocabulary ``V`` and ``B`` sequences per iteration:

- parameters ``P = 12 l h² (1 + 13/(12h) + (V + s)/(12 l h))``: per layer ``12h² + 13h`` (QKV,
  projection and two MLP matrices with their biases, two LayerNorms), the word and learned
  position embeddings ``(V + s) h``, and the output layer tied to the word embedding. The final
  LayerNorm (``2h``) is the one thing it leaves out.
- FLOPs per iteration with full activation recomputation
  ``F = 96 B s l h² (1 + s/(6h) + V/(16 l h))``: each layer's matrix products cost
  ``24 B s h² + 4 B s² h`` forward, run three times (forward, the recomputed forward, and a
  backward pass of twice the forward), the logit layer ``2 B s h V`` forward and twice that
  backward, without recomputation. Without recomputation the factor is 72 and ``V/(12 l h)``.

:func:`training_flops` counts the same quantity from a graph's per-phase work, layer by layer, so
a test can compare the two; the graph's count also includes the attention softmax (5 FLOPs per
score, :data:`workloads.ops_dense.SOFTMAX_FLOPS`) that the closed form leaves out.
"""
from __future__ import annotations

from typing import Any, Mapping

from simulator.errors import SpecError
from workloads.graph import LayerGraph
from workloads.ops import PHASES


def gpt_params_formula(*, layers: int, hidden: int, seq_len: int, vocab: int) -> float:
    """Megatron-LM's parameter count of a GPT model (Narayanan et al. 2021, section 5.1)."""
    l, h, s, v = layers, hidden, seq_len, vocab
    return 12.0 * l * h * h * (1 + 13 / (12 * h) + (v + s) / (12 * l * h))


def gpt_flops_formula(*, batch: int, layers: int, hidden: int, seq_len: int, vocab: int,
                      recompute: bool = True) -> float:
    """Megatron-LM's FLOPs of one training iteration of ``batch`` sequences (Narayanan et al.
    2021, section 5.1): ``96 B s l h² (1 + s/(6h) + V/(16 l h))`` with full recomputation,
    ``72 B s l h² (1 + s/(6h) + V/(12 l h))`` without."""
    b, l, h, s, v = batch, layers, hidden, seq_len, vocab
    if recompute:
        return 96.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (16 * l * h))
    return 72.0 * b * s * l * h * h * (1 + s / (6 * h) + v / (12 * l * h))


def hyperparameters(graph: LayerGraph) -> Mapping[str, Any]:
    """The ``transformer`` object of a generated graph's root; a SpecError for other graphs."""
    hyper = graph.spec.raw.get("transformer") if graph.spec.raw else None
    if not isinstance(hyper, Mapping) or not isinstance(hyper.get("layers"), int):
        raise SpecError("not a transformer net: its root has no 'transformer' object with "
                        "'layers'", source=graph.source, field="transformer")
    return hyper


def recomputed_layers(graph: LayerGraph) -> frozenset[str]:
    """Names of the layers that full recomputation runs forward twice: every layer inside the
    transformer blocks ``layer0`` .. ``layer{l-1}``, whose inputs are the checkpoints (Megatron-LM's
    ``--recompute-granularity full``; Narayanan et al. 2021, section 3.5). Embeddings, the final
    norm and the LM head are not recomputed."""
    blocks = {f"layer{i}" for i in range(hyperparameters(graph)["layers"])}
    return frozenset(layer.name for layer in graph.layers if layer.block in blocks)


def training_flops(graph: LayerGraph, *, recompute: bool = True,
                   op_classes: tuple[str, ...] | None = ("matmul",)) -> float:
    """FLOPs of one training iteration at the graph's batch, from its per-phase work.

    The forward, backward-data and backward-filter FLOPs of every layer whose ``op_class`` is in
    ``op_classes`` (all layers when ``None``), plus, with ``recompute``, the forward FLOPs again of
    those in :func:`recomputed_layers`. The default (matrix products only, full recomputation) is
    what Megatron-LM's ``96 B s l h² (...)`` counts (:func:`gpt_flops_formula`).
    """
    again = recomputed_layers(graph) if recompute else frozenset()
    total = 0.0
    for layer in graph.layers:
        if op_classes is not None and layer.op_class not in op_classes:
            continue
        total += sum(layer.work[p].flops for p in PHASES)
        if layer.name in again:
            total += layer.work["forward"].flops
    return total


def summarize(graph: LayerGraph) -> dict[str, Any]:
    """One row describing a transformer graph: its hyper-parameters, batch, parameters, forward
    FLOPs (all layers) and training FLOPs (matrix products, full recomputation); for GPT also
    Megatron-LM's closed forms (``params_formula``, ``train_flops_formula``)."""
    hyper = hyperparameters(graph)
    row: dict[str, Any] = {"net": graph.name}
    row.update({k: hyper.get(k) for k in ("arch", "layers", "hidden", "heads", "kv_heads", "ffn",
                                           "seq_len", "vocab")})
    row.update({"batch": graph.batch, "params": graph.total_params,
                "forward_flops": graph.phase_work("forward").flops,
                "train_flops": training_flops(graph)})
    if hyper.get("arch") == "gpt":
        dims = {k: hyper[k] for k in ("layers", "hidden", "seq_len", "vocab")}
        row["params_formula"] = gpt_params_formula(**dims)
        row["train_flops_formula"] = gpt_flops_formula(batch=graph.batch, **dims)
    return row
