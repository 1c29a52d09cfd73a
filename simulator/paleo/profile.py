"""A net's Paleo work at one batch size, as flat arrays, timed on any device in one numpy pass.

Counting (which FLOPs and bytes each layer is charged) depends only on the net, the batch and
the code version; timing depends on the device and ``ppp_comp``. Keeping them apart lets a sweep
build a :class:`PaleoProfile` once per (net, batch) and time it on every device and software.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.paleo.conv import FLOAT_BYTES, VERSIONS
from simulator.paleo.layers import layer_terms, paleo_params
from simulator.paleo.placement import FetchTerm, fetch_terms
from simulator.paleo.timing import TimeMeasure, comp_ms, mem_ms
from workloads.graph import LayerGraph

PHASES = ("forward", "backward_data", "backward_filter")


@dataclass(frozen=True, eq=False)
class PaleoProfile:
    """Every FLOP and byte term Paleo charges one net at one batch size.

    ``flops[i]`` belongs to row ``flop_rows[i]`` and ``nbytes[j]`` to row ``byte_rows[j]``,
    where row ``3*layer + phase`` indexes :data:`PHASES` of ``layer_names[layer]``.
    ``layer_params`` is Paleo's parameter count per layer (conv, deconv and FC weights plus
    biases), ``model_parallel`` marks the copies inside ModelParallel blocks, and ``fetches``
    lists the remote fetches Paleo charges (:mod:`simulator.paleo.placement`).
    """

    net: str
    batch: int
    version: str
    layer_names: tuple[str, ...]
    layer_types: tuple[str, ...]
    flops: np.ndarray
    flop_rows: np.ndarray
    nbytes: np.ndarray
    byte_rows: np.ndarray
    layer_params: np.ndarray
    model_parallel: np.ndarray
    fetches: tuple[FetchTerm, ...]

    @property
    def params(self) -> int:
        """Paleo's parameter count of the whole net (every split included)."""
        return int(self.layer_params.sum())

    @property
    def params_bytes(self) -> int:
        """Paleo's ``params_in_bytes``: every parameter as float32."""
        return self.params * FLOAT_BYTES

    def phase_times(self, device, *, ppp_comp: float) -> tuple[np.ndarray, np.ndarray]:
        """Compute and memory ms per layer and phase, arrays of shape ``(layers, 3)``.

        ``device`` is a Paleo preset (``clock_mhz``, ``peak_gflops``,
        ``mem_bandwidth_gbps_label``); on-device memory time is divided by ``ppp_comp`` too.
        """
        rows = 3 * len(self.layer_names)
        comp = comp_ms(self.flops, peak_gflops=device.peak_gflops, clock_mhz=device.clock_mhz,
                       ppp=ppp_comp)
        comm = mem_ms(self.nbytes, bandwidth_label=device.mem_bandwidth_gbps_label,
                      clock_mhz=device.clock_mhz, ppp=ppp_comp)
        comp_rows = np.bincount(self.flop_rows, weights=np.atleast_1d(comp), minlength=rows)
        comm_rows = np.bincount(self.byte_rows, weights=np.atleast_1d(comm), minlength=rows)
        return comp_rows.reshape(-1, 3), comm_rows.reshape(-1, 3)

    def layer_measures(self, device, *, ppp_comp: float,
                       fetch: np.ndarray | None = None) -> "LayerMeasures":
        """Per-layer forward and backward compute and memory ms; ``fetch`` (ms per layer) is
        added to the memory part of both directions, as Paleo adds it to ``comm_time``."""
        comp, comm = self.phase_times(device, ppp_comp=ppp_comp)
        extra = np.zeros(len(self.layer_names)) if fetch is None else fetch
        return LayerMeasures(fwd_comp=comp[:, 0], fwd_comm=comm[:, 0] + extra,
                             bwd_comp=comp[:, 1] + comp[:, 2],
                             bwd_comm=comm[:, 1] + comm[:, 2] + extra)


@dataclass(frozen=True, eq=False)
class LayerMeasures:
    """Per-layer ms arrays: Paleo's forward and backward TimeMeasures, backward being the sum of
    backward-data and backward-filter (so the pipeline maximum is over their combined parts)."""

    fwd_comp: np.ndarray
    fwd_comm: np.ndarray
    bwd_comp: np.ndarray
    bwd_comm: np.ndarray

    def forward(self, use_pipeline: bool) -> np.ndarray:
        """Each layer's forward ms: the sum of its parts, or their maximum with a pipeline."""
        if use_pipeline:
            return np.maximum(self.fwd_comp, self.fwd_comm)
        return self.fwd_comp + self.fwd_comm

    def backward(self, use_pipeline: bool) -> np.ndarray:
        """Each layer's backward ms (data plus filter gradient), summed or maximised."""
        if use_pipeline:
            return np.maximum(self.bwd_comp, self.bwd_comm)
        return self.bwd_comp + self.bwd_comm


def build_profile(graph: LayerGraph, *, version: str = "dec2016") -> PaleoProfile:
    """Collect Paleo's terms for every layer of ``graph`` at ``graph.batch``."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    flops, flop_rows, nbytes, byte_rows = [], [], [], []
    for i, layer in enumerate(graph.layers):
        for p, terms in enumerate(layer_terms(graph, layer, version=version)):
            flops.extend(terms.flops)
            flop_rows.extend([3 * i + p] * len(terms.flops))
            nbytes.extend(terms.bytes)
            byte_rows.extend([3 * i + p] * len(terms.bytes))
    return PaleoProfile(
        net=graph.name, batch=graph.batch, version=version,
        layer_names=tuple(layer.name for layer in graph.layers),
        layer_types=tuple(layer.type for layer in graph.layers),
        flops=np.asarray(flops, dtype=float), flop_rows=np.asarray(flop_rows, dtype=np.intp),
        nbytes=np.asarray(nbytes, dtype=float), byte_rows=np.asarray(byte_rows, dtype=np.intp),
        layer_params=np.asarray([paleo_params(layer) for layer in graph.layers], dtype=np.int64),
        model_parallel=np.asarray([layer.split is not None for layer in graph.layers], dtype=bool),
        fetches=fetch_terms(graph))


def update_time(params: int, device) -> TimeMeasure:
    """Paleo's weight update (``profile_apply_updates``, section 2.5), always at PPP 1.

    ``2*params`` FLOPs and ``3*|W|`` bytes (read weights, read update, write weights); Paleo
    builds default options here, so the user's ``ppp_comp`` is ignored.
    """
    if params == 0:
        return TimeMeasure()
    comp = comp_ms(2.0 * params, peak_gflops=device.peak_gflops, clock_mhz=device.clock_mhz,
                   ppp=1.0)
    comm = mem_ms(3.0 * params * FLOAT_BYTES, bandwidth_label=device.mem_bandwidth_gbps_label,
                  clock_mhz=device.clock_mhz, ppp=1.0)
    return TimeMeasure(comp, comm)
