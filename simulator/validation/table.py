"""The project's reference table of published results, as data, and its loader.

``reference.json`` (package data beside this module) holds published measurements of real
distributed-training systems, transcribed from their sources (the project's shared reference set,
``shared/published/``, is where they were collected; the table is this project's own and is the
only thing read at run time). Every row carries a citation, a confidence, the metric and value the
source reports, and the *case*: the simulation of the same configuration with the project's
shipped nets, devices and topology presets.

File layout (one JSON object)::

    {"notes": [...],
     "tolerances": {"high": 0.15, "medium": 0.25},
     "sources": {KEY: {"citation": "...", "via": "..."}},
     "rows": [ROW, ...]}

A row's fields are exactly those of :class:`ReferenceRow`; ``case`` and ``paleo`` are mappings
read by :mod:`simulator.validation.cases` and :mod:`simulator.validation.paleo_cases`. Rows with
``confidence: low`` have no numeric tolerance: they belong to ``trend`` groups whose predicted
values must be ordered as the published ones (see :mod:`simulator.validation.runner`).

Statuses: ``active`` (judged against its tolerance), ``known_miss`` (expected to fall outside it;
``reason`` says why, and it is shown with its error), ``pending`` (not simulated yet; ``reason``
says what is missing). Roles: ``validation`` (independent evidence) or ``calibration`` (used by
``experiments/calibrate.py`` to fit the device's efficiency factors, so not independent).
"""
from __future__ import annotations

import fnmatch
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from simulator.errors import SpecError, UnknownNameError

#: Where the table lives (package data of ``simulator.validation``).
TABLE_FILE = "reference.json"
CONFIDENCES = ("high", "medium", "low")
#: Metrics a row may report, as the reference set defines them (``shared/published/README.md``).
METRICS = ("speedup_vs_1gpu", "scaling_efficiency", "images_per_s", "iteration_time",
           "tflops_per_gpu", "busbw", "busbw_per_nic")
#: What a row's published number is: a measurement to reproduce, or a lower bound (a degraded
#: run: the simulated system must reach at least that much).
BOUNDS = ("lower",)
ROLES = ("validation", "calibration")
STATUSES = ("active", "known_miss", "pending")
_TOP_KEYS = ("notes", "tolerances", "sources", "rows")


@dataclass(frozen=True, kw_only=True)
class Source:
    """One cited source: ``citation`` (authors, title, venue, date) and ``via`` (how the numbers
    reached this table)."""

    key: str
    citation: str
    via: str = ""


@dataclass(frozen=True, kw_only=True)
class ReferenceRow:
    """One published number and the simulation that should reproduce it.

    Parameters
    ----------
    id : str
        Unique row name, e.g. ``"tfbench-dgx1-resnet50-8"``.
    source : str
        Key of the row's entry in the table's ``sources``.
    reference : str
        Where in the source (table, figure, page).
    description : str
        The configuration in words.
    metric : str
        One of :data:`METRICS`.
    published : float
        The value the source reports, in ``unit``.
    unit : str
        Unit of ``published`` as the source gives it (``x``, ``img/s``, ``s``, ``TFLOP/s``,
        ``GB/s``, ``fraction``).
    confidence : str
        ``high`` (primary source), ``medium`` (reliable second-hand), ``low`` (recalled; judged
        as a trend only).
    device : str
        Catalog name of the device the row exercises (for the calibration and per-device views).
    role : str
        ``validation`` or ``calibration``.
    status : str
        ``active``, ``known_miss`` or ``pending``; the last two need a ``reason``.
    reason : str
        Why a row is a known miss or pending.
    trend : tuple of str
        Trend groups the row belongs to (required for ``low`` rows).
    case : Mapping
        The simulation (see :mod:`simulator.validation.cases`).
    paleo : Mapping or None
        Paleo's analytical prediction of the same case, where Paleo covers it (see
        :mod:`simulator.validation.paleo_cases`).
    notes : str
        Assumptions and remarks.
    bound : str or None
        ``"lower"``: ``published`` is only a lower bound (a run its source calls degraded); the
        row passes when the prediction is at least that, and stays out of the error statistics.
    """

    id: str
    source: str
    reference: str
    description: str
    metric: str
    published: float
    unit: str
    confidence: str
    device: str
    case: Mapping[str, Any]
    role: str = "validation"
    status: str = "active"
    reason: str = ""
    trend: tuple[str, ...] = ()
    paleo: Mapping[str, Any] | None = None
    notes: str = ""
    bound: str | None = None

    def __post_init__(self) -> None:
        rid = self.id if isinstance(self.id, str) else "?"
        for name in ("id", "source", "reference", "description", "unit", "device"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise SpecError("must be a non-empty string", field=f"rows.{rid}.{name}",
                                value=value)
        for name, valid in (("metric", METRICS), ("confidence", CONFIDENCES), ("role", ROLES),
                            ("status", STATUSES)):
            if getattr(self, name) not in valid:
                raise UnknownNameError(name, str(getattr(self, name)), valid,
                                       field=f"rows.{rid}.{name}")
        value = self.published
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or value <= 0):
            raise SpecError("must be a positive number", field=f"rows.{rid}.published",
                            value=value)
        object.__setattr__(self, "published", float(value))
        if self.status != "active" and not (isinstance(self.reason, str) and self.reason.strip()):
            raise SpecError(f"a {self.status} row must say why in 'reason'",
                            field=f"rows.{rid}.reason", value=self.reason)
        trend = self.trend
        if isinstance(trend, str):
            trend = (trend,)
        if not isinstance(trend, (list, tuple)) or not all(isinstance(t, str) and t
                                                          for t in trend):
            raise SpecError("must be a list of trend group names", field=f"rows.{rid}.trend",
                            value=self.trend)
        object.__setattr__(self, "trend", tuple(trend))
        if self.confidence == "low" and not self.trend:
            raise SpecError("a low-confidence row is judged as a trend: give its trend group(s)",
                            field=f"rows.{rid}.trend", value=list(self.trend))
        if not isinstance(self.case, Mapping) or not self.case:
            raise SpecError("must be a mapping describing the simulation",
                            field=f"rows.{rid}.case", value=self.case)
        if self.bound is not None and self.bound not in BOUNDS:
            raise UnknownNameError("bound", str(self.bound), BOUNDS, field=f"rows.{rid}.bound")
        if self.paleo is not None and not isinstance(self.paleo, Mapping):
            raise SpecError("must be a mapping or null", field=f"rows.{rid}.paleo",
                            value=self.paleo)

    @property
    def judged(self) -> bool:
        """Whether the row counts in the error statistics (high or medium confidence)."""
        return self.confidence in ("high", "medium")


@dataclass(frozen=True)
class ReferenceTable:
    """The whole table: rows in file order, sources by key, tolerance per confidence."""

    rows: tuple[ReferenceRow, ...]
    sources: Mapping[str, Source]
    tolerances: Mapping[str, float]
    notes: tuple[str, ...] = field(default=())
    path: str = TABLE_FILE

    def tolerance(self, row: ReferenceRow) -> float | None:
        """The relative tolerance of ``row``; ``None`` for trend-only (low) rows."""
        return self.tolerances.get(row.confidence)

    def row(self, row_id: str) -> ReferenceRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise UnknownNameError("reference row", row_id, [r.id for r in self.rows])

    def select(self, pattern: str | None = None) -> tuple[ReferenceRow, ...]:
        """Rows whose id matches the glob ``pattern`` (comma-separated patterns allowed); all
        rows for ``None``. A pattern that matches nothing raises :class:`UnknownNameError`."""
        if pattern is None:
            return self.rows
        patterns = [p.strip() for p in pattern.split(",") if p.strip()]
        if not patterns:
            raise SpecError("must name rows (glob patterns, comma-separated)", field="--rows",
                            value=pattern)
        chosen = [r for r in self.rows if any(fnmatch.fnmatchcase(r.id, p) for p in patterns)]
        if not chosen:
            raise UnknownNameError("reference row", pattern, [r.id for r in self.rows],
                                   field="--rows")
        return tuple(chosen)


def _row(item: Any, index: int, source: str) -> ReferenceRow:
    if not isinstance(item, Mapping):
        raise SpecError("each row must be a JSON object", source=source, field=f"rows[{index}]",
                        value=item)
    valid = ReferenceRow.__dataclass_fields__
    rid = item.get("id", f"rows[{index}]")
    for key in item:
        if key not in valid:
            raise SpecError(f"unknown field; valid: {', '.join(sorted(valid))}", source=source,
                            field=f"rows.{rid}.{key}", value=key)
    try:
        return ReferenceRow(**item)
    except SpecError as exc:
        raise exc.with_source(source) from None
    except TypeError as exc:
        raise SpecError(f"bad row: {exc}", source=source, field=f"rows.{rid}") from None


def parse_table(data: Any, *, source: str = TABLE_FILE) -> ReferenceTable:
    """Validate a parsed table document and build a :class:`ReferenceTable`."""
    if not isinstance(data, Mapping):
        raise SpecError("the table must be one JSON object", source=source)
    for key in data:
        if key not in _TOP_KEYS:
            raise SpecError(f"unknown top-level key; valid: {', '.join(_TOP_KEYS)}",
                            source=source, value=key)
    for key in ("tolerances", "sources", "rows"):
        if key not in data:
            raise SpecError("missing section", source=source, field=key)
    tolerances = data["tolerances"]
    if not isinstance(tolerances, Mapping):
        raise SpecError("must map confidence to a relative tolerance", source=source,
                        field="tolerances", value=tolerances)
    for conf, tol in tolerances.items():
        if conf not in CONFIDENCES or isinstance(tol, bool) or not isinstance(tol, (int, float)) \
                or not 0 < tol < 1:
            raise SpecError("each entry maps a confidence (high, medium, low) to a fraction in "
                            "(0, 1)", source=source, field=f"tolerances.{conf}", value=tol)
    sources = {}
    if not isinstance(data["sources"], Mapping):
        raise SpecError("must map a key to a citation", source=source, field="sources")
    for key, entry in data["sources"].items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("citation"), str) \
                or set(entry) - {"citation", "via"}:
            raise SpecError("each source is {citation, via}", source=source,
                            field=f"sources.{key}", value=entry)
        sources[key] = Source(key=key, citation=entry["citation"], via=entry.get("via", ""))
    items = data["rows"]
    if not isinstance(items, list) or not items:
        raise SpecError("must be a non-empty list of rows", source=source, field="rows")
    rows = tuple(_row(item, i, source) for i, item in enumerate(items))
    seen: set[str] = set()
    for r in rows:
        if r.id in seen:
            raise SpecError("duplicate row id", source=source, field="rows.id", value=r.id)
        seen.add(r.id)
        if r.source not in sources:
            raise UnknownNameError("source", r.source, list(sources), source=source,
                                   field=f"rows.{r.id}.source")
        if r.judged and r.confidence not in tolerances:
            raise SpecError(f"no tolerance for confidence {r.confidence!r}", source=source,
                            field="tolerances", value=dict(tolerances))
    notes = data.get("notes", ())
    return ReferenceTable(rows=rows, sources=sources, tolerances=dict(tolerances),
                          notes=tuple(notes) if isinstance(notes, list) else (str(notes),),
                          path=source)


@functools.lru_cache(maxsize=None)
def load_reference() -> ReferenceTable:
    """The project's reference table (read once per process)."""
    source = f"simulator/validation/{TABLE_FILE}"
    text = resources.files(__package__).joinpath(TABLE_FILE).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                        source=source) from None
    return parse_table(data, source=source)
