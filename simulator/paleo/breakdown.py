"""Per-layer Paleo times: what Paleo's ``profile`` command estimates for each layer ("ours").

One row per layer, in topological order, with the forward, backward-data and backward-filter
times in ms on one device at one ``ppp_comp``, each split into compute and memory parts. Remote
fetches (ModelParallel nets) are not included: they depend on the parallel mode.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from simulator.catalog import PaleoDevicePreset
from simulator.paleo.estimate import resolve_device
from simulator.paleo.net import PaleoNet, as_paleo_net
from simulator.paleo.profile import PHASES
from simulator.paleo.software import PPP
from workloads.graph import LayerGraph


def layer_times(net: LayerGraph | PaleoNet | str | Path, *, device: str | PaleoDevicePreset,
                ppp_comp: float = 1.0, batch: int | None = None,
                memory_term: str = "dec2016") -> pd.DataFrame:
    """Paleo's per-layer ms on ``device`` at ``ppp_comp`` (GEMM-only convolutions).

    Columns: ``layer``, ``type``, then for each phase in ``forward``, ``backward_data`` and
    ``backward_filter`` the total ``<phase>_ms`` and its ``<phase>_comp_ms`` and
    ``<phase>_mem_ms`` parts, and ``backward_ms`` (data plus filter).

    Examples
    --------
    >>> layer_times("alex_v2.json", device="TITAN_X").set_index("layer").loc[
    ...     "fc6", ["forward_ms", "backward_data_ms"]]                     # doctest: +SKIP
    """
    ppp = PPP(comp=ppp_comp, comm=1.0)
    pnet = as_paleo_net(net)
    prof = pnet.profile(pnet.graph.batch if batch is None else batch, memory_term)
    comp, mem = prof.phase_times(resolve_device(device), ppp_comp=ppp.comp)
    frame = pd.DataFrame({"layer": prof.layer_names, "type": prof.layer_types})
    for i, phase in enumerate(PHASES):
        frame[f"{phase}_ms"] = comp[:, i] + mem[:, i]
        frame[f"{phase}_comp_ms"] = comp[:, i]
        frame[f"{phase}_mem_ms"] = mem[:, i]
    frame["backward_ms"] = frame["backward_data_ms"] + frame["backward_filter_ms"]
    return frame
