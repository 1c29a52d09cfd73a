"""A net prepared for Paleo estimates: its graph, with profiles cached per batch and version.

Strong scaling re-profiles the net at ``ceil(B/N)`` for every worker count, and a sweep asks for
the same (net, batch) on many devices and software stacks; a :class:`PaleoNet` builds each
(batch, version) profile once. It belongs to its caller (no process-global cache).
"""
from __future__ import annotations

from pathlib import Path

from simulator.paleo.conv import VERSIONS
from simulator.paleo.profile import PaleoProfile, build_profile
from simulator.errors import SpecError
from workloads import load_net
from workloads.graph import LayerGraph


class PaleoNet:
    """A :class:`~workloads.graph.LayerGraph` plus its cached :class:`PaleoProfile` per batch.

    Parameters
    ----------
    net : LayerGraph, str or path
        A graph, or a shipped net name or a file path for :func:`workloads.load_net`.
    unknown_layers : {"error", "free"}
        How a file's unknown layer types load: an error, or Paleo's free ``Generic`` layers.
    """

    def __init__(self, net: "LayerGraph | str | Path | PaleoNet", *,
                 unknown_layers: str = "error") -> None:
        if isinstance(net, PaleoNet):
            net = net.graph
        if not isinstance(net, LayerGraph):
            net = load_net(net, unknown_layers=unknown_layers)
        self.graph = net
        self._profiles: dict[tuple[int, str], PaleoProfile] = {}
        self._graphs: dict[int, LayerGraph] = {net.batch: net}

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def source(self) -> str:
        return self.graph.source

    def at_batch(self, batch: int) -> LayerGraph:
        """The graph re-inferred at ``batch`` (cached)."""
        if batch not in self._graphs:
            self._graphs[batch] = self.graph.with_batch(batch)
        return self._graphs[batch]

    def profile(self, batch: int, memory_term: str = "dec2016") -> PaleoProfile:
        """Paleo's terms at ``batch`` for the code version ``memory_term`` (cached)."""
        if memory_term not in VERSIONS:
            raise SpecError(f"memory_term must be one of {', '.join(VERSIONS)}",
                            field="memory_term", value=memory_term)
        key = (batch, memory_term)
        if key not in self._profiles:
            self._profiles[key] = build_profile(self.at_batch(batch), version=memory_term)
        return self._profiles[key]

    def __repr__(self) -> str:
        return f"PaleoNet({self.graph.name!r}, batch={self.graph.batch})"


def as_paleo_net(net: "LayerGraph | str | Path | PaleoNet") -> PaleoNet:
    """``net`` itself if it is a :class:`PaleoNet` (keeping its cache), else a new one."""
    return net if isinstance(net, PaleoNet) else PaleoNet(net)
