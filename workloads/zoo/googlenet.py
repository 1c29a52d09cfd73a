"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, table 1
and figure 3, as BVLC Caffe's ``bvlc_googlenet`` deploy net defines it, without the two auxiliary
classifiers (they only exist in training and are discarded at inference; section 5).

Stem: 7x7/2 convolution (64), 3x3/2 max pool, LRN, 1x1 (64) and 3x3 (192) convolutions, LRN, 3x3/2
max pool. Nine inception modules (3a-5b), each the concatenation of a 1x1 branch, a 1x1 -> 3x3
branch, a 1x1 -> 5x5 branch and a 3x3/1 max pool -> 1x1 branch, with the widths of table 1; 3x3/2
max pools after 3b and 4e, a 7x7 average pool, dropout 0.4 and a 1000-way classifier. Every
convolution has a bias and a ReLU; Caffe pools in ceil mode (112 -> 56 -> 28 -> 14 -> 7).
6,998,552 parameters. (torchvision's ``googlenet`` differs: batch norm, and a 3x3 in place of the
5x5 branch.)
"""
from __future__ import annotations

from workloads.zoo._layers import (block, concat, conv, dropout, fc, input_layer, lrn, net, pool,
                                   relu, softmax)

BATCH = 32
CLASSES = 1000

# table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
_MODULES = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
            "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
            "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
            "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
            "5b": (384, 192, 384, 48, 128, 128)}
_POOL_AFTER = {"3b": "pool3", "4e": "pool4"}


def _conv_relu(layers: dict, name: str, relu_name: str, parents: list[str], k: int, c_in: int,
               c_out: int, *, stride: int = 1) -> str:
    layers[name] = conv(parents, k, c_in, c_out, stride=stride, padding=(k // 2, k // 2))
    layers[relu_name] = relu([name])
    return relu_name


def _inception(c_in: int, widths: tuple[int, ...]) -> tuple[dict, int]:
    """The children of one inception module (figure 2b) and its output channels."""
    n1, r3, n3, r5, n5, pp = widths
    m: dict = {}
    b1 = _conv_relu(m, "1x1", "relu_1x1", [], 1, c_in, n1)
    r = _conv_relu(m, "3x3_reduce", "relu_3x3_reduce", [], 1, c_in, r3)
    b3 = _conv_relu(m, "3x3", "relu_3x3", [r], 3, r3, n3)
    r = _conv_relu(m, "5x5_reduce", "relu_5x5_reduce", [], 1, c_in, r5)
    b5 = _conv_relu(m, "5x5", "relu_5x5", [r], 5, r5, n5)
    m["pool"] = pool([], 3, 1, padding=(1, 1), ceil_mode=True)
    bp = _conv_relu(m, "pool_proj", "relu_pool_proj", ["pool"], 1, c_in, pp)
    m["output"] = concat([b1, b3, b5, bp])
    return m, n1 + n3 + n5 + pp


def googlenet(*, batch: int = BATCH) -> dict:
    """BVLC GoogLeNet for a 224x224x3 input, Caffe layer names (``inception_3a/1x1``, ...)."""
    layers: dict = {"data": input_layer(batch, 224, 224, 3)}
    stem: dict = {}
    _conv_relu(stem, "7x7_s2", "relu_7x7", [], 7, 3, 64, stride=2)
    layers["conv1"] = block(stem, parents=["data"], endpoint="relu_7x7")
    layers["pool1"] = block({"3x3_s2": pool([], 3, 2, padding=(0, 0), ceil_mode=True),
                             "norm1": lrn(["3x3_s2"], size=5, alpha=1e-4, beta=0.75)},
                            parents=["conv1"], endpoint="norm1")
    stem = {}
    r = _conv_relu(stem, "3x3_reduce", "relu_3x3_reduce", [], 1, 64, 64)
    r = _conv_relu(stem, "3x3", "relu_3x3", [r], 3, 64, 192)
    stem["norm2"] = lrn([r], size=5, alpha=1e-4, beta=0.75)
    layers["conv2"] = block(stem, parents=["pool1"], endpoint="norm2")
    layers["pool2"] = block({"3x3_s2": pool([], 3, 2, padding=(0, 0), ceil_mode=True)},
                            parents=["conv2"], endpoint="3x3_s2")
    head, c = "pool2", 192
    for key, widths in _MODULES.items():
        children, c = _inception(c, widths)
        name = f"inception_{key}"
        layers[name] = block(children, parents=[head], endpoint="output")
        head = name
        if key in _POOL_AFTER:
            layers[_POOL_AFTER[key]] = block(
                {"3x3_s2": pool([], 3, 2, padding=(0, 0), ceil_mode=True)}, parents=[head],
                endpoint="3x3_s2")
            head = _POOL_AFTER[key]
    layers["pool5"] = block({"7x7_s1": pool([], 7, 1, padding=(0, 0), ceil_mode=True,
                                            average=True),
                             "drop_7x7_s1": dropout(["7x7_s1"], 0.6)},
                            parents=[head], endpoint="drop_7x7_s1")
    layers["loss3"] = block({"classifier": fc([], CLASSES)}, parents=["pool5"],
                            endpoint="classifier")
    layers["prob"] = softmax(["loss3"], CLASSES)
    return net("googlenet", layers, description="GoogLeNet (Szegedy et al., CVPR 2015) as "
               "BVLC Caffe's bvlc_googlenet, without the auxiliary classifiers")
