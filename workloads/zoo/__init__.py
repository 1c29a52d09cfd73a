"""The model zoo: builders that write paleosim net specs from the original papers.

Each builder returns a net spec as a plain ``dict`` in paleosim's net format
(``docs/NET_FORMAT.md``); ``experiments/make_nets.py`` writes every entry of :data:`NETS` to
``nets/<name>.json`` with :func:`to_json`, and ``tests/test_nets_shipped.py`` checks that the
shipped files still equal the builders' output. The papers, and the reference implementation
where the paper leaves a detail open, are cited in each module.

>>> from workloads import build_graph
>>> from workloads.zoo import build
>>> g = build_graph(build("resnet50", batch=1))
>>> g.total_params, g.forward_macs
(25557032, 4089184256)
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from simulator.errors import UnknownNameError
from workloads.zoo._layers import to_json
from workloads.zoo.alexnet import alexnet, alexnet_owt, alexnet_owt_gpu, alexnet_v2
from workloads.zoo.densenet import densenet, densenet121
from workloads.zoo.googlenet import googlenet
from workloads.zoo.inception import inception_v3
from workloads.zoo.nin import nin
from workloads.zoo.overfeat import overfeat
from workloads.zoo.resnet import resnet, resnet50, resnet101, resnet152
from workloads.zoo.vgg import vgg16

#: shipped net name -> builder; its keyword-only ``batch`` defaults to the batch the file carries
NETS: dict[str, Callable[..., dict]] = {
    "alexnet": alexnet,
    "alexnet_v2": alexnet_v2,
    "alexnet_owt": alexnet_owt,
    **{f"alexnet_owt_{k}gpu": partial(alexnet_owt_gpu, k) for k in (1, 2, 4, 8)},
    "vgg16": vgg16,
    "nin": nin,
    "overfeat": overfeat,
    "googlenet": googlenet,
    "inception_v3": inception_v3,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "densenet121": densenet121,
}


def names() -> tuple[str, ...]:
    """The names of the zoo's nets, sorted."""
    return tuple(sorted(NETS))


def build(name: str, *, batch: int | None = None) -> dict:
    """The spec of zoo net ``name`` (at ``batch`` if given, else its default batch)."""
    try:
        builder = NETS[name]
    except KeyError:
        raise UnknownNameError("zoo net", name, list(NETS)) from None
    return builder() if batch is None else builder(batch=batch)


__all__ = ["NETS", "build", "densenet", "names", "resnet", "to_json"]
