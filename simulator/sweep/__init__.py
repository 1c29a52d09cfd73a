"""Sweeps: run a grid of configurations and collect one row per point (``docs/SWEEPS.md``).

A :class:`SweepSpec` is a base configuration plus a grid of axes (dotted paths into the base);
:func:`run_sweep` validates every point, runs the unfinished ones in this process, in local
processes or on a Dask cluster, journals each finished row (so an interrupted sweep resumes where
it stopped), and returns a pandas table in grid order: the point's inputs, the engine's outputs,
``status`` (ok | infeasible | error), ``reason``, ``speedup``, ``scaling_efficiency`` and
``wall_s``.

>>> from simulator.sweep import SweepSpec, run_sweep
>>> spec = SweepSpec(base={"workload": {"net": "alexnet_owt", "batch": 8},
...                        "system": {"topology": "dgx2h"}, "strategy": {}},
...                  grid={"strategy.workers": [1, 2, 4]})
>>> table = run_sweep(spec, executor="serial")
>>> table["strategy.workers"].tolist(), table["status"].tolist()
([1, 2, 4], ['ok', 'ok', 'ok'])

Modules: :mod:`~simulator.sweep.spec` (the spec), :mod:`~simulator.sweep.engines` (what a
point runs), :mod:`~simulator.sweep.grid` (expansion, validation, point ids),
:mod:`~simulator.sweep.executors` (serial, process, dask), :mod:`~simulator.sweep.journal`
(resume), :mod:`~simulator.sweep.results` (the table and its files),
:mod:`~simulator.sweep.runner` (:func:`run_sweep`).
"""
from simulator.sweep.engines import ENGINES, get_engine
from simulator.sweep.executors import EXECUTORS, STATUSES
from simulator.sweep.grid import Point, SweepPlan, expand
from simulator.sweep.journal import JOURNAL
from simulator.sweep.runner import Progress, plan_sweep, run_sweep
from simulator.sweep.spec import SweepSpec, load_sweep, sweep_from_dict

__all__ = ["ENGINES", "EXECUTORS", "JOURNAL", "Point", "Progress", "STATUSES", "SweepPlan",
           "SweepSpec", "expand", "get_engine", "load_sweep", "plan_sweep", "run_sweep",
           "sweep_from_dict"]
