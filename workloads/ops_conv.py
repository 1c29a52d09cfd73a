"""Spatial layers (NHWC): convolution, transposed convolution, pooling, upsampling.

Output sizes follow Paleo / TensorFlow (``SAME``: ceil(H/s); ``VALID``: ceil((H-k+1)/s)) and, for
an explicit ``[ph, pw]`` padding, floor((H + 2p - k)/s) + 1, or Caffe's ceil mode with the last
window clipped to start inside the padded input (Caffe ``pooling_layer.cpp`` semantics).
"""
from __future__ import annotations

import math

from workloads.ops import (ACTIVATION_FLOPS, ZERO, Inferred, OpContext, Work, elementwise,
                           matmul_work, numel, phases, register)

# FLOPs per element of training-mode batch norm (a Paleo convolution's `normalizer_fn`, and the
# BatchNorm layer): mean, variance, normalise, scale and shift.
BATCH_NORM_FWD_FLOPS = 7
BATCH_NORM_BWD_FLOPS = 10


def _hw_pair(ctx: OpContext, key: str, default=None) -> tuple[int, int]:
    """A 4-vector ``[1, h, w, 1]`` (Paleo's strides/ksize/dilations) as ``(h, w)``."""
    values = ctx.int_list(key, 4, default)
    if values[0] != 1 or values[3] != 1:
        raise ctx.error(f"'{key}' must have the form [1, h, w, 1]", key, values)
    return values[1], values[2]


def _padding(ctx: OpContext) -> str | tuple[int, int]:
    value = ctx.get("padding", "VALID")
    if isinstance(value, str):
        mode = value.upper()
        if mode in ("SAME", "VALID"):
            return mode
    elif (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        return (value[0], value[1])
    raise ctx.error("'padding' must be \"SAME\", \"VALID\" or [ph, pw] with non-negative "
                    "integers", "padding", value)


def out_size(size: int, k: int, s: int, padding: str | int, *, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """Output length along one spatial axis."""
    keff = (k - 1) * dilation + 1
    if padding == "SAME":
        return math.ceil(size / s)
    if padding == "VALID":
        return math.ceil((size - keff + 1) / s)
    p = int(padding)
    if not ceil_mode:
        return (size + 2 * p - keff) // s + 1
    out = math.ceil((size + 2 * p - keff) / s) + 1
    if p > 0 and (out - 1) * s >= size + p:  # a padded last window must start inside the input
        out -= 1
    return out


def pad_before(size: int, out: int, k: int, s: int, padding: str | int, dilation: int = 1) -> int:
    """Zero padding before the first element along one axis (TF's rule for SAME, clamped at 0)."""
    if padding == "VALID":
        return 0
    if padding == "SAME":
        keff = (k - 1) * dilation + 1
        return max((out - 1) * s + keff - size, 0) // 2
    return int(padding)


def _spatial(ctx: OpContext, shape, kh, kw, sh, sw, padding, dh=1, dw=1, ceil_mode=False):
    n, h, w, _ = shape
    ph = padding if isinstance(padding, str) else padding[0]
    pw = padding if isinstance(padding, str) else padding[1]
    ho = out_size(h, kh, sh, ph, dilation=dh, ceil_mode=ceil_mode)
    wo = out_size(w, kw, sw, pw, dilation=dw, ceil_mode=ceil_mode)
    if ho < 1 or wo < 1:
        raise ctx.error(f"the window {kh}x{kw} (stride {sh}x{sw}) does not fit the input "
                        f"{h}x{w}", "parents", list(shape))
    pads = (pad_before(h, ho, kh, sh, ph, dh), pad_before(w, wo, kw, sw, pw, dw))
    return ho, wo, pads


def _epilogue(ctx: OpContext, out_elems: int) -> tuple[Work, Work, dict]:
    """Forward and backward work of a conv's ``activation_fn`` / ``normalizer_fn``."""
    act = ctx.get("activation_fn", None)
    norm = ctx.get("normalizer_fn", None)
    fwd, bwd = ZERO, ZERO
    if act is not None:
        if not isinstance(act, str) or act.lower() not in ACTIVATION_FLOPS:
            raise ctx.error("unknown activation_fn; valid: " + ", ".join(sorted(ACTIVATION_FLOPS)),
                            "activation_fn", act)
        f = ACTIVATION_FLOPS[act.lower()]
        fwd += Work(flops=f * out_elems)  # fused into the convolution's output write
        bwd += Work(flops=f * out_elems)
    if norm is not None:
        if norm != "batch_norm":
            raise ctx.error("unknown normalizer_fn; valid: batch_norm", "normalizer_fn", norm)
        fwd += elementwise(out_elems, BATCH_NORM_FWD_FLOPS, reads=2)
        bwd += elementwise(out_elems, BATCH_NORM_BWD_FLOPS, reads=3)
    return fwd, bwd, {"activation_fn": act, "normalizer_fn": norm}


def _has_bias(ctx: OpContext) -> bool:
    """Paleo always counts a bias (its files write a shape list or nothing); ``false`` opts out."""
    return ctx.get("bias", True) is not False


@register("Convolution")
def convolution(ctx: OpContext) -> Inferred:
    shape = ctx.input_rank(4)
    kh, kw, cin, cout = ctx.int_list("filter", 4, minimum=-1)
    if cin == -1:
        cin = shape[3]
    if min(kh, kw, cout) < 1:
        raise ctx.error("filter sizes must be positive", "filter", ctx.get("filter"))
    if cin != shape[3]:
        raise ctx.error(f"channel mismatch: filter expects {cin} input channels, the input has "
                        f"{shape[3]}", "filter", ctx.get("filter"))
    if ctx.splits:  # ModelParallel splits the output channels (Paleo: filter[3] //= K)
        if cout % ctx.splits:
            raise ctx.error(f"{cout} output channels do not split into {ctx.splits}", "filter",
                            ctx.get("filter"))
        cout //= ctx.splits
    groups = ctx.int_field("groups", 1)
    if cin % groups or cout % groups:
        raise ctx.error(f"groups={groups} must divide both {cin} input and {cout} output "
                        "channels", "groups", groups)
    sh, sw = _hw_pair(ctx, "strides")
    dh, dw = _hw_pair(ctx, "dilations", [1, 1, 1, 1])
    padding = _padding(ctx)
    ho, wo, pads = _spatial(ctx, shape, kh, kw, sh, sw, padding, dh, dw)
    n = shape[0]
    bias = _has_bias(ctx)
    weights = kh * kw * (cin // groups) * cout
    params = weights + (cout if bias else 0)
    out = (n, ho, wo, cout)
    macs = kh * kw * (cin // groups) * cout * ho * wo * n
    work = matmul_work(macs, numel(shape), params, numel(out),
                       has_data_grad=not ctx.fed_by_input)
    efwd, ebwd, eattrs = _epilogue(ctx, numel(out))
    work["forward"] = work["forward"] + efwd
    work["backward_data"] = work["backward_data"] + ebwd
    attrs = {"kernel_hw": (kh, kw), "stride_hw": (sh, sw), "dilation_hw": (dh, dw),
             "padding": padding, "pad_hw": pads, "in_channels": cin, "out_channels": cout,
             "groups": groups, "bias": bias, **eattrs}
    return Inferred(output_shape=out, params=params, op_class="conv", macs=macs, attrs=attrs,
                    work=work)


@register("Deconvolution")
def deconvolution(ctx: OpContext) -> Inferred:
    """Transposed convolution; ``filter`` is TF's conv2d_transpose ``[kh, kw, C_out, C_in]``."""
    shape = ctx.input_rank(4)
    kh, kw, cout, cin = ctx.int_list("filter", 4)
    if cin != shape[3]:
        raise ctx.error(f"channel mismatch: filter expects {cin} input channels, the input has "
                        f"{shape[3]}", "filter", ctx.get("filter"))
    declared = ctx.int_list("output_shape", 4, minimum=-1)
    out = (shape[0], declared[1], declared[2], declared[3])
    if out[3] != cout:
        raise ctx.error(f"output_shape has {out[3]} channels, the filter {cout}", "output_shape",
                        declared)
    sh, sw = _hw_pair(ctx, "strides")
    padding = _padding(ctx)
    back_h, back_w, pads = _spatial(ctx, out, kh, kw, sh, sw, padding)
    if (back_h, back_w) != shape[1:3]:
        raise ctx.error(f"shape mismatch: a convolution of output_shape {declared[1]}x"
                        f"{declared[2]} gives {back_h}x{back_w}, not the input's "
                        f"{shape[1]}x{shape[2]}", "output_shape", declared)
    bias = _has_bias(ctx)
    params = kh * kw * cin * cout + (cout if bias else 0)
    macs = kh * kw * cin * cout * shape[1] * shape[2] * shape[0]
    work = matmul_work(macs, numel(shape), params, numel(out),
                       has_data_grad=not ctx.fed_by_input)
    attrs = {"kernel_hw": (kh, kw), "stride_hw": (sh, sw), "padding": padding, "pad_hw": pads,
             "in_channels": cin, "out_channels": cout, "bias": bias}
    return Inferred(output_shape=out, params=params, op_class="conv", macs=macs, attrs=attrs,
                    work=work)


@register("Pooling", "AvgPool")
def pooling(ctx: OpContext) -> Inferred:
    shape = ctx.input_rank(4)
    kh, kw = _hw_pair(ctx, "ksize")
    sh, sw = _hw_pair(ctx, "strides")
    padding = _padding(ctx)
    ceil_mode = ctx.get("ceil_mode", False)
    if not isinstance(ceil_mode, bool):
        raise ctx.error("'ceil_mode' must be true or false", "ceil_mode", ceil_mode)
    if ceil_mode and isinstance(padding, str):
        padding = (0, 0) if padding == "VALID" else padding
    ho, wo, pads = _spatial(ctx, shape, kh, kw, sh, sw, padding, ceil_mode=ceil_mode)
    out = (shape[0], ho, wo, shape[3])
    window = kh * kw * numel(out)
    fwd = Work(flops=window, read_elems=numel(shape), write_elems=numel(out))
    bwd = ZERO if ctx.fed_by_input else Work(flops=window, read_elems=numel(out) + numel(shape),
                                             write_elems=numel(shape))
    attrs = {"kernel_hw": (kh, kw), "stride_hw": (sh, sw), "padding": padding, "pad_hw": pads,
             "ceil_mode": ceil_mode, "pool": "avg" if ctx.type == "AvgPool" else "max"}
    return Inferred(output_shape=out, params=0, op_class="reduction", attrs=attrs,
                    work=phases(forward=fwd, backward_data=bwd))


@register("GlobalAvgPool")
def global_avg_pool(ctx: OpContext) -> Inferred:
    shape = ctx.input_rank(4)
    out = (shape[0], 1, 1, shape[3])
    fwd = Work(flops=numel(shape), read_elems=numel(shape), write_elems=numel(out))
    bwd = ZERO if ctx.fed_by_input else Work(flops=numel(shape), read_elems=numel(out),
                                             write_elems=numel(shape))
    return Inferred(output_shape=out, params=0, op_class="reduction",
                    work=phases(forward=fwd, backward_data=bwd))


@register("UpSampling2D")
def upsampling(ctx: OpContext) -> Inferred:
    shape = ctx.input_rank(4)
    fh, fw = _hw_pair(ctx, "ksize")
    out = (shape[0], shape[1] * fh, shape[2] * fw, shape[3])
    fwd = Work(read_elems=numel(shape), write_elems=numel(out))
    bwd = ZERO if ctx.fed_by_input else Work(flops=numel(out), read_elems=numel(out),
                                             write_elems=numel(shape))
    return Inferred(output_shape=out, params=0, op_class="elementwise",
                    attrs={"factor_hw": (fh, fw)}, work=phases(forward=fwd, backward_data=bwd))
