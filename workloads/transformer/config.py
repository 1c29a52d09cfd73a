"""The hyper-parameters of a GPT-, BERT- or Llama-style transformer, as a frozen keyword-only spec.

One :class:`TransformerConfig` describes the whole model; :mod:`workloads.transformer.build`
writes its net spec. The three families differ in fixed choices, not in free parameters:

============  ==============  =========  ================  ===========  ==================
arch          norm            biases     MLP               positions    LM head
============  ==============  =========  ================  ===========  ==================
``gpt``       LayerNorm       yes        GELU, 2 matrices  learned      tied to ``embed``
``bert``      LayerNorm       yes        GELU, 2 matrices  learned (+2  tied to ``embed``
                                                           segment      (bidirectional
                                                           types)       attention)
``llama``     RMSNorm         no         SwiGLU, 3         rotary       untied
                                         matrices          (no params)
============  ==============  =========  ================  ===========  ==================

GPT follows Megatron-LM (Shoeybi et al. 2019, arXiv:1909.08053; Narayanan et al., SC21,
arXiv:2104.04473): pre-LayerNorm blocks, a final LayerNorm, learned position embeddings and an
output layer that reuses the word embedding. BERT (Devlin et al., NAACL 2019, arXiv:1810.04805)
is built in the same pre-LayerNorm form that Megatron-LM trains (Shoeybi et al. 2019, section 4);
it has the same parameter count as the original post-LayerNorm BERT except that the original
normalises the embeddings (2h) where the pre-LN form normalises the last layer's output (2h), so
the totals are equal. Llama follows Touvron et al. 2023 (arXiv:2302.13971, arXiv:2307.09288) and
the Llama 3 report (arXiv:2407.21783): RMSNorm, SwiGLU, rotary position embeddings, no biases,
grouped-query attention with ``kv_heads`` key/value heads.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from simulator.errors import SpecError, UnknownNameError

ARCHS = ("bert", "gpt", "llama")

#: dropout probability used when none is given: Megatron-LM's and BERT's hidden dropout is 0.1;
#: Llama is trained without dropout
DEFAULT_DROPOUT = {"gpt": 0.1, "bert": 0.1, "llama": 0.0}

#: BERT's segment ("token type") vocabulary: sentence A and sentence B (Devlin et al. 2019, 3.2)
BERT_SEGMENTS = 2

#: Llama's FFN width is 2/3 of 4h (Touvron et al. 2023a, section 2.2, "SwiGLU") rounded up to a
#: multiple of this; it gives the published 11008 (7B) and 13824 (13B)
LLAMA_FFN_MULTIPLE = 256


def llama_ffn(hidden: int) -> int:
    """The default SwiGLU width of a Llama model of width ``hidden``.

    >>> llama_ffn(4096), llama_ffn(5120)
    (11008, 13824)
    """
    width = (2 * 4 * hidden) // 3
    return LLAMA_FFN_MULTIPLE * math.ceil(width / LLAMA_FFN_MULTIPLE)


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """The hyper-parameters of one transformer language model.

    Parameters
    ----------
    arch : {"gpt", "bert", "llama"}
        The family (see the module docstring for what each fixes).
    layers : int
        Transformer layers ``l``.
    hidden : int
        Model width ``h``; ``heads`` must divide it (head width ``h / heads``).
    heads : int
        Query heads ``a``.
    seq_len : int
        Sequence length ``s`` in tokens (also the number of learned positions for GPT/BERT).
    vocab : int
        Vocabulary ``V`` as published (Megatron pads GPT-2's 50257 to a multiple of 128 per
        tensor-parallel rank; paleosim keeps the number it is given).
    ffn : int, optional
        Width of the MLP's hidden layer; default ``4h`` for GPT/BERT, :func:`llama_ffn` for Llama.
    kv_heads : int, optional
        Key/value heads (grouped-query attention, Ainslie et al. 2023); default ``heads``. Must
        divide ``heads``.
    dropout : float, optional
        Hidden dropout probability in ``[0, 1)``; default :data:`DEFAULT_DROPOUT` of the arch.
        ``0`` writes no Dropout layers.
    source : str
        Where the values came from, for error messages.
    """

    arch: str
    layers: int
    hidden: int
    heads: int
    seq_len: int
    vocab: int
    ffn: int | None = None
    kv_heads: int | None = None
    dropout: float | None = None
    source: str = "transformer"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UnknownNameError("transformer arch", str(self.arch), ARCHS, source=self.source,
                                   field="arch")
        for name in ("layers", "hidden", "heads", "seq_len", "vocab", "ffn", "kv_heads"):
            value = getattr(self, name)
            if value is None and name in ("ffn", "kv_heads"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError("must be a positive integer", source=self.source, field=name,
                                value=value)
        if self.hidden % self.heads:
            raise SpecError(f"heads={self.heads} must divide hidden={self.hidden}",
                            source=self.source, field="heads", value=self.heads)
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise SpecError(f"kv_heads must divide heads={self.heads}", source=self.source,
                            field="kv_heads", value=self.kv_heads)
        if self.dropout is not None and (
                not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool)
                or not 0 <= self.dropout < 1):
            raise SpecError("dropout must be a probability in [0, 1)", source=self.source,
                            field="dropout", value=self.dropout)
        # fill the defaults so that every consumer sees explicit values
        if self.ffn is None:
            object.__setattr__(self, "ffn", llama_ffn(self.hidden) if self.arch == "llama"
                               else 4 * self.hidden)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.heads)
        if self.dropout is None:
            object.__setattr__(self, "dropout", DEFAULT_DROPOUT[self.arch])

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``h / heads``."""
        return self.hidden // self.heads

    @property
    def qkv_width(self) -> int:
        """Output width of the fused QKV projection: ``(heads + 2 kv_heads) * head_dim``."""
        return (self.heads + 2 * self.kv_heads) * self.head_dim

    @property
    def causal(self) -> bool:
        """GPT and Llama attend to earlier tokens only; BERT is bidirectional."""
        return self.arch != "bert"

    @property
    def tied_embeddings(self) -> bool:
        """GPT and BERT reuse the word embedding as the output layer; Llama does not."""
        return self.arch != "llama"

    def hyperparameters(self) -> dict[str, Any]:
        """The values written into a net spec's root ``transformer`` object (no ``source``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        out["head_dim"] = self.head_dim
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every field, ``source`` included."""
        return asdict(self)
