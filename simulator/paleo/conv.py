"""Paleo's GEMM convolution cost: the forward convolution and the two gradient convolutions.

Paleo costs both gradients of a convolution as further convolutions, built the way TensorFlow's
``ConvBackpropExtractAndVerifyDimension`` sizes them (``PALEO_COST_MODEL.md`` section 2.2):

- ``exp = (Ho - 1)*s + 1`` is the zero-dilated output gradient; ``pad_before = k - 1 - p``,
  ``pad_after = (H + k - 1) - exp - pad_before``; if they differ by exactly one, ``exp += 1``;
  ``holes = 1 - Ho*Wo / (exp_h*exp_w)`` is the fraction of zeros in the dilated gradient.
- backward-data: a stride-1 convolution of ``[N, exp_h, exp_w, Cout]`` with the filter
  ``[kh, kw, Cout, Cin]``; backward-filter: a stride-1 convolution of ``[Cin, H, W, N]`` with the
  filter ``[exp_h, exp_w, N, Cout]`` (holes in the filter), VALID if the layer is VALID.

Two versions of Paleo's code exist (:data:`VERSIONS`):

``"dec2016"``
    The code behind Paleo's published web-demo predictions (``precompute.json``, December
    2016): the memory term reads the *unpadded* input; the gradient convolutions pad by
    ``pad_before``; backward-data has no input-holes term (holes only thin the filter of
    backward-filter).
``"2017"``
    Paleo's later code (commit 676f3ff onwards, HEAD): the memory term reads the *padded* input
    ``N*(H+2p)*(W+2p)*C``; the gradient convolutions pad by ``min(pad_before, pad_after)``; the
    backward-data convolution adds the scatter term ``2*N*Ho*Wo*Cout`` (its input holes).

The SAME pad is TensorFlow's ``((out-1)*s + k - H) // 2`` and Paleo does not clamp it at 0: a
1x1 stride-2 SAME convolution on an even size has pad -1 (section 1.2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.paleo.work import Terms

VERSIONS = ("dec2016", "2017")
FLOAT_BYTES = 4  # Paleo counts every tensor as float32


def out_size(size: int, k: int, s: int, padding) -> int:
    """Paleo's output length along one axis: SAME ``ceil(H/s)``, VALID ``ceil((H-k+1)/s)``,
    explicit pad ``p``: ``floor((H+2p-k)/s) + 1``."""
    if padding == "SAME":
        return math.ceil(size / s)
    if padding == "VALID":
        return math.ceil((size - k + 1) / s)
    return (size + 2 * padding - k) // s + 1


def pad_size(size: int, out: int, k: int, s: int, padding) -> int:
    """Paleo's pad before the input along one axis (unclamped for SAME, section 1.2)."""
    if padding == "SAME":
        return ((out - 1) * s + k - size) // 2
    if padding == "VALID":
        return 0
    return padding


@dataclass(frozen=True)
class ConvGeometry:
    """One convolution as Paleo sees it (NHWC input ``[n, h, w, cin]``, filter
    ``[kh, kw, cin, cout]``), with ``padding`` ``"SAME"``, ``"VALID"`` or ``(ph, pw)``.

    ``holes_in_inputs`` / ``holes_in_filters`` are the fractions of zeros Paleo discounts.
    """

    n: int
    h: int
    w: int
    cin: int
    kh: int
    kw: int
    cout: int
    sh: int = 1
    sw: int = 1
    padding: object = "VALID"
    holes_in_inputs: float = 0.0
    holes_in_filters: float = 0.0

    def _axis_padding(self, axis: int):
        if isinstance(self.padding, str):
            return self.padding
        return self.padding[axis]

    @property
    def out_hw(self) -> tuple[int, int]:
        return (out_size(self.h, self.kh, self.sh, self._axis_padding(0)),
                out_size(self.w, self.kw, self.sw, self._axis_padding(1)))

    @property
    def pad_hw(self) -> tuple[int, int]:
        ho, wo = self.out_hw
        return (pad_size(self.h, ho, self.kh, self.sh, self._axis_padding(0)),
                pad_size(self.w, wo, self.kw, self.sw, self._axis_padding(1)))


def forward_terms(g: ConvGeometry, *, version: str) -> Terms:
    """FLOPs and bytes of Paleo's GEMM model for one convolution (``_profile_conv2d_gemm``)."""
    ho, wo = g.out_hw
    flops = 2 * g.kh * g.kw * g.cin * ho * wo * g.cout * g.n * (1 - g.holes_in_filters)
    if g.holes_in_inputs > 0:
        flops += 2 * g.n * g.h * g.w * g.cin * (1 - g.holes_in_inputs)
    if version == "2017":
        ph, pw = g.pad_hw
        in_elems = g.n * (g.h + 2 * ph) * (g.w + 2 * pw) * g.cin
    else:
        in_elems = g.n * g.h * g.w * g.cin
    filter_elems = g.kh * g.kw * g.cin * g.cout * (1 - g.holes_in_filters)
    out_elems = g.n * ho * wo * g.cout
    return Terms(flops=(flops,), bytes=(in_elems * FLOAT_BYTES, filter_elems * FLOAT_BYTES,
                                        out_elems * FLOAT_BYTES))


def gradient_geometries(g: ConvGeometry, *, version: str) -> tuple[ConvGeometry, ConvGeometry]:
    """The backward-data and backward-filter convolutions Paleo costs for ``g``."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    ho, wo = g.out_hw
    pads = g.pad_hw
    exp, pad = [], []
    for size, out, k, s, p in ((g.h, ho, g.kh, g.sh, pads[0]), (g.w, wo, g.kw, g.sw, pads[1])):
        expanded = (out - 1) * s + 1
        before = k - 1 - p
        after = (size + k - 1) - expanded - before
        if abs(before - after) == 1:
            expanded += 1
        exp.append(expanded)
        pad.append(before if version == "dec2016" else min(before, after))
    holes = 1 - (ho * wo) / (exp[0] * exp[1])
    data = ConvGeometry(n=g.n, h=exp[0], w=exp[1], cin=g.cout, kh=g.kh, kw=g.kw, cout=g.cin,
                        padding=(pad[0], pad[1]),
                        holes_in_inputs=holes if version == "2017" else 0.0)
    filt = ConvGeometry(n=g.cin, h=g.h, w=g.w, cin=g.n, kh=exp[0], kw=exp[1], cout=g.cout,
                        padding="VALID" if g.padding == "VALID" else (pad[0], pad[1]),
                        holes_in_filters=holes)
    return data, filt


def conv_terms(g: ConvGeometry, *, version: str, backprop: bool = True
               ) -> tuple[Terms, Terms, Terms]:
    """Forward, backward-data and backward-filter terms of a convolution.

    ``backprop=False`` (a convolution reading the ``data`` input) charges no backward-data.
    """
    data, filt = gradient_geometries(g, version=version)
    return (forward_terms(g, version=version),
            forward_terms(data, version=version) if backprop else Terms(),
            forward_terms(filt, version=version))
