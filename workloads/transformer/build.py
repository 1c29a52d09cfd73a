"""The net spec of a transformer language model, in paleosim's net format.

Layout (``docs/NET_FORMAT.md``, section "Transformer workloads"), ``l`` layers ``layer0`` ..
``layer{l-1}``::

    tokens [B, s] -- embed (V x h) ------+
    positions [B, s] -- pos_embed -------+-- embed_sum -- embed_drop -- layer0 -- ... --
    segments [B, s] -- type_embed -------+       ln_f -- lm_head -- loss
    (positions/pos_embed: GPT and BERT; segments/type_embed: BERT; Llama: embed -- layer0)

    GPT/BERT layer: ln1 qkv attn proj [drop1] res1 ln2 fc1 act fc2 [drop2] res2
    Llama layer:    ln1 qkv attn proj res1 ln2 gate up act(gate) mul(act, up) down res2

``res1`` adds the block's input, ``res2`` adds ``res1``. Llama has no ``pos_embed`` (rotary
embeddings have no parameters and their elementwise cost is not counted), no dropout and no
biases. The dropout layers exist only when the dropout probability is above zero.

Every layer that a tensor-parallel compiler splits carries ``tensor_parallel``, after Megatron-LM's
scheme (Shoeybi et al. 2019, arXiv:1909.08053, section 3): ``column`` (output features split: qkv,
fc1, gate, up, lm_head), ``row`` (input features split, then an all-reduce: proj, fc2, down),
``heads`` (the attention core, heads split), ``vocab`` (the word embedding, vocabulary split, then
an all-reduce). Layers without the field are replicated. The root's ``transformer`` object holds
the hyper-parameters (:meth:`TransformerConfig.hyperparameters` plus ``causal`` and
``tied_embeddings``); loaders ignore it.
"""
from __future__ import annotations

from typing import Any

from simulator.errors import SpecError
from workloads.transformer.config import BERT_SEGMENTS, TransformerConfig

#: activation of the MLP: GELU for GPT/BERT (Hendrycks and Gimpel 2016), SiLU gate for Llama's
#: SwiGLU (Shazeer 2020, arXiv:2002.05202)
ACTIVATION = {"gpt": "gelu", "bert": "gelu", "llama": "silu"}


def _layer(type_: str, parents: list[str], **fields: Any) -> dict[str, Any]:
    return {"type": type_, "parents": parents, **fields}


def _linear(parents: list[str], outputs: int, *, bias: bool, split: str) -> dict[str, Any]:
    layer = _layer("InnerProduct", parents, num_outputs=outputs)
    if not bias:
        layer["bias"] = False
    layer["tensor_parallel"] = split
    return layer


def _norm(parents: list[str], *, rms: bool) -> dict[str, Any]:
    return _layer("LayerNorm", parents, rms=True) if rms else _layer("LayerNorm", parents)


def _dropout(parents: list[str], p: float) -> dict[str, Any]:
    return _layer("Dropout", parents, dropout_keep_prob=1.0 - p)


def layer_block(cfg: TransformerConfig, index: int, parent: str) -> dict[str, Any]:
    """Transformer layer ``index`` as a ``Block`` named ``layer{index}`` fed by ``parent``.

    Pre-normalisation residual blocks (Xiong et al. 2020, arXiv:2002.04745), the form Megatron-LM
    and Llama train: ``x + proj(attn(qkv(ln1(x))))``, then ``+ mlp(ln2(.))``.
    """
    llama = cfg.arch == "llama"
    bias = not llama
    p = cfg.dropout
    kids: dict[str, dict[str, Any]] = {
        "ln1": _norm([], rms=llama),
        "qkv": _linear(["ln1"], cfg.qkv_width, bias=bias, split="column"),
        "attn": _layer("Attention", ["qkv"], heads=cfg.heads, kv_heads=cfg.kv_heads,
                       head_dim=cfg.head_dim, causal=cfg.causal, tensor_parallel="heads",
                       **({"dropout": p} if p > 0 else {})),  # dropout on the attention probs
        "proj": _linear(["attn"], cfg.hidden, bias=bias, split="row"),
    }
    last = "proj"
    if p > 0:
        kids["drop1"] = _dropout([last], p)
        last = "drop1"
    kids["res1"] = _layer("Elementwise", [last, parent], operation="sum")
    kids["ln2"] = _norm(["res1"], rms=llama)
    if llama:
        kids["gate"] = _linear(["ln2"], cfg.ffn, bias=False, split="column")
        kids["up"] = _linear(["ln2"], cfg.ffn, bias=False, split="column")
        kids["act"] = _layer("Activation", ["gate"], function=ACTIVATION[cfg.arch])
        kids["mul"] = _layer("Elementwise", ["act", "up"], operation="prod")
        kids["down"] = _linear(["mul"], cfg.hidden, bias=False, split="row")
        last = "down"
    else:
        kids["fc1"] = _linear(["ln2"], cfg.ffn, bias=True, split="column")
        kids["act"] = _layer("Activation", ["fc1"], function=ACTIVATION[cfg.arch])
        kids["fc2"] = _linear(["act"], cfg.hidden, bias=True, split="row")
        last = "fc2"
    if p > 0:
        kids["drop2"] = _dropout([last], p)
        last = "drop2"
    kids["res2"] = _layer("Elementwise", [last, "res1"], operation="sum")
    return {"type": "Block", "parents": [parent], "endpoint": "res2", "layers": kids}


def _embeddings(cfg: TransformerConfig, batch: int) -> tuple[dict[str, dict[str, Any]], str]:
    """Inputs and embeddings; returns the layers and the name of the last one."""
    tokens = [batch, cfg.seq_len]
    layers: dict[str, dict[str, Any]] = {"tokens": _layer("Input", [], tensor=list(tokens))}
    embed = _layer("Embedding", ["tokens"], vocab=cfg.vocab, dim=cfg.hidden,
                   tensor_parallel="vocab")
    if cfg.arch == "llama":
        layers["embed"] = embed
        return layers, "embed"
    layers["positions"] = _layer("Input", [], tensor=list(tokens))
    summed = ["embed", "pos_embed"]
    if cfg.arch == "bert":
        layers["segments"] = _layer("Input", [], tensor=list(tokens))
    layers["embed"] = embed
    layers["pos_embed"] = _layer("Embedding", ["positions"], vocab=cfg.seq_len, dim=cfg.hidden)
    if cfg.arch == "bert":
        layers["type_embed"] = _layer("Embedding", ["segments"], vocab=BERT_SEGMENTS,
                                      dim=cfg.hidden)
        summed.append("type_embed")
    layers["embed_sum"] = _layer("Elementwise", summed, operation="sum")
    last = "embed_sum"
    if cfg.dropout > 0:
        layers["embed_drop"] = _dropout([last], cfg.dropout)
        last = "embed_drop"
    return layers, last


def transformer_net(cfg: TransformerConfig, *, batch: int = 1, name: str | None = None,
                    description: str | None = None) -> dict[str, Any]:
    """The net spec (a plain ``dict``) of ``cfg`` with ``batch`` sequences in its inputs."""
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise SpecError("must be a positive integer", source=cfg.source, field="batch",
                        value=batch)
    layers, last = _embeddings(cfg, batch)
    for i in range(cfg.layers):
        layers[f"layer{i}"] = layer_block(cfg, i, last)
        last = f"layer{i}"
    llama = cfg.arch == "llama"
    layers["ln_f"] = _norm([last], rms=llama)
    head = _linear(["ln_f"], cfg.vocab, bias=False, split="column")
    if cfg.tied_embeddings:
        head = {**head, "tied_to": "embed"}
        head["tensor_parallel"] = head.pop("tensor_parallel")  # keep it the last field
    layers["lm_head"] = head
    # the cross-entropy's softmax over the vocabulary at every position ([B, s, V] kept)
    layers["loss"] = _layer("Softmax", ["lm_head"])
    hyper = cfg.hyperparameters() | {"causal": cfg.causal,
                                     "tied_embeddings": cfg.tied_embeddings}
    root: dict[str, Any] = {"name": name or default_name(cfg)}
    root["description"] = description or describe(cfg)
    root["transformer"] = hyper
    root["layers"] = layers
    return root


def default_name(cfg: TransformerConfig) -> str:
    """``<arch>-l<layers>-h<hidden>-a<heads>[-kv<kv_heads>]-s<seq_len>``."""
    kv = f"-kv{cfg.kv_heads}" if cfg.kv_heads != cfg.heads else ""
    return f"{cfg.arch}-l{cfg.layers}-h{cfg.hidden}-a{cfg.heads}{kv}-s{cfg.seq_len}"


def describe(cfg: TransformerConfig) -> str:
    """One line saying what the generated net is."""
    kind = {"gpt": "GPT (Megatron-LM layout)", "bert": "BERT (pre-LayerNorm, Megatron-LM layout)",
            "llama": "Llama"}[cfg.arch]
    return (f"{kind}: {cfg.layers} layers, hidden {cfg.hidden}, {cfg.heads} heads"
            + (f" ({cfg.kv_heads} key/value heads)" if cfg.kv_heads != cfg.heads else "")
            + f", FFN {cfg.ffn}, sequence {cfg.seq_len}, vocabulary {cfg.vocab}")
