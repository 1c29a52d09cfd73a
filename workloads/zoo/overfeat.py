"""OverFeat, the "fast" model: Sermanet, Eigen, Zhang, Mathieu, Fergus and LeCun, "OverFeat:
Integrated Recognition, Localization and Detection using Convolutional Networks", ICLR 2014,
table 1.

Five convolutional stages (96, 256, 512, 1024, 1024 maps; 11x11/4, 5x5, then 3x3 with one pixel of
zero padding), 2x2/2 max pooling after stages 1, 2 and 5, no LRN (section 3.1: "we do not use
contrast normalization"), fully connected layers of 3072, 4096 and 1000 outputs with dropout 0.5
on the 6th and 7th. A 231x231 input gives 56 -> 28 -> 24 -> 12 -> 12 -> 12 -> 12 -> 6.
145,920,872 parameters with biases. (TF-slim's ``overfeat``, which Paleo used, has 64 filters in
layer 1 instead of the paper's 96: 145,704,424 parameters.)
"""
from __future__ import annotations

from workloads.zoo._layers import Stack, conv, dropout, fc, input_layer, net, pool, relu, softmax

PALEO_BATCH = 128  # the batch of Paleo's overfeat.json
CLASSES = 1000

# table 1, fast model: (C_out, kernel, stride, zero padding, 2x2/2 max pooling after?)
_STAGES = ((96, 11, 4, 0, True), (256, 5, 1, 0, True), (512, 3, 1, 1, False),
           (1024, 3, 1, 1, False), (1024, 3, 1, 1, True))


def overfeat(*, batch: int = PALEO_BATCH) -> dict:
    """The OverFeat fast model for a 231x231x3 input and 1000 classes."""
    s = Stack({"data": input_layer(batch, 231, 231, 3)}, head="data")
    c_in = 3
    for i, (c_out, k, stride, pad, pooled) in enumerate(_STAGES, start=1):
        s.add(f"conv{i}", conv, k, c_in, c_out, stride=stride, padding=(pad, pad))
        s.add(f"relu{i}", relu)
        if pooled:
            s.add(f"pool{i}", pool, 2, 2, padding="VALID")
        c_in = c_out
    for i, width in ((6, 3072), (7, 4096)):
        s.add(f"fc{i}", fc, width)
        s.add(f"relu{i}", relu)
        s.add(f"drop{i}", dropout, 0.5)
    s.add("fc8", fc, CLASSES)
    s.add("prob", softmax, CLASSES)
    return net("overfeat", s.layers, description="OverFeat fast model (Sermanet et al., ICLR "
               "2014, table 1)")
