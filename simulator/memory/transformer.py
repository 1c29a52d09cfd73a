"""Closed-form activation memory of a GPT transformer layer (Korthikanti et al. 2022).

Korthikanti, Casper, Lym, McAfee, Andersch, Shoeybi, Catanzaro, "Reducing Activation
Recomputation in Large Transformer Models", MLSys 2023 (arXiv 2205.05198), section 4 and Table 2:
bytes one GPT layer keeps for its backward pass at 16-bit precision, for sequence length ``s``,
microbatch ``b``, hidden size ``h``, ``a`` attention heads and tensor-parallel degree ``t``:

=====================================  ===========================
no parallelism (eq. 1)                 ``s*b*h*(34 + 5*a*s/h)``
tensor parallelism (eq. 2)             ``s*b*h*(10 + 24/t + 5*a*s/(h*t))``
tensor + sequence parallelism          ``s*b*h*(34/t + 5*a*s/(h*t))``
selective recomputation                the ``5*a*s/h`` term dropped
full recomputation                     ``2*s*b*h`` (the layer input)
=====================================  ===========================

The graph-based count of :mod:`simulator.memory.activations` reproduces these for a GPT layer
with attention dropout; this module is the cross-check, and the estimate for a transformer given
only its dimensions (a graph's ``transformer`` root object, as ``workloads/transformer.py``
writes it). With sequence parallelism the checkpointed layer input of full recomputation is split
along the sequence too, so we count ``2*s*b*h/t`` there (the paper's table lists ``2*s*b*h``
for full recomputation without sequence parallelism).
"""
from __future__ import annotations

from typing import Any, Mapping

from simulator.errors import SpecError
from simulator.memory.activations import check_recompute
from simulator.memory.states import check_positive_int

#: Bytes per element the paper assumes (fp16/bf16 activations).
PAPER_BYTES = 2


def gpt_layer_activation_bytes(*, seq_len: int, batch: int, hidden: int, heads: int,
                               tp: int = 1, sequence_parallel: bool = False,
                               recompute: str = "none") -> float:
    """Korthikanti et al.'s bytes per GPT layer at 16-bit precision (table in the module doc).

    GPT-3 (h = 12288, a = 96, s = 2048), one sequence: s*b*h = 24 MiB, times 34 + 80.

    >>> gpt_layer_activation_bytes(seq_len=2048, batch=1, hidden=12288, heads=96) / 2**20
    2736.0
    """
    for name, value in (("seq_len", seq_len), ("batch", batch), ("hidden", hidden),
                        ("heads", heads), ("tp", tp)):
        check_positive_int(value, name)
    check_recompute(recompute)
    s, b, h, a, t = seq_len, batch, hidden, heads, tp
    sbh = s * b * h
    if recompute == "full":
        return 2.0 * sbh / (t if sequence_parallel else 1)
    scores = 0.0 if recompute == "selective" else 5.0 * a * s / (h * t)
    if sequence_parallel:
        return sbh * (34.0 / t + scores)
    return sbh * (10.0 + 24.0 / t + scores)


def transformer_config(graph) -> Mapping[str, Any] | None:
    """The ``transformer`` root object of a generated transformer graph's spec, else None."""
    raw = getattr(getattr(graph, "spec", None), "raw", None) or {}
    config = raw.get("transformer") if isinstance(raw, Mapping) else None
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise SpecError("must be a mapping", source=getattr(graph, "source", None),
                        field="transformer", value=config)
    return config


def transformer_activation_bytes(graph, *, microbatch: int, tp: int = 1,
                                 sequence_parallel: bool = False,
                                 recompute: str = "none") -> float:
    """``layers`` times :func:`gpt_layer_activation_bytes` for a graph carrying a ``transformer``
    root object (keys ``layers``, ``hidden``, ``heads``, ``seq_len``); the transformer layers
    only, at 16-bit precision."""
    config = transformer_config(graph)
    if config is None:
        raise SpecError("the graph has no 'transformer' root object",
                        source=getattr(graph, "source", None), field="transformer")
    try:
        layers, hidden, heads, seq = (config[k] for k in ("layers", "hidden", "heads", "seq_len"))
    except KeyError as exc:
        raise SpecError(f"missing key {exc.args[0]!r}", source=getattr(graph, "source", None),
                        field="transformer") from None
    check_positive_int(layers, "transformer.layers")
    return layers * gpt_layer_activation_bytes(seq_len=seq, batch=microbatch, hidden=hidden,
                                               heads=heads, tp=tp,
                                               sequence_parallel=sequence_parallel,
                                               recompute=recompute)
