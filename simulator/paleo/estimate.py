"""The front door of the Paleo-compatible estimator: :func:`estimate`.

It resolves names (device, network, software), checks the arguments, and hands over to the mode
(:mod:`simulator.paleo.data`, :mod:`simulator.paleo.model`). The result is a pandas table in
Paleo's units (ms columns named ``*_ms``); :func:`to_seconds` converts one to SI seconds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from simulator.catalog import (PaleoDevicePreset, PaleoNetworkPreset, get_paleo_device,
                               get_paleo_network)
from simulator.errors import SpecError, UnknownNameError
from simulator.paleo.comm import SCHEMES
from simulator.paleo.conv import VERSIONS
from simulator.paleo.data import SCALINGS, data_parallel
from simulator.paleo.model import hybrid_parallel, model_parallel
from simulator.paleo.net import PaleoNet, as_paleo_net
from simulator.paleo.software import resolve_ppp
from workloads.graph import LayerGraph

PARALLEL_MODES = ("data", "model", "hybrid")
DEFAULT_WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)  # Paleo's ``--num_workers`` default


def resolve_device(device: str | PaleoDevicePreset) -> PaleoDevicePreset:
    """A Paleo device preset by name (case-insensitive), or the preset itself."""
    return device if isinstance(device, PaleoDevicePreset) else get_paleo_device(device)


def resolve_network(network: str | PaleoNetworkPreset) -> PaleoNetworkPreset:
    """A Paleo network preset by name (case-insensitive), or the preset itself."""
    return network if isinstance(network, PaleoNetworkPreset) else get_paleo_network(network)


def check_workers(workers: Sequence[int]) -> tuple[int, ...]:
    """Worker counts as a tuple: a non-empty list of distinct positive integers."""
    if isinstance(workers, (str, bytes)) or not hasattr(workers, "__iter__"):
        raise SpecError("workers must be a list of positive integers", field="workers",
                        value=workers)
    out = tuple(workers)
    if not out:
        raise SpecError("workers must list at least one worker count", field="workers",
                        value=list(out))
    for n in out:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError("every worker count must be a positive integer", field="workers",
                            value=n)
    if len(set(out)) != len(out):
        raise SpecError("worker counts must be distinct", field="workers", value=list(out))
    return out


def estimate(net: LayerGraph | PaleoNet | str | Path, *, device: str | PaleoDevicePreset,
             network: str | PaleoNetworkPreset | None = None, ppp_comp: float | None = None,
             ppp_comm: float | None = None, software: str | None = None,
             batch: int | None = None, scaling: str | None = None,
             workers: Sequence[int] | None = None, memory_term: str = "dec2016",
             use_pipeline: bool = False, parallel: str = "data",
             hybrid_workers: int = 1) -> pd.DataFrame:
    """Paleo's estimate of one training iteration, as Paleo's ``simulate`` computes it.

    Parameters
    ----------
    net : LayerGraph, PaleoNet, str or path
        The model; pass a :class:`PaleoNet` to reuse its cached profiles across calls.
    device, network : str or preset
        Paleo presets (``simulator.catalog.get_paleo_device`` / ``get_paleo_network``).
        ``network`` is required except for ``parallel="model"``.
    ppp_comp, ppp_comm : float, optional
        Platform percent of peak, in (0, 1]; a missing one is 1 (Paleo's default).
    software : str, optional
        A software stack whose PPP pair to use instead (``caffe``, ``cuda-convnet2``, ``mxnet``,
        ``tensorflow``); exclusive with ``ppp_comp``/``ppp_comm``.
    batch : int, optional
        Batch per worker (weak scaling, model and hybrid modes) or global batch (strong
        scaling); default: the batch written in the net.
    scaling : {"weak", "strong"}, optional
        Data mode only (default ``"weak"``).
    workers : sequence of int, optional
        Data mode only (default 1, 2, 4, ..., 128).
    memory_term : {"dec2016", "2017"}
        Paleo's code version: ``"dec2016"`` (unpadded input in a convolution's memory term;
        what Paleo's published predictions use) or ``"2017"`` (padded input); see
        :mod:`simulator.paleo.conv`.
    use_pipeline : bool
        Paleo's ``--use_pipeline``: each layer costs max(compute, memory) instead of the sum.
    parallel : {"data", "model", "hybrid"}
    hybrid_workers : int
        K of the hybrid mode.

    Returns
    -------
    pandas.DataFrame
        data: one row per worker count (:data:`simulator.paleo.data.DATA_COLUMNS`); model:
        rows ``lowerbound`` and ``upperbound``; hybrid: rows ``data``, ``model`` and ``total``.

    Examples
    --------
    >>> from simulator.paleo import estimate
    >>> df = estimate("/path/to/nin.json", device="K20X", network="infiniband",
    ...               software="caffe", batch=1024, scaling="strong")   # doctest: +SKIP
    """
    if parallel not in PARALLEL_MODES:
        raise UnknownNameError("parallel mode", parallel, PARALLEL_MODES, field="parallel")
    if memory_term not in VERSIONS:
        raise UnknownNameError("memory term", memory_term, VERSIONS, field="memory_term")
    dev = resolve_device(device)
    net_ = as_paleo_net(net)
    ppp = resolve_ppp(software=software, ppp_comp=ppp_comp, ppp_comm=ppp_comm)
    b = net_.graph.batch if batch is None else batch
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise SpecError("the batch size must be a positive integer", field="batch", value=b)
    if parallel != "data":
        for name, value in (("scaling", scaling), ("workers", workers)):
            if value is not None:
                raise SpecError(f"{name} applies to data parallelism only; {parallel} mode "
                                + ("runs hybrid_workers workers" if parallel == "hybrid"
                                   else "has no worker count"), field=name, value=value)
    if parallel == "model":
        return model_parallel(net_, device=dev, ppp=ppp, batch=b, memory_term=memory_term)
    if network is None:
        raise SpecError(f"{parallel} parallelism needs a network preset", field="network",
                        value=None)
    nw = resolve_network(network)
    if parallel == "hybrid":
        if isinstance(hybrid_workers, bool) or not isinstance(hybrid_workers, int) \
                or hybrid_workers < 1:
            raise SpecError("hybrid_workers must be a positive integer", field="hybrid_workers",
                            value=hybrid_workers)
        return hybrid_parallel(net_, device=dev, network=nw, ppp=ppp, batch=b,
                               hybrid_workers=hybrid_workers, memory_term=memory_term,
                               use_pipeline=use_pipeline)
    scaling = "weak" if scaling is None else scaling
    if scaling not in SCALINGS:
        raise UnknownNameError("scaling", scaling, SCALINGS, field="scaling")
    counts = check_workers(DEFAULT_WORKERS if workers is None else workers)
    return data_parallel(net_, device=dev, network=nw, ppp=ppp, batch=b, scaling=scaling,
                         workers=counts, memory_term=memory_term, use_pipeline=use_pipeline)


def iteration_ms(frame: pd.DataFrame, scheme: str) -> pd.Series:
    """Iteration time in ms of a data-mode table with ``scheme``: ``time_comp_ms + scheme``."""
    if scheme not in SCHEMES:
        raise UnknownNameError("communication scheme", scheme, SCHEMES)
    return frame["time_comp_ms"] + frame[f"{scheme}_ms"]


def to_seconds(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every ``*_ms`` column in seconds, renamed ``*_s``."""
    out = frame.copy()
    renames = {c: c[:-3] + "_s" for c in frame.columns if c.endswith("_ms")}
    for c in renames:
        out[c] = out[c] / 1e3
    return out.rename(columns=renames)
