"""Expand a sweep spec into its points, validating every one before anything runs.

Each point gets the values of its grid axes written into a copy of the base at their dotted
paths; the engine then normalises the result (defaults filled in) and checks the names it refers
to. The point's identity, ``point_id``, is the SHA-256 (first 16 hex digits) of the canonical
JSON of ``{"engine", "config"}`` (plus ``"seed"`` for engines that use one): it depends on what
is run, not on how the spec spells it or where the point sits in the grid, which is what lets a
rerun recognise finished points in the journal.
"""
from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from simulator.errors import SpecError
from simulator.sweep._plain import cell, digest
from simulator.sweep.engines import get_engine
from simulator.sweep.spec import SweepSpec


@dataclass(frozen=True)
class Point:
    """One configuration of a sweep.

    ``index`` is its place in the grid's order; ``coords`` its value index on each axis group;
    ``inputs`` the value of every grid axis (table cells); ``config`` the normalised
    configuration the engine runs; ``workers`` its worker count.
    """

    index: int
    point_id: str
    coords: tuple[int, ...]
    inputs: dict[str, Any]
    config: dict[str, Any]
    workers: int


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its points in grid order, and how its axes are grouped.

    ``workers_group`` is the index (in ``groups``) of the group holding the workers axis, or
    ``None`` when the worker count is not swept; ``added_baseline`` is true when worker count 1
    was added to the grid for speedups (``SweepSpec.baseline``).
    """

    spec: SweepSpec
    groups: tuple[tuple[str, ...], ...]
    points: tuple[Point, ...]
    workers_group: int | None
    added_baseline: bool

    @property
    def input_columns(self) -> list[str]:
        return [path for group in self.groups for path in group]


def expand(spec: SweepSpec) -> SweepPlan:
    """Every point of ``spec``, in grid order, each validated by the engine.

    Raises
    ------
    SpecError
        Naming the spec file and the field: ``grid.<axis>`` when a grid value is bad (the
        message says at which point), ``base.<field>`` when the base is.
    """
    engine = get_engine(spec.engine)
    grid = {path: list(values) for path, values in spec.grid.items()}
    workers_path = engine.workers_path
    zipped = {path for group in spec.zip for path in group}
    added = False
    if (spec.baseline and workers_path in grid and workers_path not in zipped
            and not any(_is_one(v) for v in grid[workers_path])):
        grid[workers_path] = [1] + grid[workers_path]
        added = True
    groups = spec.groups()
    workers_group = next((i for i, g in enumerate(groups) if workers_path in g), None)
    memo: set = set()
    seen: dict[str, dict[str, Any]] = {}
    points = []
    for index, coords in enumerate(itertools.product(*(range(len(grid[g[0]])) for g in groups))):
        config = copy.deepcopy(dict(spec.base))
        inputs: dict[str, Any] = {}
        for group, c in zip(groups, coords):
            for path in group:
                value = grid[path][c]
                _set_path(config, path, copy.deepcopy(value), spec.source)
                inputs[path] = cell(value)
        try:
            normalized = engine.normalize(config)
            engine.check(normalized, memo)
        except SpecError as exc:
            raise _attribute(exc, spec, inputs) from None
        identity = {"engine": engine.name, "config": normalized}
        if engine.uses_seed:
            identity["seed"] = spec.seed
        point_id = digest(identity)
        if point_id in seen:
            raise SpecError("two grid points are the same configuration", source=spec.source,
                            field="grid", value=[seen[point_id], inputs])
        seen[point_id] = inputs
        points.append(Point(index=index, point_id=point_id, coords=tuple(coords), inputs=inputs,
                            config=normalized, workers=engine.workers_of(normalized)))
    return SweepPlan(spec=spec, groups=groups, points=tuple(points),
                     workers_group=workers_group, added_baseline=added)


def _is_one(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 1


def _set_path(config: dict, path: str, value: Any, source: str) -> None:
    parts = path.split(".")
    node = config
    for depth, part in enumerate(parts[:-1]):
        if part not in node:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise SpecError(f"the base has a {type(node).__name__} at "
                            f"{'.'.join(parts[:depth + 1])!r}, not a mapping", source=source,
                            field=f"grid.{path}")
    node[parts[-1]] = value


def _attribute(exc: SpecError, spec: SweepSpec, inputs: dict[str, Any]) -> SpecError:
    """``exc`` (about one point's config) as an error about the spec file's grid or base."""
    field = exc.field or ""
    axis = next((p for p in spec.grid if field == p or field.startswith(p + ".")),
                None) if field else None
    where = f"grid.{axis}" if axis else (f"base.{field}" if field else "base")
    problem = exc.problem
    if exc.source and exc.source != spec.source:
        problem = f"{exc.source}: {problem}"
    if inputs:
        problem += " (at " + ", ".join(f"{k}={v!r}" for k, v in inputs.items()) + ")"
    if exc.value is SpecError._NO_VALUE:
        return SpecError(problem, source=spec.source, field=where)
    return SpecError(problem, source=spec.source, field=where, value=exc.value)
