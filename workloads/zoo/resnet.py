"""ResNet v1: He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(table 1; figure 5 for the basic and bottleneck blocks), with torchvision's "v1.5" placement of the
stride: a downsampling bottleneck strides in its 3x3 convolution, not in its first 1x1 (the
paper's own models, such as MSRA's Caffe ResNet-50, stride in the 1x1: ``version="v1"``).

:func:`resnet` builds the whole family from its parameters (block type, blocks per group, filters
of the first group, image size, classes), so a generator such as ParaDnn's can sweep them; the
presets are table 1's columns. Layout, as torchvision's ``ResNet``:

- stem: 7x7/2 convolution (padding 3) -> BatchNorm -> ReLU -> 3x3/2 max pool (padding 1);
- groups ``layer1..layerG``: group ``i`` has ``filters * 2**i`` channels (x4 at a bottleneck's
  output) and strides 2 in its first block, except group 1 which follows the max pool at stride 1;
  a block's shortcut is the identity, or a 1x1 strided convolution -> BatchNorm ("option B",
  section 3.3) when the shape changes;
- head: global average pool -> fully connected layer (with bias) -> softmax.

Every convolution has no bias and is followed by a BatchNorm with scale and shift. Parameters at
224x224 and 1000 classes: resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032;
resnet101 44,549,160; resnet152 60,192,808 (equal to torchvision's).
"""
from __future__ import annotations

from typing import Sequence

from simulator.errors import SpecError, UnknownNameError
from workloads.zoo._layers import (add, batch_norm, block, conv, fc, global_avg_pool, input_layer,
                                   net, pool, relu, softmax)

BATCH = 32
BLOCK_TYPES = ("basic", "bottleneck")
VERSIONS = ("v1", "v1.5")  # where a downsampling bottleneck strides: first 1x1, or the 3x3
EXPANSION = {"basic": 1, "bottleneck": 4}  # output channels / block width (figure 5)
PRESETS = {  # table 1: block type and blocks per group
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


def _conv_bn(layers: dict, suffix: str, parents: list[str], kernel: int, c_in: int, c_out: int,
             stride: int) -> str:
    layers[f"conv{suffix}"] = conv(parents, kernel, c_in, c_out, stride=stride,
                                   padding=(kernel // 2, kernel // 2), bias=False)
    layers[f"bn{suffix}"] = batch_norm([f"conv{suffix}"])
    return f"bn{suffix}"


def _residual_block(kind: str, block_input: str, c_in: int, width: int, stride: int,
                    version: str) -> tuple[dict, int]:
    """The children of one residual block (figure 5) fed by the layer ``block_input`` (a full
    name), and its output channels."""
    c_out = width * EXPANSION[kind]
    m: dict = {}
    if kind == "basic":
        h = _conv_bn(m, "1", [], 3, c_in, width, stride)
        m["relu1"] = relu([h])
        h = _conv_bn(m, "2", ["relu1"], 3, width, width, 1)
    else:
        s1, s3 = (stride, 1) if version == "v1" else (1, stride)
        h = _conv_bn(m, "1", [], 1, c_in, width, s1)
        m["relu1"] = relu([h])
        h = _conv_bn(m, "2", ["relu1"], 3, width, width, s3)
        m["relu2"] = relu([h])
        h = _conv_bn(m, "3", ["relu2"], 1, width, c_out, 1)
    shortcut = block_input
    if stride != 1 or c_in != c_out:
        m["downsample_conv"] = conv([], 1, c_in, c_out, stride=stride, padding=(0, 0),
                                    bias=False)
        m["downsample_bn"] = batch_norm(["downsample_conv"])
        shortcut = "downsample_bn"
    m["add"] = add([h, shortcut])
    m["relu"] = relu(["add"])
    return m, c_out


def resnet(*, block_type: str = "bottleneck", blocks_per_group: Sequence[int] = (3, 4, 6, 3),
           filters: int = 64, image_size: int = 224, classes: int = 1000, batch: int = BATCH,
           version: str = "v1.5", name: str | None = None) -> dict:
    """A ResNet v1(.5) net spec.

    Parameters
    ----------
    block_type : {"basic", "bottleneck"}
        Two 3x3 convolutions, or 1x1 -> 3x3 -> 1x1 with a 4x wider output (figure 5).
    blocks_per_group : sequence of int
        Residual blocks in each group; the number of groups is its length (table 1 has 4).
    filters : int
        Width of the first group; each later group doubles it.
    image_size : int
        Height and width of the square RGB input, in pixels.
    classes : int
        Outputs of the classifier.
    batch : int
        Batch written in the Input tensor (any batch can be asked for when loading).
    version : {"v1.5", "v1"}
        Where a downsampling bottleneck strides: its 3x3 convolution (torchvision, TF official
        models) or its first 1x1 convolution (the paper's Caffe models). Same parameters; v1 does
        fewer multiply-adds.
    name : str, optional
        The net's name; by default one that spells the parameters.
    """
    if block_type not in BLOCK_TYPES:
        raise UnknownNameError("ResNet block type", block_type, BLOCK_TYPES, field="block_type")
    if version not in VERSIONS:
        raise UnknownNameError("ResNet version", version, VERSIONS, field="version")
    groups = tuple(blocks_per_group)
    for field, value, ok in (("blocks_per_group", list(groups),
                              bool(groups) and all(isinstance(b, int) and b >= 1 for b in groups)),
                             ("filters", filters, isinstance(filters, int) and filters >= 1),
                             ("image_size", image_size,
                              isinstance(image_size, int) and image_size >= 1),
                             ("classes", classes, isinstance(classes, int) and classes >= 1),
                             ("batch", batch, isinstance(batch, int) and batch >= 1)):
        if not ok:
            raise SpecError("must be a positive integer (a non-empty list of them for "
                            "blocks_per_group)", source="resnet", field=field, value=value)
    if name is None:
        name = (f"resnet_{version}_{block_type}_{'-'.join(map(str, groups))}_f{filters}"
                f"_{image_size}px_{classes}c")
    layers: dict = {"data": input_layer(batch, image_size, image_size, 3)}
    layers["conv1"] = conv(["data"], 7, 3, filters, stride=2, padding=(3, 3), bias=False)
    layers["bn1"] = batch_norm(["conv1"])
    layers["relu"] = relu(["bn1"])
    layers["maxpool"] = pool(["relu"], 3, 2, padding=(1, 1))
    head, c = "maxpool", filters
    for g, count in enumerate(groups):
        group = f"layer{g + 1}"
        children: dict = {}
        block_input = head
        for j in range(count):
            stride = 2 if (g > 0 and j == 0) else 1
            m, c = _residual_block(block_type, block_input, c, filters * 2 ** g, stride, version)
            children[str(j)] = block(m, parents=[block_input], endpoint="relu")
            block_input = f"{group}/{j}"
        layers[group] = block(children, parents=[head], endpoint=str(count - 1))
        head = group
    layers["avgpool"] = global_avg_pool([head])
    layers["fc"] = fc(["avgpool"], classes)
    layers["prob"] = softmax(["fc"], classes)
    where = "3x3 conv as torchvision" if version == "v1.5" else "first 1x1 conv"
    return net(name, layers, description=(
        f"ResNet {version} (He et al., CVPR 2016; downsampling stride in the {where}): "
        f"{block_type} blocks {'-'.join(map(str, groups))}, {filters} filters first, "
        f"{image_size}x{image_size}, {classes} classes"))


def preset(name: str, *, batch: int = BATCH) -> dict:
    """One of table 1's ImageNet ResNets (``resnet18`` ... ``resnet152``) at 224x224."""
    if name not in PRESETS:
        raise UnknownNameError("ResNet preset", name, list(PRESETS))
    kind, groups = PRESETS[name]
    return resnet(block_type=kind, blocks_per_group=groups, batch=batch, name=name)


def resnet18(*, batch: int = BATCH) -> dict:
    """ResNet-18: basic blocks 2-2-2-2."""
    return preset("resnet18", batch=batch)


def resnet34(*, batch: int = BATCH) -> dict:
    """ResNet-34: basic blocks 3-4-6-3."""
    return preset("resnet34", batch=batch)


def resnet50(*, batch: int = BATCH) -> dict:
    """ResNet-50: bottleneck blocks 3-4-6-3."""
    return preset("resnet50", batch=batch)


def resnet101(*, batch: int = BATCH) -> dict:
    """ResNet-101: bottleneck blocks 3-4-23-3."""
    return preset("resnet101", batch=batch)


def resnet152(*, batch: int = BATCH) -> dict:
    """ResNet-152: bottleneck blocks 3-8-36-3."""
    return preset("resnet152", batch=batch)
