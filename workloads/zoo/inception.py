"""Inception v3: Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016 (table 1; figures 5, 6 and 7 for the three module
types; figure 10 and section 7 for the grid reductions), as TensorFlow's reference implementation
(TF-slim ``inception_v3``) lays it out, without the auxiliary classifier.

Every convolution is followed by batch normalisation and a ReLU and has no bias (as in the
reference code). Counting the BatchNorm scale and shift as parameters (2 per channel, as PyTorch's
``inception_v3`` does) gives 23,834,568 parameters: 21,751,136 weights in 94 convolutions,
2 x 17,216 BatchNorm channels and 2,049,000 in the 1x1 logits convolution (with its bias); this
equals torchvision's ``inception_v3`` (27,161,264) less its auxiliary head (3,326,696). TF-slim's
batch norm has no scale (1 parameter per channel), so TensorFlow reports fewer for the same net.

Input 299x299x3; the grid is 149 -> 147 -> 73 -> 71 -> 35 (Mixed_5b-5d, 288 channels at 5d) -> 17
(Mixed_6a-6e, 768) -> 8 (Mixed_7a-7c, 2048), then an 8x8 average pool, dropout (keep 0.8) and a
1x1 convolution to 1000 logits. Padding is TensorFlow's SAME/VALID as in the reference code.
"""
from __future__ import annotations

from workloads.zoo._layers import (batch_norm, block, concat, conv, dropout, input_layer, net,
                                   pool, relu, softmax)

PALEO_BATCH = 64  # the batch of Paleo's inception_v3.json
CLASSES = 1000
BN_EPSILON = 0.001  # the reference implementation's batch-norm epsilon


def _unit(layers: dict, name: str, parents: list[str], kernel, c_in: int, c_out: int, *,
          stride: int = 1, padding: str = "SAME") -> str:
    """Convolution (no bias) -> BatchNorm -> ReLU, written as ``name``, ``name_bn``,
    ``name_relu``; returns the ReLU's name."""
    layers[name] = conv(parents, kernel, c_in, c_out, stride=stride, padding=padding, bias=False)
    layers[f"{name}_bn"] = batch_norm([name], epsilon=BN_EPSILON)
    layers[f"{name}_relu"] = relu([f"{name}_bn"])
    return f"{name}_relu"


def _branch(units: list[tuple], c_in: int) -> tuple[dict, int]:
    """A chain of conv units ``(name, kernel, C_out[, stride, padding])`` as a Block's children;
    the first unit is fed by the block's parents. Returns the block dict and its output
    channels."""
    layers: dict = {}
    head: list[str] = []
    for name, kernel, c_out, *rest in units:
        stride, padding = rest if rest else (1, "SAME")
        head = [_unit(layers, name, head, kernel, c_in, c_out, stride=stride, padding=padding)]
        c_in = c_out
    return block(layers, endpoint=head[0]), c_in


def _pool_branch(c_in: int, c_out: int) -> tuple[dict, int]:
    """3x3/1 average pool (SAME) -> 1x1 conv unit."""
    layers: dict = {"AvgPool_0a_3x3": pool([], 3, 1, padding="SAME", average=True)}
    head = _unit(layers, "Conv2d_0b_1x1", ["AvgPool_0a_3x3"], 1, c_in, c_out)
    return block(layers, endpoint=head), c_out


def _split_branch(units: list[tuple], c_in: int, width: int) -> tuple[dict, int]:
    """Figure 7's expanded filter bank: a chain of conv units, then a 1x3 and a 3x1 unit side by
    side on its output, concatenated (2 x ``width`` channels)."""
    layers: dict = {}
    head: list[str] = []
    for name, kernel, c_out in units:
        head = [_unit(layers, name, head, kernel, c_in, c_out)]
        c_in = c_out
    a = _unit(layers, "Conv2d_0x_1x3", head, (1, 3), c_in, width)
    b = _unit(layers, "Conv2d_0y_3x1", head, (3, 1), c_in, width)
    layers["concat"] = concat([a, b])
    return block(layers, endpoint="concat"), 2 * width


def _mixed(branches: list[tuple[dict, int]]) -> tuple[dict, int]:
    """A module: ``Branch_i`` blocks side by side, concatenated along channels."""
    layers = {f"Branch_{i}": b for i, (b, _) in enumerate(branches)}
    layers["concat"] = concat(list(layers))
    return block(layers, endpoint="concat"), sum(c for _, c in branches)


def _module_35(c_in: int, pool_proj: int) -> tuple[dict, int]:
    """Mixed_5b-5d (figure 5, with the 5x5 branch the reference code keeps)."""
    return _mixed([_branch([("Conv2d_0a_1x1", 1, 64)], c_in),
                   _branch([("Conv2d_0a_1x1", 1, 48), ("Conv2d_0b_5x5", 5, 64)], c_in),
                   _branch([("Conv2d_0a_1x1", 1, 64), ("Conv2d_0b_3x3", 3, 96),
                            ("Conv2d_0c_3x3", 3, 96)], c_in),
                   _pool_branch(c_in, pool_proj)])


def _reduce_35_to_17(c_in: int) -> tuple[dict, int]:
    """Mixed_6a: grid reduction 35 -> 17 (figure 10)."""
    return _mixed([_branch([("Conv2d_1a_3x3", 3, 384, 2, "VALID")], c_in),
                   _branch([("Conv2d_0a_1x1", 1, 64), ("Conv2d_0b_3x3", 3, 96),
                            ("Conv2d_1a_3x3", 3, 96, 2, "VALID")], c_in),
                   (block({"MaxPool_1a_3x3": pool([], 3, 2, padding="VALID")},
                          endpoint="MaxPool_1a_3x3"), c_in)])


def _module_17(c_in: int, c7: int) -> tuple[dict, int]:
    """Mixed_6b-6e (figure 6 with n = 7): factorised 7x7 convolutions of width ``c7``."""
    return _mixed([_branch([("Conv2d_0a_1x1", 1, 192)], c_in),
                   _branch([("Conv2d_0a_1x1", 1, c7), ("Conv2d_0b_1x7", (1, 7), c7),
                            ("Conv2d_0c_7x1", (7, 1), 192)], c_in),
                   _branch([("Conv2d_0a_1x1", 1, c7), ("Conv2d_0b_7x1", (7, 1), c7),
                            ("Conv2d_0c_1x7", (1, 7), c7), ("Conv2d_0d_7x1", (7, 1), c7),
                            ("Conv2d_0e_1x7", (1, 7), 192)], c_in),
                   _pool_branch(c_in, 192)])


def _reduce_17_to_8(c_in: int) -> tuple[dict, int]:
    """Mixed_7a: grid reduction 17 -> 8."""
    return _mixed([_branch([("Conv2d_0a_1x1", 1, 192), ("Conv2d_1a_3x3", 3, 320, 2, "VALID")],
                           c_in),
                   _branch([("Conv2d_0a_1x1", 1, 192), ("Conv2d_0b_1x7", (1, 7), 192),
                            ("Conv2d_0c_7x1", (7, 1), 192),
                            ("Conv2d_1a_3x3", 3, 192, 2, "VALID")], c_in),
                   (block({"MaxPool_1a_3x3": pool([], 3, 2, padding="VALID")},
                          endpoint="MaxPool_1a_3x3"), c_in)])


def _module_8(c_in: int) -> tuple[dict, int]:
    """Mixed_7b-7c (figure 7): expanded filter banks for the 8x8 grid."""
    return _mixed([_branch([("Conv2d_0a_1x1", 1, 320)], c_in),
                   _split_branch([("Conv2d_0a_1x1", 1, 384)], c_in, 384),
                   _split_branch([("Conv2d_0a_1x1", 1, 448), ("Conv2d_0b_3x3", 3, 384)], c_in,
                                 384),
                   _pool_branch(c_in, 192)])


def inception_v3(*, batch: int = PALEO_BATCH, classes: int = CLASSES) -> dict:
    """Inception v3 for a 299x299x3 input, without the auxiliary head."""
    layers: dict = {"data": input_layer(batch, 299, 299, 3)}
    head = _unit(layers, "Conv2d_1a_3x3", ["data"], 3, 3, 32, stride=2, padding="VALID")
    head = _unit(layers, "Conv2d_2a_3x3", [head], 3, 32, 32, padding="VALID")
    head = _unit(layers, "Conv2d_2b_3x3", [head], 3, 32, 64)
    layers["MaxPool_3a_3x3"] = pool([head], 3, 2, padding="VALID")
    head = _unit(layers, "Conv2d_3b_1x1", ["MaxPool_3a_3x3"], 1, 64, 80, padding="VALID")
    head = _unit(layers, "Conv2d_4a_3x3", [head], 3, 80, 192, padding="VALID")
    layers["MaxPool_5a_3x3"] = pool([head], 3, 2, padding="VALID")
    head, c = "MaxPool_5a_3x3", 192
    modules = (("Mixed_5b", _module_35, 32), ("Mixed_5c", _module_35, 64),
               ("Mixed_5d", _module_35, 64), ("Mixed_6a", _reduce_35_to_17, None),
               ("Mixed_6b", _module_17, 128), ("Mixed_6c", _module_17, 160),
               ("Mixed_6d", _module_17, 160), ("Mixed_6e", _module_17, 192),
               ("Mixed_7a", _reduce_17_to_8, None), ("Mixed_7b", _module_8, None),
               ("Mixed_7c", _module_8, None))
    for name, make, width in modules:
        module, c = make(c) if width is None else make(c, width)
        module["parents"] = [head]
        layers[name] = module
        head = name
    layers["Logits"] = block({
        "AvgPool_1a_8x8": pool([], 8, 1, padding="VALID", average=True),
        "Dropout_1b": dropout(["AvgPool_1a_8x8"], 0.8),
        "Conv2d_1c_1x1": conv(["Dropout_1b"], 1, c, classes),
    }, parents=[head], endpoint="Conv2d_1c_1x1")
    layers["Predictions"] = softmax(["Logits"], classes)
    return net("inception_v3", layers, description="Inception v3 (Szegedy et al., CVPR 2016) "
               "as TF-slim lays it out, without the auxiliary classifier")
