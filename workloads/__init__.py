"""paleosim workloads: model graphs from Paleo-format nets, importers and generators.

``load_net(name_or_path, batch=...)`` returns a :class:`LayerGraph`: layers in topological order
with shapes, parameters and per-phase work (FLOPs, elements read and written).
"""
from workloads.graph import Layer, LayerGraph, build_graph
from workloads.ops import PHASES, Work, layer_types
from workloads.registry import load_net, net_path, resolve_net, shipped_nets
from workloads.spec import NetSpec, parse_net

__all__ = ["Layer", "LayerGraph", "NetSpec", "PHASES", "Work", "build_graph", "layer_types",
           "load_net", "net_path", "parse_net", "resolve_net", "shipped_nets"]
