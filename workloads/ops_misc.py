"""Structural and elementwise layers: inputs, concatenation, residual adds, normalisations,
activations, softmax, dropout and reshapes.

These are memory-bound in practice; their FLOPs per element are conventional estimates (named
constants below) and matter only where a device is compute-bound on them. Paleo charges most of
these nothing; its compatible estimator keeps that (``simulator.paleo``).
"""
from __future__ import annotations

from workloads.ops import (ACTIVATION_FLOPS, ZERO, Inferred, OpContext, Work, elementwise,
                           elementwise_layer, numel, phases, register)
from workloads.ops_conv import BATCH_NORM_BWD_FLOPS, BATCH_NORM_FWD_FLOPS
from workloads.ops_dense import SOFTMAX_FLOPS

LRN_FLOPS_PER_WINDOW_ELEM = 2
LRN_FLOPS_EXTRA = 5


@register("Input")
def input_layer(ctx: OpContext) -> Inferred:
    if ctx.inputs:
        raise ctx.error("an Input layer takes no parents", "parents", len(ctx.inputs))
    tensor = ctx.get("tensor")
    if (not isinstance(tensor, list) or not tensor
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in tensor)):
        raise ctx.error("'tensor' must be a non-empty list of positive sizes [N, ...]", "tensor",
                        tensor)
    return Inferred(output_shape=(ctx.batch, *tensor[1:]), params=0, op_class="data",
                    work=phases())


@register("Dropout")
def dropout(ctx: OpContext) -> Inferred:
    shape = ctx.one_input()
    keep = ctx.get("dropout_keep_prob", None)
    if keep is not None and not (isinstance(keep, (int, float)) and 0 < keep <= 1):
        raise ctx.error("'dropout_keep_prob' must be in (0, 1]", "dropout_keep_prob", keep)
    elems = numel(shape)
    # forward writes Y and the mask; backward reads dY and the mask
    work = phases(forward=elementwise(elems, 1, reads=1, writes=2),
                  backward_data=ZERO if ctx.fed_by_input else elementwise(elems, 1, reads=2))
    return Inferred(output_shape=shape, params=0, op_class="elementwise",
                    attrs={"keep_prob": keep}, work=work)


@register("Concatenate")
def concatenate(ctx: OpContext) -> Inferred:
    if not ctx.inputs:
        raise ctx.error("a Concatenate layer needs at least one parent", "parents", 0)
    rank = len(ctx.inputs[0])
    dim = ctx.get("dim", 3)
    if not isinstance(dim, int) or isinstance(dim, bool) or not -rank <= dim < rank:
        raise ctx.error(f"'dim' must be an axis of the rank-{rank} inputs", "dim", dim)
    dim %= rank
    first = ctx.inputs[0]
    for shape in ctx.inputs[1:]:
        if len(shape) != rank or any(a != b for i, (a, b) in enumerate(zip(first, shape))
                                     if i != dim):
            raise ctx.error(f"shape mismatch: cannot concatenate {list(first)} and {list(shape)} "
                            f"along dim {dim}", "parents", [list(s) for s in ctx.inputs])
    out = list(first)
    out[dim] = sum(s[dim] for s in ctx.inputs)
    elems = numel(out)
    work = phases(forward=Work(read_elems=elems, write_elems=elems),
                  backward_data=ZERO if ctx.fed_by_input else Work(read_elems=elems,
                                                                   write_elems=elems))
    return Inferred(output_shape=tuple(out), params=0, op_class="elementwise",
                    attrs={"dim": dim}, work=work)


@register("Elementwise")
def elementwise_op(ctx: OpContext) -> Inferred:
    if not ctx.inputs:
        raise ctx.error("an Elementwise layer needs at least one parent", "parents", 0)
    first = ctx.inputs[0]
    for shape in ctx.inputs[1:]:
        if shape != first:
            raise ctx.error(f"shape mismatch: cannot combine {list(first)} and {list(shape)} "
                            "elementwise", "parents", [list(s) for s in ctx.inputs])
    op = ctx.get("operation", "sum")
    if op not in ("sum", "prod", "max"):
        raise ctx.error("'operation' must be sum, prod or max", "operation", op)
    k, elems = len(ctx.inputs), numel(first)
    fwd = Work(flops=(k - 1) * elems, read_elems=k * elems, write_elems=elems)
    # a sum's gradient is its output gradient, passed on without work; prod and max need a pass
    bwd = ZERO if (op == "sum" or ctx.fed_by_input) else Work(
        flops=k * elems, read_elems=(k + 1) * elems, write_elems=k * elems)
    return Inferred(output_shape=first, params=0, op_class="elementwise",
                    attrs={"operation": op}, work=phases(forward=fwd, backward_data=bwd))


@register("Softmax")
def softmax(ctx: OpContext) -> Inferred:
    """Paleo: ``[N, num_classes]`` (default the last input dim); a rank-3 input keeps its shape."""
    shape = ctx.one_input()
    if len(shape) == 3 and "num_classes" not in ctx.fields:
        out = shape
    else:
        out = (shape[0], ctx.int_field("num_classes", shape[-1]))
    elems = numel(shape)
    return Inferred(output_shape=tuple(out), params=0, op_class="reduction",
                    attrs={"num_classes": out[-1]},
                    work=elementwise_layer(elems, SOFTMAX_FLOPS, 3, fed_by_input=ctx.fed_by_input))


@register("Sigmoid")
def sigmoid(ctx: OpContext) -> Inferred:
    """Paleo's Sigmoid is a binary-classifier head: its output is ``[N, 1]``."""
    shape = ctx.one_input()
    elems = numel(shape)
    return Inferred(output_shape=(shape[0], 1), params=0, op_class="elementwise",
                    work=elementwise_layer(elems, ACTIVATION_FLOPS["sigmoid"], 2,
                                           fed_by_input=ctx.fed_by_input))


@register("Reshape")
def reshape(ctx: OpContext) -> Inferred:
    shape = ctx.one_input()
    declared = ctx.get("output_shape")
    if (not isinstance(declared, list) or not declared
            or not all(isinstance(v, int) and not isinstance(v, bool) and (v > 0 or v == -1)
                       for v in declared)
            or declared[1:].count(-1) > 1):
        raise ctx.error("'output_shape' must list positive sizes, with at most one -1 after "
                        "the batch dim", "output_shape", declared)
    dims = [shape[0], *declared[1:]]  # the first dim is the batch, whatever the file's batch was
    if -1 in dims:
        known = numel(d for d in dims if d != -1)
        if numel(shape) % known:
            raise ctx.error(f"shape mismatch: {list(shape)} cannot be reshaped to {declared}",
                            "output_shape", declared)
        dims[dims.index(-1)] = numel(shape) // known
    if numel(dims) != numel(shape):
        raise ctx.error(f"shape mismatch: {list(shape)} has {numel(shape)} elements, "
                        f"{declared} (at batch {shape[0]}) has {numel(dims)}", "output_shape",
                        declared)
    return Inferred(output_shape=tuple(dims), params=0, op_class="none", work=phases())


@register("Flatten")
def flatten(ctx: OpContext) -> Inferred:
    shape = ctx.one_input()
    return Inferred(output_shape=(shape[0], numel(shape[1:])), params=0, op_class="none",
                    work=phases())


def _norm_work(ctx: OpContext, elems: int, params: int) -> dict[str, Work]:
    work = phases(forward=elementwise(elems, BATCH_NORM_FWD_FLOPS, reads=2),
                  backward_data=ZERO if ctx.fed_by_input
                  else elementwise(elems, BATCH_NORM_BWD_FLOPS, reads=3))
    if params:
        work["backward_filter"] = Work(flops=2 * elems, read_elems=2 * elems, write_elems=params)
    return work


@register("BatchNorm")
def batch_norm(ctx: OpContext) -> Inferred:
    """Training-mode batch normalisation over all axes but the last (channels, NHWC)."""
    shape = ctx.one_input()
    affine = ctx.get("affine", True)
    if not isinstance(affine, bool):
        raise ctx.error("'affine' must be true or false", "affine", affine)
    bias = ctx.get("bias", True) is not False  # a Caffe Scale without bias_term has no beta
    params = shape[-1] * (1 + bias) if affine else 0
    return Inferred(output_shape=shape, params=params, op_class="elementwise",
                    attrs={"affine": affine, "bias": bias},
                    work=_norm_work(ctx, numel(shape), params))


@register("LayerNorm")
def layer_norm(ctx: OpContext) -> Inferred:
    """Normalisation over the last axis; RMSNorm (``rms: true``) has a scale but no shift."""
    shape = ctx.one_input()
    rms = ctx.get("rms", False)
    if not isinstance(rms, bool):
        raise ctx.error("'rms' must be true or false", "rms", rms)
    params = shape[-1] * (1 if rms else 2)
    return Inferred(output_shape=shape, params=params, op_class="elementwise",
                    attrs={"rms": rms}, work=_norm_work(ctx, numel(shape), params))


@register("Activation")
def activation(ctx: OpContext) -> Inferred:
    shape = ctx.one_input()
    fn = ctx.get("function")
    if not isinstance(fn, str) or fn.lower() not in ACTIVATION_FLOPS:
        raise ctx.error("unknown activation function; valid: " + ", ".join(sorted(ACTIVATION_FLOPS)),
                        "function", fn)
    f = ACTIVATION_FLOPS[fn.lower()]
    return Inferred(output_shape=shape, params=0, op_class="elementwise",
                    attrs={"function": fn.lower()},
                    work=elementwise_layer(numel(shape), f, f, fed_by_input=ctx.fed_by_input))


@register("LRN")
def lrn(ctx: OpContext) -> Inferred:
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)."""
    shape = ctx.input_rank(4)
    size = ctx.int_field("size", 5)
    f = LRN_FLOPS_PER_WINDOW_ELEM * size + LRN_FLOPS_EXTRA
    return Inferred(output_shape=shape, params=0, op_class="elementwise", attrs={"size": size},
                    work=elementwise_layer(numel(shape), f, 2 * f, fed_by_input=ctx.fed_by_input))
