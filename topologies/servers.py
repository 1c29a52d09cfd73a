"""Build one server's inside: CPU, PCIe switches, GPUs, NVLink or NVSwitch, NICs.

Node labels (``s`` is the server id, an ``int``): ``("cpu", s)``, ``("pcie", s, k)``,
``("gpu", s, i)``, ``("nvswitch", s, 0)``, ``("nic", s, j)``. Every node gets ``server=s`` and
``index`` (its local number). Rules:

- GPUs sit behind PCIe switches, ``gpus_per_pcie_switch`` each, and the switches hang off the CPU
  (the root complex); with ``gpus_per_pcie_switch = 0`` GPUs sit on the CPU directly.
- NICs spread evenly over the PCIe switches when there are at least as many NICs as switches (DGX
  servers pair GPUs and NICs under one switch); otherwise they sit on the CPU.
- ``nvlink``: one edge per GPU pair in ``nvlink_pairs`` with ``links`` x the NVLink bandwidth.
  ``nvswitch``: every GPU has one edge into a single non-blocking switch node whose bandwidth is
  ``nvlinks_per_gpu`` x the NVLink bandwidth (the NVSwitch chips are one crossbar here); a switch
  that can reduce and multicast (NVLink SHARP) carries ``nvls_efficiency``.
- Every GPU of a server with NICs carries ``nic``: the label of the NIC it uses
  (``ServerSpec.gpu_nics``, by default its nearest, see
  :func:`~topologies.catalog.default_gpu_nics`). Traffic from a GPU to another server leaves
  through that NIC (NCCL's GPU-NIC affinity), unless a collective's plan names another. The CPU
  of a server with NICs uses NIC 0 (a host's only one).
"""
from __future__ import annotations

import networkx as nx

from topologies.catalog import LinkSpec, ServerSpec
from topologies.schema import add_link


def _link(graph: nx.Graph, u, v, spec: LinkSpec, factor: float = 1.0) -> None:
    add_link(graph, u, v, bandwidth_Bps=spec.payload_Bps * factor, latency_s=spec.latency_s,
             kind=spec.kind)


def add_server(graph: nx.Graph, s: int, spec: ServerSpec) -> list:
    """Add server ``s`` of type ``spec`` to ``graph``; return its fabric ports in order.

    The ports are the NICs, or the GPUs for a server without NICs (direct-connect chips).
    """
    pcie = spec.link(spec.pcie)
    cpu = ("cpu", s)
    graph.add_node(cpu, role="cpu", device="CPU", server=s, index=0)
    n_switches = 0
    if spec.gpus and spec.gpus_per_pcie_switch:
        n_switches = -(-spec.gpus // spec.gpus_per_pcie_switch)
    switches = [("pcie", s, k) for k in range(n_switches)]
    for k, sw in enumerate(switches):
        graph.add_node(sw, role="pcie_switch", server=s, index=k)
        _link(graph, sw, cpu, pcie)
    gpus = [("gpu", s, i) for i in range(spec.gpus)]
    for i, gpu in enumerate(gpus):
        graph.add_node(gpu, role="gpu", device=spec.gpu, server=s, index=i)
        if not spec.gpudirect_rdma:
            graph.nodes[gpu]["gpudirect_rdma"] = False
        _link(graph, gpu, switches[i // spec.gpus_per_pcie_switch] if switches else cpu, pcie)
    nics = [("nic", s, j) for j in range(spec.nics)]
    for j, nic in enumerate(nics):
        graph.add_node(nic, role="nic", server=s, index=j)
        on_switch = switches and spec.nics >= n_switches
        _link(graph, nic, switches[j * n_switches // spec.nics] if on_switch else cpu, pcie)
    for i, gpu in enumerate(gpus):
        j = spec.nic_of_gpu(i)
        if j is not None:
            graph.nodes[gpu]["nic"] = nics[j]
    if nics:  # host traffic (a parameter server on the CPU, host staging) uses the first NIC
        graph.nodes[cpu]["nic"] = nics[0]
    if spec.gpu_interconnect == "nvlink":
        nvlink = spec.link(spec.nvlink)
        for i, j, count in spec.nvlink_pairs:
            _link(graph, gpus[i], gpus[j], nvlink, count)
    elif spec.gpu_interconnect == "nvswitch" and gpus:
        nvlink = spec.link(spec.nvlink)
        hub = ("nvswitch", s, 0)
        graph.add_node(hub, role="nvswitch", server=s, index=0)
        if spec.nvls_efficiency is not None:
            graph.nodes[hub]["nvls_efficiency"] = float(spec.nvls_efficiency)
        for gpu in gpus:
            _link(graph, gpu, hub, nvlink, spec.nvlinks_per_gpu)
    return nics if nics else gpus
