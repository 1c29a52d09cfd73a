"""The Paleo-compatible analytical estimator.

Reproduces the estimates of Paleo (Qi, Sparks and Talwalkar, "Paleo: A Performance Model for
Deep Neural Networks", ICLR 2017), bugs included, from the specification in
``shared/docs/PALEO_COST_MODEL.md``: the GEMM-only convolution cost, data-parallel weak and
strong scaling with four communication schemes, and the model-parallel and hybrid modes. It
matches every GEMM-only prediction of Paleo's web demo (``precompute.json``); see
``docs/PALEO_COMPAT.md`` for what it reproduces and what paleosim's own cost model fixes.

Paleo's units (ms; device memory "GB/s" used as GiB/s) live only inside this package; tables
have ``*_ms`` columns, and :func:`to_seconds` converts them.

Modules: :mod:`~simulator.paleo.timing` (time primitives), :mod:`~simulator.paleo.conv` and
:mod:`~simulator.paleo.layers` (per-layer work), :mod:`~simulator.paleo.profile` (a net's work
at one batch), :mod:`~simulator.paleo.comm` (schemes), :mod:`~simulator.paleo.placement`
(remote fetches, critical path), :mod:`~simulator.paleo.data` and :mod:`~simulator.paleo.model`
(modes), :mod:`~simulator.paleo.software` (PPP table), :mod:`~simulator.paleo.estimate`.
"""
from simulator.paleo.breakdown import layer_times
from simulator.paleo.comm import SCHEMES, comm_times_ms
from simulator.paleo.conv import VERSIONS as MEMORY_TERMS
from simulator.paleo.data import DATA_COLUMNS, SCALINGS
from simulator.paleo.estimate import (DEFAULT_WORKERS, PARALLEL_MODES, estimate, iteration_ms,
                                      to_seconds)
from simulator.paleo.model import HYBRID_COLUMNS, MODEL_COLUMNS
from simulator.paleo.net import PaleoNet
from simulator.paleo.placement import PaleoCrashError, critical_path
from simulator.paleo.profile import PaleoProfile, build_profile, update_time
from simulator.paleo.software import PPP, SOFTWARE_PPP, resolve_ppp, software_ppp

__all__ = [
    "DATA_COLUMNS", "DEFAULT_WORKERS", "HYBRID_COLUMNS", "MEMORY_TERMS", "MODEL_COLUMNS",
    "PARALLEL_MODES", "PPP", "PaleoCrashError", "PaleoNet", "PaleoProfile", "SCALINGS",
    "SCHEMES", "SOFTWARE_PPP", "build_profile", "comm_times_ms", "critical_path", "estimate",
    "iteration_ms", "layer_times", "resolve_ppp", "software_ppp", "to_seconds", "update_time",
]
