"""Paleo's per-layer costs as a cost model for the discrete-event simulator.

With it, the simulator charges each layer exactly what the Paleo-compatible estimator charges
(GEMM-only convolutions, Paleo's memory term and PPP, the update at PPP 1), so that on a case
where both are exact (no overlap, one link per worker, tree all-reduce) the two fidelities can be
compared number for number. Paleo's presets stand in for the catalog device: the catalog name
is mapped to Paleo's preset of the same GPU (``K80-board`` is Paleo's ``K80``).
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.catalog import get_paleo_device
from simulator.errors import SpecError
from simulator.paleo.conv import VERSIONS
from simulator.paleo.net import PaleoNet
from simulator.paleo.profile import update_time
from workloads.graph import LayerGraph

# catalog device name -> Paleo preset name, where they differ
CATALOG_TO_PALEO = {"TitanX": "TITAN_X", "K80-board": "K80"}
MS = 1e-3


@dataclass(frozen=True, kw_only=True)
class PaleoCostModel:
    """Per-layer seconds as Paleo computes them. Backward-data carries Paleo's whole backward
    (data plus filter gradient); backward-filter is then zero."""

    ppp_comp: float = 1.0
    memory_term: str = "dec2016"
    preset: str | None = None
    name: str = "paleo"

    def __post_init__(self) -> None:
        if not 0 < self.ppp_comp <= 1:
            raise SpecError("ppp_comp must be in (0, 1]", field="cost_model.ppp_comp",
                            value=self.ppp_comp)
        if self.memory_term not in VERSIONS:
            raise SpecError(f"memory_term must be one of {', '.join(VERSIONS)}",
                            field="cost_model.memory_term", value=self.memory_term)

    def paleo_device(self, device):
        name = self.preset or CATALOG_TO_PALEO.get(device.name, device.name)
        return get_paleo_device(name)

    def graph_costs(self, graph: LayerGraph, device, *, dtype: str = "fp32",
                    optimizer: str = "sgd"):
        """Forward, backward-data and backward-filter seconds per layer, and the update."""
        if dtype != "fp32":
            raise SpecError("Paleo's cost model is fp32 only", field="workload.dtype",
                            value=dtype)
        preset = self.paleo_device(device)
        prof = PaleoNet(graph).profile(graph.batch, self.memory_term)
        measures = prof.layer_measures(preset, ppp_comp=self.ppp_comp)
        fwd = tuple(float(t) * MS for t in measures.forward(False))
        bwd = tuple(float(t) * MS for t in measures.backward(False))
        zero = tuple(0.0 for _ in fwd)
        update_s = update_time(prof.params, preset).time_ms(False) * MS
        return fwd, bwd, zero, update_s

    def phase_time_s(self, layer, phase, device, *, dtype="fp32"):
        raise SpecError("the Paleo cost model prices whole nets (Paleo's backward depends on "
                        "a layer's parents); use graph_costs", field="cost_model", value=self.name)

    def update_time_s(self, params, device, *, dtype="fp32", optimizer="sgd"):
        return update_time(params, self.paleo_device(device)).time_ms(False) * MS


def paleo_cost_model(argument: str) -> PaleoCostModel:
    """``paleo:0.21`` (a PPP for computation), ``paleo:caffe`` (a software stack's PPP), with an
    optional memory term: ``paleo:tensorflow,2017``."""
    from simulator.paleo.software import software_ppp
    ppp_text, _, term = argument.partition(",")
    try:
        ppp_comp = float(ppp_text)
    except ValueError:
        ppp_comp = software_ppp(ppp_text).comp
    return PaleoCostModel(ppp_comp=ppp_comp, memory_term=term or "dec2016")
