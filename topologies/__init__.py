"""paleosim: cluster topologies as networkx graphs, built the networkx way.

Schema (see ``docs/NETWORK.md`` for the full description)
---------------------------------------------------------
Nodes are tuples naming what they are:

=============================  =============  ============================================
label                          ``role``       notes
=============================  =============  ============================================
``("gpu", server, i)``         gpu            ``device``: a device-catalog name ("A100-80GB")
``("cpu", server)``            cpu            ``device="CPU"``; the PCIe root complex, and a
                                              parameter-server host
``("pcie", server, k)``        pcie_switch
``("nvswitch", server, 0)``    nvswitch       one non-blocking crossbar per server
``("nic", server, j)``         nic
``("switch", layer, j)``       switch         layer: tor, edge, agg, core, leaf, spine
``("switch", "rail", r, g)``   switch         rail-optimised leaf of rail r, group g
``("router", *coords)``        router         torus router; ``("router", group, r)`` in a dragonfly
=============================  =============  ============================================

Server nodes carry ``server`` (int) and ``index`` (local number). Edges are undirected, one per
full-duplex link, with ``bandwidth_Bps`` (bytes/s per direction), ``latency_s`` (one way) and ``kind``
(nvlink, pcie, ethernet, infiniband, torus, ici, link); a bundle of parallel links is one edge with
the summed bandwidth. Graph attributes: ``name``, ``servers``, ``gpus_per_server``, ``gpus``,
``cpu_hosts``, ``gpus_forward``.

Use :func:`get` to build a topology from a preset name, a builder call string or a file;
:func:`gpus` lists GPUs in rank order (server-major), :func:`servers` maps servers to their GPUs,
:func:`cpu_hosts` lists stand-alone parameter-server hosts; :func:`validate` checks any graph.
"""
from topologies.analysis import bisection_Bps, describe, diameter_hops
from topologies.catalog import LinkSpec, ServerSpec, links, presets, servers as server_types
from topologies.fabrics import (dragonfly, fat_tree, leaf_spine, rail_optimized, ring, server,
                                single_switch, torus)
from topologies.io import load, save
from topologies.registry import BUILDERS, build, get, names, table
from topologies.schema import (KINDS, ROLES, add_link, cpu_hosts, cpus, gpus, servers,
                               validate)

__all__ = [
    "BUILDERS", "KINDS", "LinkSpec", "ROLES", "ServerSpec", "add_link", "bisection_Bps", "build",
    "cpu_hosts", "cpus", "describe", "diameter_hops", "dragonfly", "fat_tree", "get", "gpus", "leaf_spine",
    "links", "load", "names", "presets", "rail_optimized", "ring", "save", "server",
    "server_types", "servers", "single_switch", "table", "torus", "validate",
]
