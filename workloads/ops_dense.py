"""Dense layers: fully connected (InnerProduct), batched MatMul, attention core, embedding.

FLOP counts are 2 per multiply-add. For attention the count is the standard one of Megatron-LM
(Narayanan et al., SC21, section 5.1): QKᵀ and attention-weighted values each cost 2·B·s²·h, with
the full s×s score matrix counted even for causal masks.
"""
from __future__ import annotations

from workloads.ops import ZERO, Inferred, OpContext, Work, matmul_work, numel, phases, register

SOFTMAX_FLOPS = 5  # per element: max, subtract, exp, sum, divide


@register("InnerProduct")
def inner_product(ctx: OpContext) -> Inferred:
    """Y = X·W (+ b). A rank-4 NHWC input is flattened (Paleo); rank 3 maps its last axis."""
    shape = ctx.input_rank(2, 3, 4)
    k = ctx.int_field("num_outputs")
    if ctx.splits:
        if k % ctx.splits:
            raise ctx.error(f"{k} outputs do not split into {ctx.splits}", "num_outputs", k)
        k //= ctx.splits
    if len(shape) == 4:
        rows, d = shape[0], shape[1] * shape[2] * shape[3]
        out = (shape[0], k)
    elif len(shape) == 3:
        rows, d = shape[0] * shape[1], shape[2]
        out = (shape[0], shape[1], k)
    else:
        rows, d = shape
        out = (shape[0], k)
    bias = ctx.get("bias", True) is not False
    tied = ctx.get("tied_to", None)
    if tied is not None and not isinstance(tied, str):
        raise ctx.error("'tied_to' must name the layer whose weights this one shares", "tied_to",
                        tied)
    weight_elems = d * k + (k if bias else 0)
    params = 0 if tied else weight_elems
    macs = rows * d * k
    work = matmul_work(macs, numel(shape), weight_elems, numel(out),
                       has_data_grad=not ctx.fed_by_input)
    attrs = {"in_features": d, "out_features": k, "bias": bias, "tied_to": tied}
    return Inferred(output_shape=out, params=params, op_class="matmul", macs=macs, attrs=attrs,
                    work=work)


@register("MatMul")
def matmul(ctx: OpContext) -> Inferred:
    """A[..., M, K] · B[..., K, P] (or Bᵀ with ``transpose_b``); both operands are activations."""
    if len(ctx.inputs) != 2:
        raise ctx.error("a MatMul layer takes exactly two parents", "parents", len(ctx.inputs))
    a, b = ctx.inputs
    transpose_b = ctx.get("transpose_b", False)
    if len(a) < 2 or len(a) != len(b):
        raise ctx.error(f"shape mismatch: operands {list(a)} and {list(b)} must have the same "
                        "rank >= 2", "parents", [list(a), list(b)])
    bk, bp = (b[-1], b[-2]) if transpose_b else (b[-2], b[-1])
    if a[:-2] != b[:-2] or a[-1] != bk:
        raise ctx.error(f"shape mismatch: cannot multiply {list(a)} by {list(b)}"
                        + (" transposed" if transpose_b else ""), "parents", [list(a), list(b)])
    out = (*a[:-2], a[-2], bp)
    macs = numel(a[:-2]) * a[-2] * a[-1] * bp
    work = matmul_work(macs, numel(a), numel(b), numel(out),
                       has_data_grad=not ctx.fed_by_input, has_weight=False)
    return Inferred(output_shape=out, params=0, op_class="matmul", macs=macs,
                    attrs={"transpose_b": bool(transpose_b)}, work=work)


@register("Attention")
def attention(ctx: OpContext) -> Inferred:
    """The attention core: softmax(Q·Kᵀ/√d)·V over a fused QKV input ``[N, S, (h+2g)·d]``."""
    shape = ctx.input_rank(3)
    heads = ctx.int_field("heads")
    kv_heads = ctx.int_field("kv_heads", heads)
    head_dim = ctx.int_field("head_dim")
    if heads % kv_heads:
        raise ctx.error(f"kv_heads={kv_heads} must divide heads={heads}", "kv_heads", kv_heads)
    if ctx.splits:  # tensor-parallel style head split
        if heads % ctx.splits or kv_heads % ctx.splits:
            raise ctx.error(f"heads do not split into {ctx.splits}", "heads", heads)
        heads //= ctx.splits
        kv_heads //= ctx.splits
    n, s, width = shape
    if width != (heads + 2 * kv_heads) * head_dim:
        raise ctx.error(f"shape mismatch: a fused QKV input of width (heads + 2*kv_heads) * "
                        f"head_dim = {(heads + 2 * kv_heads) * head_dim} was expected", "parents",
                        list(shape))
    out = (n, s, heads * head_dim)
    scores = n * heads * s * s
    macs = 2 * scores * head_dim                 # Q·Kᵀ and P·V
    softmax = scores * SOFTMAX_FLOPS
    fwd = Work(flops=2.0 * macs + softmax, read_elems=numel(shape) + 2 * scores,
               write_elems=numel(out) + 2 * scores)
    bwd = ZERO if ctx.fed_by_input else Work(
        flops=4.0 * macs + softmax, read_elems=numel(shape) + numel(out) + 2 * scores,
        write_elems=numel(shape) + scores)
    attrs = {"heads": heads, "kv_heads": kv_heads, "head_dim": head_dim,
             "causal": bool(ctx.get("causal", True)), "seq_len": s}
    return Inferred(output_shape=out, params=0, op_class="matmul", macs=macs, attrs=attrs,
                    work=phases(forward=fwd, backward_data=bwd))


@register("Embedding")
def embedding(ctx: OpContext) -> Inferred:
    """Token ids ``[N, S]`` to vectors ``[N, S, dim]``; a gather, so memory-bound."""
    shape = ctx.input_rank(2)
    vocab = ctx.int_field("vocab")
    dim = ctx.int_field("dim")
    out = (*shape, dim)
    fwd = Work(read_elems=numel(shape) + numel(out), write_elems=numel(out))
    dw = Work(flops=numel(out), read_elems=numel(out) + numel(shape), write_elems=numel(out))
    return Inferred(output_shape=out, params=vocab * dim, op_class="elementwise",
                    attrs={"vocab": vocab, "dim": dim},
                    work=phases(forward=fwd, backward_filter=dw))
