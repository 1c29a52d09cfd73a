"""Convolution algorithms: the arithmetic one phase of a convolution costs under each.

A convolution library does not have to compute a convolution directly. cuDNN (from v5, 2016)
offers Winograd's minimal filtering algorithms for 3x3 stride-1 convolutions, and autotuning
frameworks (TensorFlow's ``tf_cnn_benchmarks``, MXNet, PyTorch with ``cudnn.benchmark``) pick the
fastest algorithm per layer. The roofline therefore asks this module for the FLOPs of each
algorithm a device's software stack offers (``Device.conv_algorithms``) and keeps the fastest.

``winograd_2x2_3x3`` is F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016): each 2x2 output tile of each (input, output) channel pair costs
(2+3-1)^2 = 16 multiplications instead of 2^2 x 3^2 = 36, a 2.25x reduction, plus transforms
whose cost is counted here from the transform matrices (all entries 0, +-1 or +-1/2):

- input tile 4x4 -> 4x4 (``B^T d B``): each 1-D transform of 4 values takes 4 additions; 8 of them
  (4 columns, 4 rows) = 32 FLOPs per tile and input channel;
- output 4x4 -> 2x2 (``A^T m A``): 4 column transforms of 4 additions and 2 row transforms of 4
  = 24 FLOPs per tile and output channel;
- filter 3x3 -> 4x4 (``G g G^T``): 28 FLOPs per filter (about 4 + 3 per 1-D transform, 4 + 4 of
  them), once per phase, which is negligible next to the rest.

The backward passes are convolutions of the same shape (backward-data a 3x3 stride-1 convolution
of the output gradient with the flipped filters; backward-filter one of the input with the
output gradient), so they get the same reduction. Memory traffic is the direct algorithm's: the
fused kernels keep the transformed tiles on chip.

Eligible: ``Convolution`` layers with a 3x3 kernel, stride 1, dilation 1 and one group, at fp32.
Tensor-core data types keep the direct (implicit-GEMM) algorithm, which is what cuDNN picks there.
"""
from __future__ import annotations

import math

from simulator.catalog.device import CONV_ALGORITHMS
from workloads.graph import Layer
from workloads.ops import Work

DIRECT, WINOGRAD_2X2_3X3 = CONV_ALGORITHMS
#: Data types at which the fast algorithms are used (no tensor-core path).
FAST_CONV_DTYPES = ("fp32",)

_TILE = 2            # output tile m of F(m x m, r x r)
_ALPHA = 4           # m + r - 1, the transformed tile's side
_INPUT_TRANSFORM_FLOPS = 32
_OUTPUT_TRANSFORM_FLOPS = 24
_FILTER_TRANSFORM_FLOPS = 28


def winograd_eligible(layer: Layer) -> bool:
    """Whether F(2x2, 3x3) can compute ``layer``."""
    a = layer.attrs
    return (layer.type == "Convolution" and tuple(a.get("kernel_hw", ())) == (3, 3)
            and tuple(a.get("stride_hw", ())) == (1, 1)
            and tuple(a.get("dilation_hw", (1, 1))) == (1, 1) and a.get("groups", 1) == 1)


def _tiles(height: int, width: int) -> int:
    return math.ceil(height / _TILE) * math.ceil(width / _TILE)


def winograd_flops(layer: Layer, phase: str) -> float:
    """FLOPs of the convolution itself (no fused epilogue) in ``phase`` under F(2x2, 3x3)."""
    n, h, w, c = layer.input_shapes[0]
    _, ho, wo, k = layer.output_shape
    if phase == "backward_data":      # produces dX (h x w x C) from dY (K channels)
        tiles, c_in, c_out = n * _tiles(h, w), k, c
    else:                             # forward: Y from X; backward_filter: tiles of dY
        tiles, c_in, c_out = n * _tiles(ho, wo), c, k
    products = 2.0 * tiles * _ALPHA ** 2 * c_in * c_out
    transforms = tiles * (_INPUT_TRANSFORM_FLOPS * c_in + _OUTPUT_TRANSFORM_FLOPS * c_out)
    return products + transforms + _FILTER_TRANSFORM_FLOPS * c * k


def algorithm_works(layer: Layer, phase: str, algorithms, dtype: str) -> list[tuple[str, Work]]:
    """``(algorithm, work)`` for every algorithm of ``algorithms`` that can run this phase.

    ``direct`` is always among them; the others replace the direct multiply-adds of the phase
    (``2 x macs``) by their own FLOPs and keep everything else of the phase's work.
    """
    work = layer.work[phase]
    choices = [(DIRECT, work)]
    direct_flops = 2.0 * layer.macs
    if (dtype not in FAST_CONV_DTYPES or work.flops < direct_flops or direct_flops == 0
            or WINOGRAD_2X2_3X3 not in algorithms or not winograd_eligible(layer)):
        return choices
    fast = Work(work.flops - direct_flops + winograd_flops(layer, phase), work.read_elems,
                work.write_elems)
    choices.append((WINOGRAD_2X2_3X3, fast))
    return choices
