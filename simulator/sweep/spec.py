"""What a sweep is: a base configuration, a grid of axes over it, and the engine that runs a point.

A sweep spec is plain data (a YAML or JSON file, or a :class:`SweepSpec` built in Python)::

    name: resnet50_dp             # optional; default: the file's stem
    engine: simulate              # simulate (discrete-event) | paleo (Paleo's analytical estimate)
    seed: 0                       # passed to every simulation (ECMP hashing, jitter)
    baseline: true                # add workers = 1 to the workers axis if it lacks it
    base:                         # a simulation config (or a path to one), or the estimator's
      workload: {net: resnet50, batch: 32}        # arguments with engine: paleo
      system: {topology: "fat_tree(k=16, server='dgx_a100', servers={servers})",
               gpus_per_server: 8}
      strategy: {kind: data_parallel}
    grid:                         # dotted paths into the base -> the values to try
      strategy.workers: {from: 1, to: 64, times: 2}    # or a list; ranges as ParaDnn's grids
      strategy.algorithm: [ring, tree, hierarchical]
    zip:                          # optional: axes that vary together (equal lengths)
      - [workload.batch, strategy.accumulation]

The grid is the cartesian product of its axes in the order written, the first axis varying
slowest; the axes of one ``zip`` group count as one axis (at the place of the group's first axis)
whose i-th value sets every member to its i-th value. This module checks the spec's own shape;
:mod:`simulator.sweep.grid` expands the points and lets the engine validate every one of them
before anything runs. See ``docs/SWEEPS.md``.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from simulator.config import read_document
from simulator.errors import SpecError, UnknownNameError
from simulator.sweep.engines import ENGINES, get_engine
from workloads.paradnn.grid import expand_axis

SPEC_KEYS = ("name", "engine", "seed", "baseline", "base", "grid", "zip")


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A sweep: ``base`` configuration, ``grid`` of ``{dotted path: values}``, ``zip`` groups.

    Parameters
    ----------
    base : mapping
        For ``engine="simulate"`` a simulation config (sections ``workload``, ``system``,
        ``strategy``; see ``docs/CONFIG.md``); for ``engine="paleo"`` the keyword arguments of
        :func:`simulator.paleo.estimate` for one worker count (``net``, ``device``, ``network``,
        ``software`` ... ``workers``; see ``docs/SWEEPS.md``).
    grid : mapping of str to list
        Axis path (``"strategy.workers"``) to its values, in the order the axes should nest.
        A value list may also be a ``{from, to, times | step}`` integer range.
    zip : sequence of sequences of str
        Groups of grid axes that vary together instead of multiplying.
    engine : {"simulate", "paleo"}
    seed : int
        Seed of every simulation (part of each point's identity).
    baseline : bool
        If true and the workers axis (``strategy.workers``, or ``workers`` for the Paleo engine)
        is a grid axis outside any ``zip`` group that lacks 1, 1 is added to it so that every
        row has a 1-worker baseline for its speedup.
    name : str
    source : str
        Where the spec came from (a file path), for error messages.

    Examples
    --------
    >>> spec = SweepSpec(base={"workload": {"net": "alexnet_owt", "batch": 8},
    ...                        "system": {"topology": "dgx2h"},
    ...                        "strategy": {"kind": "data_parallel"}},
    ...                  grid={"strategy.workers": [2, 4], "strategy.algorithm": ["ring", "tree"]})
    >>> [len(v) for v in spec.grid.values()]
    [2, 2]
    """

    base: Mapping[str, Any]
    grid: Mapping[str, Any] = field(default_factory=dict)
    zip: tuple = ()
    engine: str = "simulate"
    seed: int = 0
    baseline: bool = True
    name: str = "sweep"
    source: str = "<sweep>"

    def __post_init__(self) -> None:
        src = self.source
        if not isinstance(self.source, str):
            raise SpecError("source must be a string", field="source", value=self.source)
        if self.engine not in ENGINES:
            raise UnknownNameError("sweep engine", str(self.engine), list(ENGINES), source=src,
                                   field="engine")
        if not isinstance(self.name, str) or not self.name:
            raise SpecError("must be a non-empty string", source=src, field="name",
                            value=self.name)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError("must be an integer >= 0", source=src, field="seed", value=self.seed)
        if not isinstance(self.baseline, bool):
            raise SpecError("must be true or false", source=src, field="baseline",
                            value=self.baseline)
        if not isinstance(self.base, Mapping):
            raise SpecError("must be a mapping (a configuration)", source=src, field="base",
                            value=type(self.base).__name__)
        object.__setattr__(self, "base", MappingProxyType(copy.deepcopy(dict(self.base))))
        object.__setattr__(self, "grid", MappingProxyType(_check_grid(self.grid, src)))
        object.__setattr__(self, "zip", _check_zip(self.zip, self.grid, src))

    @property
    def workers_path(self) -> str:
        """The axis path of the worker count for this spec's engine."""
        return get_engine(self.engine).workers_path

    def groups(self) -> tuple[tuple[str, ...], ...]:
        """The grid's axes grouped as they vary: a zip group together, any other axis alone,
        in the order of each group's first axis in ``grid``."""
        out: list[tuple[str, ...]] = []
        seen: set[str] = set()
        for path in self.grid:
            if path in seen:
                continue
            group = next((g for g in self.zip if path in g), (path,))
            out.append(tuple(group))
            seen.update(group)
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (base inlined, ranges expanded), as ``spec.resolved.json``."""
        return {"name": self.name, "engine": self.engine, "seed": self.seed,
                "baseline": self.baseline, "base": copy.deepcopy(dict(self.base)),
                "grid": {k: list(v) for k, v in self.grid.items()},
                "zip": [list(g) for g in self.zip]}


def _check_grid(grid: Any, source: str) -> dict[str, tuple]:
    if not isinstance(grid, Mapping):
        raise SpecError("must be a mapping of dotted path to a list of values", source=source,
                        field="grid", value=type(grid).__name__)
    out: dict[str, tuple] = {}
    for path, values in grid.items():
        where = f"grid.{path}"
        if (not isinstance(path, str) or not path
                or any(not part for part in path.split("."))):
            raise SpecError("an axis is a dotted path into the base, e.g. strategy.workers",
                            source=source, field="grid", value=path)
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple, Mapping)):
            raise SpecError("must be a list of values or a {from, to, times|step} range",
                            source=source, field=where, value=values)
        expanded = (expand_axis(values, source=source, field=where)
                    if isinstance(values, Mapping) else tuple(values))
        if not expanded:
            raise SpecError("an axis needs at least one value", source=source, field=where,
                            value=list(expanded))
        keys = [json.dumps(v, sort_keys=True, default=str) for v in expanded]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise SpecError("values must be distinct", source=source, field=where,
                            value=json.loads(duplicates[0]))
        out[path] = tuple(copy.deepcopy(list(expanded)))
    for path in out:
        for other in out:
            if other != path and other.startswith(path + "."):
                raise SpecError(f"axis overlaps axis {other!r}", source=source,
                                field=f"grid.{path}")
    return out


def _check_zip(groups: Any, grid: Mapping[str, tuple], source: str) -> tuple:
    if groups is None:
        return ()
    if isinstance(groups, (str, bytes, Mapping)) or not isinstance(groups, (list, tuple)):
        raise SpecError("must be a list of lists of grid axes", source=source, field="zip",
                        value=groups)
    out = []
    seen: set[str] = set()
    for i, group in enumerate(groups):
        where = f"zip[{i}]"
        if (isinstance(group, (str, bytes)) or not isinstance(group, (list, tuple))
                or len(group) < 2):
            raise SpecError("a zip group lists two or more grid axes", source=source,
                            field=where, value=group)
        for path in group:
            if path not in grid:
                raise SpecError("not a grid axis", source=source, field=where, value=path)
            if path in seen:
                raise SpecError("an axis can be in one zip group only", source=source,
                                field=where, value=path)
            seen.add(path)
        lengths = {path: len(grid[path]) for path in group}
        if len(set(lengths.values())) > 1:
            raise SpecError("axes zipped together need the same number of values",
                            source=source, field=where, value=lengths)
        out.append(tuple(group))
    return tuple(out)


def sweep_from_dict(data: Any, *, source: str = "<sweep>",
                    root: str | Path | None = None) -> SweepSpec:
    """A :class:`SweepSpec` from parsed YAML/JSON.

    ``base`` may be a path to a config file, read relative to ``root`` (the spec's folder).
    """
    if not isinstance(data, Mapping):
        raise SpecError("a sweep spec must be a mapping with base and grid", source=source,
                        value=type(data).__name__)
    for key in data:
        if key not in SPEC_KEYS:
            raise UnknownNameError("sweep spec key", str(key), SPEC_KEYS, source=source)
    if "base" not in data:
        raise SpecError("missing the base configuration", source=source, field="base")
    base = data["base"]
    if isinstance(base, str):
        path = Path(base)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        if not path.is_file():
            raise SpecError("no such config file", source=source, field="base", value=base)
        base = read_document(path)
    stem = Path(source).stem if source != "<sweep>" else "sweep"
    kwargs = {k: data[k] for k in ("engine", "seed", "baseline", "grid") if k in data}
    if data.get("grid") is None:
        kwargs["grid"] = {}
    return SweepSpec(base=base, zip=data.get("zip") or (), name=data.get("name", stem),
                     source=source, **kwargs)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep spec file (``.json`` as JSON, anything else as YAML)."""
    return sweep_from_dict(read_document(path), source=str(path), root=Path(path).parent)
