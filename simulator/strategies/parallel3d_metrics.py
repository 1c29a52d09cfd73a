"""Metrics of a ``parallel3d`` run measured from its timeline: the pipeline bubble and, for GPT
models, Megatron-LM's model TFLOP/s per GPU.

``bubble_fraction`` of the last simulated iteration::

    bubble = (T_pipe - W_max) / W_max

``T_pipe`` is the span of the iteration's pipeline work, from the first operation to the last
one on any rank's compute stream other than the optimizer step (forward, recompute, backward and
the tensor-parallel collectives between them); ``W_max`` is the largest sum, over one rank, of
the durations of those operations: the time the busiest stage would take with no pipeline
(``m (t_f + t_b)`` of the slowest stage). Everything else in ``T_pipe`` is idle time: the
pipeline's fill and drain, and stage-to-stage transfers that were not hidden. With equal stages
and free communication it is ``(p - 1)/m`` for GPipe and 1F1B and ``(p - 1)/(v m)`` for the
interleaved schedule (Narayanan et al., SC21, section 2.2).

``model_tflops_per_gpu``: ``F / (iteration_s * workers) / 1e12`` with ``F`` Megatron-LM's FLOPs
of one iteration (:func:`workloads.transformer.gpt_flops_formula`: ``96 B s l h^2 (1 + s/(6h) +
V/(16 l h))`` with full recomputation, the 72 form without), for nets generated as ``gpt`` or
``bert`` (same layer shapes); ``B`` is the global batch in sequences.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

ARCHS_WITH_FORMULA = ("bert", "gpt")


def bubble_fraction(ops: pd.DataFrame, iteration: int) -> dict[str, float]:
    """``bubble_fraction``, ``pipeline_s`` (``T_pipe``) and ``stage_busy_s`` (``W_max``) of one
    iteration, from the timeline."""
    sel = ops[(ops["iteration"] == iteration) & (ops["stream"] == "compute")
              & (ops["phase"] != "update")]
    if sel.empty:
        return {}
    span = float(sel["end_s"].max() - sel["start_s"].min())
    busy = float((sel["end_s"] - sel["start_s"]).groupby(sel["rank"]).sum().max())
    return {"bubble_fraction": (span - busy) / busy if busy > 0 else 0.0,
            "pipeline_s": span, "stage_busy_s": busy}


def model_tflops_per_gpu(hyper: Mapping[str, Any], *, global_batch: int, iteration_s: float,
                         workers: int, full_recompute: bool) -> float:
    """Megatron-LM's model TFLOP/s per GPU for a GPT-shaped transformer."""
    from workloads.transformer import gpt_flops_formula
    flops = gpt_flops_formula(batch=global_batch, layers=hyper["layers"], hidden=hyper["hidden"],
                              seq_len=hyper["seq_len"], vocab=hyper["vocab"],
                              recompute=full_recompute)
    return flops / (iteration_s * workers) / 1e12


def pipeline_metrics(ops: pd.DataFrame, iterations: pd.DataFrame, metrics: Mapping[str, Any],
                     meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics above, from a run's ops and iterations tables, its standard metrics and the
    task graph's ``meta``."""
    out: dict[str, Any] = {}
    if len(iterations):
        out.update(bubble_fraction(ops, int(iterations["iteration"].iloc[-1])))
    hyper = meta.get("transformer")
    if hyper and hyper.get("arch") in ARCHS_WITH_FORMULA and metrics.get("iteration_s"):
        out["model_tflops_per_gpu"] = model_tflops_per_gpu(
            hyper, global_batch=metrics["global_batch"], iteration_s=metrics["iteration_s"],
            workers=metrics["workers"], full_recompute=meta.get("recompute") == "full")
    return out


def parallel_metrics(result) -> dict[str, Any]:
    """:func:`pipeline_metrics` of a :class:`~simulator.simulate.SimResult`."""
    return pipeline_metrics(result.ops, result.iterations, result.metrics, result.taskgraph.meta)
