"""AlexNet and its descendants.

- :func:`alexnet`: Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep
  Convolutional Neural Networks", NIPS 2012, as BVLC Caffe's ``bvlc_alexnet`` deploy net defines it:
  a 227x227 input, LRN after conv1 and conv2 (before pooling), conv2/4/5 split into two groups (the
  paper's two GPU towers, section 3.2 and figure 2), 3x3/2 overlapping max pooling (section 3.4)
  in Caffe's ceil mode, a bias on every layer. 60,965,224 parameters.
- :func:`alexnet_v2`: TF-slim's ``alexnet_v2``, which Paleo (Qi et al., ICLR 2017) used: 224x224
  input, conv1 11x11/4 VALID (224 -> 54), 64-192-384-384-256 filters, fully connected layers
  written as convolutions (fc6 a 5x5 VALID convolution over pool5's 5x5 map). 50,303,912
  parameters, biases included.
- :func:`alexnet_owt`: the one-tower network of Krizhevsky, "One weird trick for parallelizing
  convolutional neural networks", arXiv:1404.5997, 2014: 64-192-384-256-256 filters. 49,566,504
  parameters, biases included.
- :func:`alexnet_owt_gpu`: the same net with fc6 and fc7 split over K workers the way the paper's
  model parallelism does it (section 4: each worker computes 1/K of a fully connected layer's
  outputs, then all workers exchange their slices), written in Paleo's ``ModelParallel`` form:
  ``fc6@s`` -> ``dropout6@s`` -> ``concat6@s`` (every worker gathers all slices) -> ``fc7@s`` ->
  ``dropout7@s``, then ``concat7`` of all slices and fc8 on one worker.

The TF-slim/Paleo-derived nets keep Paleo's fused ``activation_fn: relu`` on convolutions, so that
Paleo's estimator reads them as it read its own files; the Caffe net has separate ReLU layers.
"""
from __future__ import annotations

from workloads.zoo._layers import (Stack, concat, conv, dropout, fc, input_layer, lrn,
                                   model_parallel, net, pool, relu, softmax)

PALEO_BATCH = 128  # the batch of Paleo's AlexNet files
CLASSES = 1000

# BVLC alexnet deploy.prototxt: (name, kernel, C_out, stride, pad, groups) of conv1..conv5
_BVLC_CONVS = (("conv1", 11, 96, 4, 0, 1), ("conv2", 5, 256, 1, 2, 2), ("conv3", 3, 384, 1, 1, 1),
               ("conv4", 3, 384, 1, 1, 2), ("conv5", 3, 256, 1, 1, 2))


def alexnet(*, batch: int = PALEO_BATCH) -> dict:
    """BVLC Caffe AlexNet (Krizhevsky et al. 2012): 227x227x3 -> 1000 classes.

    LRN as BVLC's deploy net: local size 5, alpha 1e-4, beta 0.75 and Caffe's default k = 1 (the
    paper's section 3.3 has k = 2; the cost is the same). Feature maps: 55 -> pool 27 -> 27 ->
    pool 13 -> 13 -> 13 -> 13 -> pool 6, then fc6 on 6x6x256 = 9216 inputs.
    """
    s = Stack({"data": input_layer(batch, 227, 227, 3)}, head="data")
    c_in = 3
    for name, k, c_out, stride, pad, groups in _BVLC_CONVS:
        i = name[-1]
        s.add(name, conv, k, c_in, c_out, stride=stride, padding=(pad, pad), groups=groups)
        s.add(f"relu{i}", relu)
        if i in "12":
            s.add(f"norm{i}", lrn, size=5, alpha=1e-4, beta=0.75, k=1.0)
        if i in "125":
            s.add(f"pool{i}", pool, 3, 2, padding=(0, 0), ceil_mode=True)
        c_in = c_out
    for i, width in ((6, 4096), (7, 4096)):
        s.add(f"fc{i}", fc, width)
        s.add(f"relu{i}", relu)
        s.add(f"drop{i}", dropout, 0.5)
    s.add("fc8", fc, CLASSES)
    s.add("prob", softmax, CLASSES)
    return net("alexnet", s.layers, description="AlexNet (Krizhevsky et al., NIPS 2012) as BVLC "
               "Caffe's bvlc_alexnet deploy net: 227x227, LRN, conv2/4/5 in 2 groups")


def _slim_features(filters: tuple[int, int, int, int, int], batch: int) -> Stack:
    """conv1-pool5 of TF-slim's alexnet_v2 with the given filter counts (224 -> 54 -> 26 -> 12 ->
    5)."""
    s = Stack({"data": input_layer(batch, 224, 224, 3)}, head="data")
    s.add("conv1", conv, 11, 3, filters[0], stride=4, padding="VALID", activation_fn="relu")
    s.add("pool1", pool, 3, 2, padding="VALID")
    s.add("conv2", conv, 5, filters[0], filters[1], activation_fn="relu")
    s.add("pool2", pool, 3, 2, padding="VALID")
    s.add("conv3", conv, 3, filters[1], filters[2], activation_fn="relu")
    s.add("conv4", conv, 3, filters[2], filters[3], activation_fn="relu")
    s.add("conv5", conv, 3, filters[3], filters[4], activation_fn="relu")
    s.add("pool5", pool, 3, 2, padding="VALID")
    return s


def _slim_classifier(s: Stack, c_in: int) -> None:
    """fc6-fc8 as convolutions (TF-slim), dropout keep 0.5, softmax."""
    s.add("fc6", conv, 5, c_in, 4096, padding="VALID", activation_fn="relu")
    s.add("dropout6", dropout, 0.5)
    s.add("fc7", conv, 1, 4096, 4096, activation_fn="relu")
    s.add("dropout7", dropout, 0.5)
    s.add("fc8", conv, 1, 4096, CLASSES)
    s.add("softmax", softmax, CLASSES)


def alexnet_v2(*, batch: int = PALEO_BATCH) -> dict:
    """TF-slim AlexNet v2 (64-192-384-384-256 filters, fully connected layers as convolutions)."""
    s = _slim_features((64, 192, 384, 384, 256), batch)
    _slim_classifier(s, 256)
    return net("alexnet_v2", s.layers, description="TF-slim AlexNet v2 as Paleo (Qi et al., ICLR "
               "2017) used it: 224x224, fully connected layers as convolutions")


OWT_FILTERS = (64, 192, 384, 256, 256)  # Krizhevsky 2014, the one-column network


def alexnet_owt(*, batch: int = PALEO_BATCH) -> dict:
    """One-tower AlexNet of "one weird trick" (Krizhevsky 2014), on one worker."""
    s = _slim_features(OWT_FILTERS, batch)
    _slim_classifier(s, OWT_FILTERS[-1])
    return net("alexnet_owt", s.layers, description="One-tower AlexNet of Krizhevsky, \"One weird "
               "trick for parallelizing CNNs\" (2014): conv 64-192-384-256-256")


def alexnet_owt_gpu(workers: int, *, batch: int = PALEO_BATCH) -> dict:
    """One-tower AlexNet with fc6 and fc7 model-parallel over ``workers`` (Krizhevsky 2014, sec. 4).

    Each copy ``s`` of the ``parallel_fc67`` block computes ``4096/workers`` outputs of fc6 and of
    fc7; ``concat6@s`` gathers every copy's fc6 slice before fc7, and ``concat7`` (outside the
    block) gathers the fc7 slices for fc8. The parameters equal those of :func:`alexnet_owt`.
    """
    if not isinstance(workers, int) or workers < 1 or 4096 % workers:
        raise ValueError(f"workers must be a positive divisor of 4096, got {workers!r}")
    s = _slim_features(OWT_FILTERS, batch)
    c_in = OWT_FILTERS[-1]
    s.layers["parallel_fc67"] = model_parallel({
        "fc6": conv([], 5, c_in, 4096, padding="VALID", activation_fn="relu"),
        "dropout6": dropout(["fc6@self"], 0.5),
        "concat6": concat(["dropout6@all"]),
        "fc7": conv(["concat6@self"], 1, 4096, 4096, activation_fn="relu"),
        "dropout7": dropout(["fc7@self"], 0.5),
    }, workers, parents=[s.head])
    s.layers["concat7"] = concat(["parallel_fc67/dropout7@all"])
    s.head = "concat7"
    s.add("fc8", conv, 1, 4096, CLASSES)
    s.add("softmax", softmax, CLASSES)
    return net(f"alexnet_owt_{workers}gpu", s.layers, description=(
        f"One-tower AlexNet (Krizhevsky 2014) with fc6-fc7 model-parallel over {workers} "
        f"worker{'s' if workers > 1 else ''} (Paleo's ModelParallel form)"))
