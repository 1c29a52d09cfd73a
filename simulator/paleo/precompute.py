"""Compare the estimator with Paleo's published predictions (the web demo's ``precompute.json``).

``precompute.json`` maps ``model,device,network,software,batch,scaling,use_cudnn`` to
``labels`` (worker counts), ``times[s][i]`` (ms per iteration: compute plus scheme s) and
``series[s][i]`` (speedup), for s = OneToAll, TreeAllReduce, ButterflyAllReduce. The GEMM-only
entries (``use_cudnn=false``) follow from Paleo's formulas alone; the others depend on the
algorithms cuDNN v4 chose on the authors' GPU and are not compared.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd

from simulator.errors import SpecError
from simulator.paleo.data import data_parallel
from simulator.paleo.estimate import check_workers, resolve_device, resolve_network
from simulator.paleo.net import PaleoNet
from simulator.paleo.software import software_ppp

PRECOMPUTE_SCHEMES = ("OneToAll", "TreeAllReduce", "ButterflyAllReduce")
COMPARISON_COLUMNS = ("key", "model", "device", "network", "software", "batch", "scaling",
                      "workers", "scheme", "published_ms", "estimated_ms", "time_rel_err",
                      "published_speedup", "estimated_speedup", "speedup_abs_err",
                      "speedup_rel_err")


def read_precompute(path: str | Path) -> dict:
    """The parsed ``precompute.json``; a missing or malformed file is a :class:`SpecError`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno}",
                        source=str(path)) from None
    if not isinstance(data, dict):
        raise SpecError("the root must be an object keyed by configuration", source=str(path))
    return data


def compare_precompute(precompute: dict, nets: Callable[[str], PaleoNet], *,
                       memory_term: str = "dec2016", use_cudnn: str = "false") -> pd.DataFrame:
    """One row per (configuration, scheme, worker count) with Paleo's and our values.

    ``nets(model)`` returns the :class:`PaleoNet` of a model name (e.g. ``"nin"``); pass one
    that caches, so each net is profiled once per batch. Relative errors are
    ``|estimated - published| / published``. Paleo stored 3 decimals, so a speedup below 0.5
    cannot be compared to 0.1 %: check those against half a unit of the last decimal
    (``speedup_abs_err <= 0.0005``).
    """
    rows = []
    for key in sorted(precompute):
        model, device, network, software, batch, scaling, cudnn = key.split(",")
        if cudnn != use_cudnn:
            continue
        entry = precompute[key]
        workers = check_workers([int(n) for n in entry["labels"]])
        ppp = software_ppp(software)
        table = data_parallel(nets(model), device=resolve_device(device),
                              network=resolve_network(network), ppp=ppp, batch=int(batch),
                              scaling=scaling, workers=workers, memory_term=memory_term)
        for s, scheme in enumerate(PRECOMPUTE_SCHEMES):
            est_ms = table["time_comp_ms"] + table[f"{scheme}_ms"]
            est_speedup = table[f"speedup_{scheme}"]
            for i, n in enumerate(workers):
                pub_ms, pub_sp = entry["times"][s][i], entry["series"][s][i]
                rows.append((key, model, device, network, software, int(batch), scaling, n,
                             scheme, pub_ms, est_ms[i], abs(est_ms[i] - pub_ms) / pub_ms, pub_sp,
                             est_speedup[i], abs(est_speedup[i] - pub_sp),
                             abs(est_speedup[i] - pub_sp) / pub_sp))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
