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

``fft`` and ``fft_tiling`` are cuDNN's two FFT algorithms (from v3, 2015; the method is Mathieu,
Henaff and LeCun, "Fast Training of Convolutional Networks through FFTs", ICLR 2014, and
Vasilache et al., "Fast Convolutional Nets With fbfft", ICLR 2015): a convolution becomes a
pointwise product of spectra, summed over input channels, i.e. one complex matrix product per
frequency. ``fft`` transforms the whole padded map (cuDNN: up to 256 per axis; the size is rounded
up to the next 2^a 3^b 5^c 7^d, the sizes cuFFT is built for); ``fft_tiling`` cuts it into 32x32
tiles, each yielding (33 - r) outputs per axis. Both need stride 1, dilation 1 and one group.
``winograd_4x4_3x3`` is Lavin and Gray's larger tile, F(4x4, 3x3): 36 products per 4x4 output
tile and channel pair (4x fewer than direct), standing for cuDNN's non-fused Winograd (NVIDIA does
not document its tile). These three are *staged*: not fused, their transformed tensors go through
device memory, so each is priced as four kernels, each on its own roofline --

1. transform operand A (the input; dY in backward-data): for an FFT 2.5 n log2 n FLOPs per real
   2-D transform of n points (half the conventional 5 n log2 n of a complex one), writing
   n1 (n2/2 + 1) complex values per channel and tile; for F(4x4,3x3) 336 FLOPs and 36 values;
2. transform operand B (the filters; dY in backward-filter), the same way;
3. the products, one batched GEMM over the transformed domain: 8 FLOPs per complex multiply-add
   (2 per real one) for every element, tile and (input, output) channel pair, reading both
   transformed operands and writing the result's;
4. the inverse transform of the result, reading it and writing the tensor (plus any epilogue
   FLOPs of the phase).

The transforms run at ``TRANSFORM_EFFICIENCY`` of the device's efficiency, the products at the
device's own. That traffic and the transforms' low efficiency are what keep the staged
algorithms from winning everywhere on FLOPs: on wide maps with few channels they lose to fused
Winograd or the direct algorithm; with many channels the products dominate and the reduction
(about 9x for a 5x5 FFT at 32x32 tiles) shows.
"""
from __future__ import annotations

import math

from simulator.catalog.device import CONV_ALGORITHMS
from workloads.graph import Layer
from workloads.ops import Work

DIRECT, WINOGRAD_2X2_3X3, WINOGRAD_4X4_3X3, FFT, FFT_TILING = CONV_ALGORITHMS
#: The algorithms computed as separate kernels with their transformed tensors in device memory.
STAGED = (WINOGRAD_4X4_3X3, FFT, FFT_TILING)
#: One kernel of an algorithm: its work and the fraction of the device's efficiency it runs at.
Kernel = tuple[Work, float]
#: Data types at which the fast algorithms are used (no tensor-core path).
FAST_CONV_DTYPES = ("fp32",)

_TILE = 2            # output tile m of F(m x m, r x r)
_ALPHA = 4           # m + r - 1, the transformed tile's side
_INPUT_TRANSFORM_FLOPS = 32
_OUTPUT_TRANSFORM_FLOPS = 24
_FILTER_TRANSFORM_FLOPS = 28

_FFT_TILE = 32            # fft_tiling's tile side (cuDNN: "FFT with 32x32 tiles")
_FFT_MAX_SIZE = 256       # fft's largest padded map side (cuDNN's documented limit)
#: FLOPs per real element of the transformed domain and (input, output) channel pair in the
#: products: a complex multiply-add is 8 FLOPs for 2 real elements; a real one 2 FLOPs for 1.
_FFT_PRODUCT_FLOPS, _WINOGRAD_PRODUCT_FLOPS = 4, 2

# F(4x4, 3x3) (Lavin and Gray's larger tile): 6x6 transformed tiles. Transform FLOPs counted
# from its matrices, a multiplication for every entry other than 0 and +-1 and an addition for
# every non-zero after the first in a row:
#   B^T (6x6) 28 FLOPs a 1-D transform, 12 of them for a tile: 336;
#   A^T (4x6) 20, 6 + 4 of them: 200;  G (6x3) 21, 3 + 6 of them: 189.
_W4_ALPHA, _W4_TILE = 6, 4
_W4_INPUT_FLOPS, _W4_OUTPUT_FLOPS, _W4_FILTER_FLOPS = 336, 200, 189

#: The staged algorithms' transform kernels run at this fraction of the device's convolution
#: efficiency (memory and arithmetic alike: they are strided gathers and small transforms); their
#: products, batched GEMMs, run at the device's own. Fitted once, to single-layer forward timings
#: on the P100 and the V100, by ``experiments/fit_staged_conv.py`` (``--check`` reproduces it).
TRANSFORM_EFFICIENCY = 0.35


def _stride_1_ungrouped(layer: Layer) -> bool:
    """A ``Convolution`` with stride 1, dilation 1 and one group: what every fast algorithm needs."""
    a = layer.attrs
    return (layer.type == "Convolution" and tuple(a.get("stride_hw", ())) == (1, 1)
            and tuple(a.get("dilation_hw", (1, 1))) == (1, 1) and a.get("groups", 1) == 1)


def winograd_eligible(layer: Layer) -> bool:
    """Whether F(2x2, 3x3) (or F(4x4, 3x3)) can compute ``layer``."""
    return _stride_1_ungrouped(layer) and tuple(layer.attrs.get("kernel_hw", ())) == (3, 3)


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


def staged_eligible(layer: Layer, algorithm: str) -> bool:
    """Whether the staged ``algorithm`` can compute ``layer``: stride 1, dilation 1, one group;
    a 3x3 kernel for Winograd, any kernel for the FFTs."""
    if algorithm == WINOGRAD_4X4_3X3:
        return winograd_eligible(layer)
    return _stride_1_ungrouped(layer)


def _fft_size(n: int) -> int:
    """The smallest size >= ``n`` whose only prime factors are 2, 3, 5 and 7."""
    while True:
        m = n
        for p in (2, 3, 5, 7):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def staged_geometry(layer: Layer, phase: str, algorithm: str):
    """``(elements per tile and channel in the transformed domain, tiles per image, product FLOPs
    per element and channel pair, (operand-A, filter, result) transform FLOPs)``, or None where
    ``algorithm`` cannot run this phase.

    The tiles cover the phase's output map (dX's for backward-data, Y's otherwise); an FFT's
    transform spans that map (or a tile's outputs) plus the kernel's reach minus one.
    """
    if not staged_eligible(layer, algorithm):
        return None
    _, h, w, _ = layer.input_shapes[0]
    _, ho, wo, _ = layer.output_shape
    r_h, r_w = layer.attrs["kernel_hw"]
    out_h, out_w = (h, w) if phase == "backward_data" else (ho, wo)
    if algorithm == WINOGRAD_4X4_3X3:
        tiles = math.ceil(out_h / _W4_TILE) * math.ceil(out_w / _W4_TILE)
        return (_W4_ALPHA ** 2, tiles, _WINOGRAD_PRODUCT_FLOPS,
                (_W4_INPUT_FLOPS, _W4_FILTER_FLOPS, _W4_OUTPUT_FLOPS))
    if algorithm == FFT:
        n_h, n_w = out_h + r_h - 1, out_w + r_w - 1
        if max(n_h, n_w) > _FFT_MAX_SIZE:
            return None
        n_h, n_w, tiles = _fft_size(n_h), _fft_size(n_w), 1
    else:
        if max(r_h, r_w) > _FFT_TILE:
            return None
        n_h = n_w = _FFT_TILE
        tiles = math.ceil(out_h / (n_h - r_h + 1)) * math.ceil(out_w / (n_w - r_w + 1))
    transform = 2.5 * n_h * n_w * math.log2(n_h * n_w)
    return 2 * n_h * (n_w // 2 + 1), tiles, _FFT_PRODUCT_FLOPS, (transform,) * 3


def staged_kernels(layer: Layer, phase: str, algorithm: str) -> tuple[Work, ...] | None:
    """The four kernels of a staged ``algorithm`` for this phase, without the phase's epilogue;
    None where the algorithm cannot run it."""
    geometry = staged_geometry(layer, phase, algorithm)
    if geometry is None:
        return None
    points, tiles_per_image, product_flops, (t_a, t_filter, t_result) = geometry
    n, h, w, c = layer.input_shapes[0]
    _, ho, wo, k = layer.output_shape
    r_h, r_w = layer.attrs["kernel_hw"]
    tiles = n * tiles_per_image
    x, filters, y = n * h * w * c, r_h * r_w * c * k, n * ho * wo * k
    # (tensor elements, transformed channels, transform FLOPs) of operand A, operand B, result
    a, b, result = {
        "forward": ((x, tiles * c, t_a), (filters, c * k, t_filter), (y, tiles * k, t_result)),
        "backward_data": ((y, tiles * k, t_a), (filters, c * k, t_filter),
                          (x, tiles * c, t_result)),
        "backward_filter": ((x, tiles * c, t_a), (y, tiles * k, t_result),
                            (filters, c * k, t_filter)),
    }[phase]
    return (
        Work(a[2] * a[1], a[0], a[1] * points),
        Work(b[2] * b[1], b[0], b[1] * points),
        Work(product_flops * points * tiles * c * k, (a[1] + b[1]) * points, result[1] * points),
        Work(result[2] * result[1], result[1] * points, result[0]),
    )


def _staged(kernels: tuple[Work, ...], epilogue_flops: float) -> tuple[Kernel, ...]:
    """The four kernels with their efficiency fractions; the epilogue joins the last."""
    transform_a, transform_b, products, inverse = kernels
    return ((transform_a, TRANSFORM_EFFICIENCY), (transform_b, TRANSFORM_EFFICIENCY),
            (products, 1.0), (inverse + Work(epilogue_flops), TRANSFORM_EFFICIENCY))


def algorithm_works(layer: Layer, phase: str, algorithms,
                    dtype: str) -> list[tuple[str, tuple[Kernel, ...]]]:
    """``(algorithm, kernels)`` for every algorithm of ``algorithms`` that can run this phase,
    each kernel a ``(work, efficiency fraction)`` pair; the phase's time under an algorithm is the
    sum of its kernels' roofline times, each divided by its fraction.

    ``direct`` is always among them, as one kernel: the phase's work. The others replace the
    direct multiply-adds of the phase (``2 x macs``) by their own work and keep the rest of the
    phase's FLOPs (its epilogue): Winograd F(2x2,3x3) as one fused kernel with the direct memory
    traffic, the staged algorithms as four kernels with their own traffic
    (:func:`staged_kernels`), the transforms at ``TRANSFORM_EFFICIENCY``.
    """
    work = layer.work[phase]
    choices: list[tuple[str, tuple[Kernel, ...]]] = [(DIRECT, ((work, 1.0),))]
    direct_flops = 2.0 * layer.macs
    if (dtype not in FAST_CONV_DTYPES or work.flops < direct_flops or direct_flops == 0
            or layer.type != "Convolution"):
        return choices
    epilogue_flops = work.flops - direct_flops
    if WINOGRAD_2X2_3X3 in algorithms and winograd_eligible(layer):
        fast = Work(epilogue_flops + winograd_flops(layer, phase), work.read_elems,
                    work.write_elems)
        choices.append((WINOGRAD_2X2_3X3, ((fast, 1.0),)))
    for algorithm in STAGED:
        kernels = staged_kernels(layer, phase, algorithm) if algorithm in algorithms else None
        if kernels is not None:
            choices.append((algorithm, _staged(kernels, epilogue_flops)))
    return choices
