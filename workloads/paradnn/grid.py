"""Sweep grids of ParaDnn configurations, read from YAML.

A grid file names a model family and lists one axis per hyperparameter; its configurations are
the cartesian product of the axes, in the order the file lists them (the last axis varies
fastest), so the same file always gives the same sequence. Example
(``experiments/configs/paradnn_fc.yaml``)::

    name: paradnn_fc
    model: fc                       # fc | cnn | rnn
    description: ...
    citation: ...                   # where the values come from
    axes:
      layers: [4, 8, 16, 32, 64, 128]          # a list of values
      nodes: {from: 32, to: 8192, times: 2}    # a geometric range, both ends included
      input_width: [2000, 8000]
      output_width: 1000                       # a single value
      batch: {from: 64, to: 16384, times: 2}

``{from, to, step}`` is an arithmetic range. Axis names are the fields of the family's config
(:mod:`workloads.paradnn.configs`); a field with a default (``batch``) may be left out. The values
are checked when the grid is read, so every configuration of a grid that loads is valid.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from simulator.errors import SpecError, UnknownNameError
from workloads.paradnn.configs import _Config, config_type

GRID_KEYS = ("axes", "citation", "description", "model", "name")
RANGE_KEYS = ("from", "to", "times", "step")


@dataclass(frozen=True, kw_only=True)
class Grid:
    """A named grid over one model family's hyperparameters.

    ``axes`` is a tuple of ``(field, values)`` pairs in nesting order (the last varies fastest);
    ``citation`` says where the values come from; ``source`` is the file it was read from.
    """

    name: str
    model: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    description: str = ""
    citation: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or f"grid {self.name}"
        try:
            cls = config_type(self.model)
        except UnknownNameError as exc:
            raise UnknownNameError(exc.kind, exc.name, exc.valid, source=where,
                                   field="model") from None
        valid = cls.field_names()
        seen = set()
        for name, values in self.axes:
            if name not in valid:
                raise UnknownNameError(f"{self.model} hyperparameter", name, valid,
                                       source=where, field=f"axes.{name}")
            if name in seen:
                raise SpecError("axis listed twice", source=where, field=f"axes.{name}")
            seen.add(name)
            if not values:
                raise SpecError("an axis needs at least one value", source=where,
                                field=f"axes.{name}")
        missing = [f.name for f in fields(cls) if f.name not in seen
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise SpecError(f"no axis for {', '.join(missing)}", source=where, field="axes")
        for name, values in self.axes:  # every value valid on its own: build a probe config
            base = {n: v[0] for n, v in self.axes}
            for value in values:
                try:
                    cls(**{**base, name: value})
                except SpecError as exc:
                    raise SpecError(exc.problem, source=where, field=f"axes.{name}",
                                    value=value) from None

    def __len__(self) -> int:
        return math.prod(len(values) for _, values in self.axes)

    def __iter__(self) -> Iterator[_Config]:
        cls = config_type(self.model)
        names = [name for name, _ in self.axes]
        for combo in itertools.product(*(values for _, values in self.axes)):
            yield cls(**dict(zip(names, combo)))

    def configs(self) -> list[_Config]:
        """Every configuration, in the grid's order."""
        return list(self)


def expand_axis(value: Any, *, source: str, field: str) -> tuple[Any, ...]:
    """The values of one axis: a list, a single value, or a ``{from, to, times|step}`` range."""
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, Mapping):
        return (value,)
    unknown = sorted(set(value) - set(RANGE_KEYS))
    if unknown:
        raise UnknownNameError("range key", unknown[0], RANGE_KEYS, source=source, field=field)
    start, stop = value.get("from"), value.get("to")
    times, step = value.get("times"), value.get("step")
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop))
    if not ints or start < 1 or stop < start or (times is None) == (step is None):
        raise SpecError("a range needs integers 1 <= from <= to and exactly one of 'times' or "
                        "'step'", source=source, field=field, value=dict(value))
    grow = times if times is not None else step
    if not isinstance(grow, int) or isinstance(grow, bool) or grow < (2 if times else 1):
        raise SpecError("'times' must be an integer >= 2 and 'step' an integer >= 1",
                        source=source, field=field, value=dict(value))
    out, v = [], start
    while v <= stop:
        out.append(v)
        v = v * times if times is not None else v + step
    return tuple(out)


def parse_grid(data: Any, *, source: str = "<grid>") -> Grid:
    """A :class:`Grid` from the parsed YAML (or any mapping of the same shape)."""
    if not isinstance(data, Mapping):
        raise SpecError("a grid file must be a mapping with 'model' and 'axes'", source=source)
    for key in data:
        if key not in GRID_KEYS:
            raise UnknownNameError("grid key", str(key), GRID_KEYS, source=source)
    axes = data.get("axes")
    if not isinstance(axes, Mapping) or not axes:
        raise SpecError("'axes' must be a non-empty mapping of hyperparameter to values",
                        source=source, field="axes")
    model = data.get("model")
    if not isinstance(model, str):
        raise SpecError("'model' must be fc, cnn or rnn", source=source, field="model",
                        value=model)
    expanded = tuple((str(name), expand_axis(values, source=source, field=f"axes.{name}"))
                     for name, values in axes.items())
    name = data.get("name", Path(source).stem)
    return Grid(name=str(name), model=model, axes=expanded,
                description=str(data.get("description", "")),
                citation=str(data.get("citation", "")), source=source)


def load_grid(path: str | Path) -> Grid:
    """Read a grid YAML file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"not valid YAML{where}", source=source) from None
    return parse_grid(data, source=source)


def grid_configs(grid: Grid | str | Path) -> list[_Config]:
    """Every configuration of a grid (a :class:`Grid` or the path of a grid file), in order."""
    if not isinstance(grid, Grid):
        grid = load_grid(grid)
    return grid.configs()
