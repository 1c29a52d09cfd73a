"""DenseNet-121: Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional
Networks", CVPR 2017, table 1 (DenseNet-BC: bottleneck layers and compression 0.5, growth rate
k = 32), with torchvision's layer names and padding.

- stem: 7x7/2 convolution (64 maps, padding 3) -> BatchNorm -> ReLU -> 3x3/2 max pool (padding 1);
- four dense blocks of 6, 12, 24 and 16 layers; layer ``l`` applies BN -> ReLU -> 1x1 conv (4k
  maps) -> BN -> ReLU -> 3x3 conv (k maps, padding 1) to the concatenation of the block input
  and every earlier layer's output (equation 2 and section 3, "bottleneck layers"), and its
  ``concat`` appends its k new maps: channels grow 64 -> 256, 128 -> 512, 256 -> 1024,
  512 -> 1024;
- transitions between blocks: BN -> ReLU -> 1x1 conv halving the channels (compression
  theta = 0.5) -> 2x2/2 average pool;
- head: BN -> ReLU -> global average pool -> fully connected layer (with bias) -> softmax.

Convolutions have no bias; BatchNorm has scale and shift. At 224x224 the last feature map is
7x7x1024 and the net has 7,978,856 parameters (equal to torchvision's ``densenet121``).
"""
from __future__ import annotations

from workloads.zoo._layers import (batch_norm, block, concat, conv, fc, global_avg_pool,
                                   input_layer, net, pool, relu, softmax)

BATCH = 32
CLASSES = 1000
GROWTH = 32           # k
BOTTLENECK_FACTOR = 4  # the 1x1 convolution makes 4k maps
COMPRESSION = 0.5     # theta
BLOCKS_121 = (6, 12, 24, 16)


def _dense_layer(c_in: int, growth: int) -> dict:
    """The children of one BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) layer and its concatenation; the
    first child and the concat take the block's parents (the running concatenation)."""
    width = BOTTLENECK_FACTOR * growth
    return {"norm1": batch_norm([]), "relu1": relu(["norm1"]),
            "conv1": conv(["relu1"], 1, c_in, width, padding=(0, 0), bias=False),
            "norm2": batch_norm(["conv1"]), "relu2": relu(["norm2"]),
            "conv2": conv(["relu2"], 3, width, growth, padding=(1, 1), bias=False)}


def densenet(*, blocks: tuple[int, ...] = BLOCKS_121, growth: int = GROWTH, stem: int = 64,
             image_size: int = 224, classes: int = CLASSES, batch: int = BATCH,
             name: str = "densenet121") -> dict:
    """A DenseNet-BC for ImageNet; the defaults are DenseNet-121."""
    layers: dict = {"data": input_layer(batch, image_size, image_size, 3)}
    layers["conv0"] = conv(["data"], 7, 3, stem, stride=2, padding=(3, 3), bias=False)
    layers["norm0"] = batch_norm(["conv0"])
    layers["relu0"] = relu(["norm0"])
    layers["pool0"] = pool(["relu0"], 3, 2, padding=(1, 1))
    head, c = "pool0", stem
    for b, count in enumerate(blocks, start=1):
        name_b = f"denseblock{b}"
        children: dict = {}
        features = head
        for i in range(1, count + 1):
            layer = _dense_layer(c, growth)
            layer["concat"] = concat([features, "conv2"])
            children[f"denselayer{i}"] = block(layer, parents=[features], endpoint="concat")
            features = f"{name_b}/denselayer{i}"
            c += growth
        layers[name_b] = block(children, parents=[head], endpoint=f"denselayer{count}")
        head = name_b
        if b < len(blocks):
            c_out = int(c * COMPRESSION)
            name_t = f"transition{b}"
            layers[name_t] = block({
                "norm": batch_norm([]), "relu": relu(["norm"]),
                "conv": conv(["relu"], 1, c, c_out, padding=(0, 0), bias=False),
                "pool": pool(["conv"], 2, 2, padding=(0, 0), average=True),
            }, parents=[head], endpoint="pool")
            head, c = name_t, c_out
    layers["norm5"] = batch_norm([head])
    layers["relu5"] = relu(["norm5"])
    layers["avgpool"] = global_avg_pool(["relu5"])
    layers["classifier"] = fc(["avgpool"], classes)
    layers["prob"] = softmax(["classifier"], classes)
    return net(name, layers, description=(
        f"DenseNet-BC (Huang et al., CVPR 2017): growth {growth}, blocks "
        f"{'-'.join(map(str, blocks))}, compression {COMPRESSION}"))


def densenet121(*, batch: int = BATCH) -> dict:
    """DenseNet-121: growth 32, blocks 6-12-24-16, compression 0.5, 224x224 input."""
    return densenet(batch=batch)
