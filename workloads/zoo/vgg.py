"""VGG-16: Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, configuration D (table 1), as the authors' Caffe deploy net defines it.

Thirteen 3x3 convolutions with stride 1 and padding 1 (section 2.1), five 2x2/2 max poolings,
fc6 and fc7 of 4096 outputs with dropout 0.5, fc8 of 1000; a bias on every layer and a separate ReLU
after every hidden layer. A 224x224 input gives a 7x7x512 pool5, 138,357,544 parameters and
15,470,264,320 forward multiply-adds per image.
"""
from __future__ import annotations

from workloads.zoo._layers import Stack, conv, dropout, fc, input_layer, net, pool, relu, softmax

PALEO_BATCH = 64  # the batch of Paleo's vgg16.json
CLASSES = 1000

# configuration D: (stage, [output channels of each 3x3 convolution])
_STAGES = ((1, (64, 64)), (2, (128, 128)), (3, (256, 256, 256)), (4, (512, 512, 512)),
           (5, (512, 512, 512)))


def vgg16(*, batch: int = PALEO_BATCH, image_size: int = 224, classes: int = CLASSES) -> dict:
    """VGG-16 (configuration D) with the layer names of the Caffe deploy net (conv1_1 ... fc8)."""
    s = Stack({"data": input_layer(batch, image_size, image_size, 3)}, head="data")
    c_in = 3
    for stage, widths in _STAGES:
        for j, c_out in enumerate(widths, start=1):
            s.add(f"conv{stage}_{j}", conv, 3, c_in, c_out, padding=(1, 1))
            s.add(f"relu{stage}_{j}", relu)
            c_in = c_out
        s.add(f"pool{stage}", pool, 2, 2, padding=(0, 0), ceil_mode=True)
    for i in (6, 7):
        s.add(f"fc{i}", fc, 4096)
        s.add(f"relu{i}", relu)
        s.add(f"drop{i}", dropout, 0.5)
    s.add("fc8", fc, classes)
    s.add("prob", softmax, classes)
    return net("vgg16", s.layers, description="VGG-16, configuration D of Simonyan and "
               "Zisserman (ICLR 2015), as the authors' Caffe deploy net")
