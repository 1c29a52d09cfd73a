"""Network in Network: Lin, Chen and Yan, "Network In Network", ICLR 2014, in the ImageNet form of
the authors' Caffe model-zoo net (gist mavenlin/d802a5849de39225bcc6, the one Paleo used).

Four "mlpconv" stages (section 3.1): a spatial convolution followed by two 1x1 convolutions (the
"cccp" layers, a per-pixel multilayer perceptron), each with a ReLU; 3x3/2 max pooling after the
first three stages, dropout 0.5 before the fourth, and global average pooling of the last stage's
1000 maps as the classifier (section 3.2, no fully connected layer). A 224x224 input: conv1
11x11/4 -> 54, pool 27, 13, 6. 7,595,176 parameters with biases.
"""
from __future__ import annotations

from workloads.zoo._layers import Stack, conv, dropout, input_layer, net, pool, relu, softmax

PALEO_BATCH = 128  # the batch of Paleo's nin.json
CLASSES = 1000

# (spatial conv name, kernel, stride, pad, C_out, [1x1 conv names], 1x1 C_out)
_STAGES = (("conv1", 11, 4, 0, 96, ("cccp1", "cccp2"), (96, 96)),
           ("conv2", 5, 1, 2, 256, ("cccp3", "cccp4"), (256, 256)),
           ("conv3", 3, 1, 1, 384, ("cccp5", "cccp6"), (384, 384)),
           ("conv4-1024", 3, 1, 1, 1024, ("cccp7-1024", "cccp8-1024"), (1024, CLASSES)))


def nin(*, batch: int = PALEO_BATCH) -> dict:
    """NIN for ImageNet (224x224 input, 1000 classes), Caffe layer names; Caffe pools in ceil
    mode."""
    s = Stack({"data": input_layer(batch, 224, 224, 3)}, head="data")
    c_in = 3
    for i, (name, k, stride, pad, c_out, cccp, cccp_out) in enumerate(_STAGES):
        if i == 3:
            s.add("drop", dropout, 0.5)
        s.add(name, conv, k, c_in, c_out, stride=stride, padding=(pad, pad))
        s.add(f"relu_{name}", relu)
        c_in = c_out
        for cname, cout in zip(cccp, cccp_out):
            s.add(cname, conv, 1, c_in, cout, padding=(0, 0))
            s.add(f"relu_{cname}", relu)
            c_in = cout
        if i < 3:
            s.add(f"pool{i + 1}", pool, 3, 2, padding=(0, 0), ceil_mode=True)
    s.add("pool4", pool, 6, 1, padding=(0, 0), ceil_mode=True, average=True)
    s.add("prob", softmax, CLASSES)
    return net("nin", s.layers, description="Network in Network (Lin et al., ICLR 2014), "
               "the authors' ImageNet Caffe model")
