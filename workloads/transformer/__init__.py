"""GPT-, BERT- and Llama-style transformer language models as paleosim net specs, and named presets.

:func:`transformer_spec` writes the net spec of any configuration; :func:`preset_spec` that of a
published model (``presets()`` lists them: the Megatron-LM GPT models of 1.2B to 1T parameters,
GPT-3 175B, Llama 2 and 3, BERT); ``workloads.load_net(name)`` loads a preset by name as it loads a
shipped net. The layout of the graph, its ``tensor_parallel`` fields and the root's
``transformer`` object are described in :mod:`workloads.transformer.build` and
``docs/NET_FORMAT.md``.

>>> from workloads import build_graph
>>> from workloads.transformer import transformer_spec
>>> g = build_graph(transformer_spec(arch="llama", layers=32, hidden=4096, heads=32,
...                                  seq_len=4096, vocab=32000))
>>> g.total_params                                  # Llama 2 7B
6738415616
>>> g["layer0/qkv"].output_shape
(1, 4096, 12288)

Modules: :mod:`~workloads.transformer.config` (hyper-parameters),
:mod:`~workloads.transformer.build` (the net spec), :mod:`~workloads.transformer.presets` (the
preset table), :mod:`~workloads.transformer.flops` (training FLOPs and Megatron-LM's closed forms).
"""
from __future__ import annotations

from typing import Any

from workloads.graph import LayerGraph, build_graph
from workloads.transformer.build import default_name, transformer_net
from workloads.transformer.config import ARCHS, DEFAULT_DROPOUT, TransformerConfig, llama_ffn
from workloads.transformer.flops import (gpt_flops_formula, gpt_params_formula, hyperparameters,
                                         recomputed_layers, summarize, training_flops)
from workloads.transformer.presets import (HYPER_KEYS, preset, preset_config, preset_info,
                                           preset_rows, preset_spec, presets)


def transformer_spec(*, arch: str = "gpt", layers: int, hidden: int, heads: int, seq_len: int,
                     vocab: int, ffn: int | None = None, kv_heads: int | None = None,
                     batch: int = 1, name: str | None = None,
                     dropout: float | None = None) -> dict[str, Any]:
    """The net spec (a ``dict`` in paleosim's net format) of a transformer language model.

    Parameters
    ----------
    arch : {"gpt", "bert", "llama"}
        Model family; see :mod:`workloads.transformer.config` for what each one fixes.
    layers, hidden, heads, seq_len, vocab : int
        Layers ``l``, width ``h``, query heads, sequence length ``s`` (tokens) and vocabulary
        ``V``.
    ffn : int, optional
        MLP width; default ``4h`` (GPT, BERT) or 2/3·4h rounded up to 256 (Llama).
    kv_heads : int, optional
        Key/value heads for grouped-query attention; default ``heads``.
    batch : int
        Sequences per step written in the inputs (any loader can re-infer at another batch).
    name : str, optional
        Net name; default ``<arch>-l<l>-h<h>-a<heads>[-kv<g>]-s<s>``.
    dropout : float, optional
        Hidden dropout probability; default 0.1 for GPT/BERT, 0 (no Dropout layers) for Llama.

    Raises
    ------
    SpecError
        A hyper-parameter is not a positive integer, ``heads`` does not divide ``hidden`` or
        ``kv_heads`` does not divide ``heads`` (``UnknownNameError`` for an unknown ``arch``).
    """
    cfg = TransformerConfig(arch=arch, layers=layers, hidden=hidden, heads=heads,
                            seq_len=seq_len, vocab=vocab, ffn=ffn, kv_heads=kv_heads,
                            dropout=dropout)
    return transformer_net(cfg, batch=batch, name=name)


def transformer_graph(*, batch: int = 1, **hyper: Any) -> LayerGraph:
    """The :class:`LayerGraph` of :func:`transformer_spec` (same keywords)."""
    spec = transformer_spec(batch=batch, **hyper)
    return build_graph(spec, source=spec["name"])


__all__ = ["ARCHS", "DEFAULT_DROPOUT", "HYPER_KEYS", "TransformerConfig", "default_name",
           "gpt_flops_formula", "gpt_params_formula", "hyperparameters", "llama_ffn", "preset",
           "preset_config", "preset_info", "preset_rows", "preset_spec", "presets",
           "recomputed_layers", "summarize", "training_flops", "transformer_graph",
           "transformer_net", "transformer_spec"]
