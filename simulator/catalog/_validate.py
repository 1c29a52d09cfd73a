"""Field checks shared by the catalog specs, and a small immutable, hashable mapping.

Every check raises :class:`~simulator.errors.SpecError` with ``field="<entry>.<field>"`` so that a
message reads ``devices.json: V100.memory_bandwidth_Bps: must be > 0 (got 0.0)`` once the loader
has added the file name.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from simulator.errors import SpecError


class FrozenMap(Mapping):
    """A read-only ``str -> float`` mapping that can be hashed, compared and pickled.

    ``types.MappingProxyType`` would be read-only too, but it can be neither hashed (so a frozen
    dataclass holding one could not be a cache key) nor pickled (so it could not cross a process
    pool in a sweep).
    """

    __slots__ = ("_data",)

    def __init__(self, items: Mapping[str, float] | None = None) -> None:
        object.__setattr__(self, "_data", dict(items or {}))

    def __getitem__(self, key: str) -> float:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is immutable")

    def __reduce__(self):
        return (FrozenMap, (self._data,))


def where(entry: str, field: str) -> str:
    """The ``field`` label of an error about ``field`` of catalog entry ``entry``."""
    return f"{entry}.{field}" if entry else field


def check_name(value: Any, *, field: str = "name") -> str:
    """A catalog key: a non-empty string without surrounding blanks."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise SpecError("must be a non-empty string without leading or trailing blanks",
                        field=field, value=value)
    return value


def check_text(value: Any, *, entry: str, field: str) -> str:
    """A free-text field (description, source): a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise SpecError("must be a non-empty string", field=where(entry, field), value=value)
    return value


def _number(value: Any, *, entry: str, field: str) -> float:
    # bool is an int subclass; `true` in a JSON file is never a bandwidth.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError("must be a number", field=where(entry, field), value=value)
    number = float(value)
    if not math.isfinite(number):
        raise SpecError("must be finite", field=where(entry, field), value=value)
    return number


def check_positive(value: Any, *, entry: str, field: str) -> float:
    """A finite number > 0, returned as float."""
    number = _number(value, entry=entry, field=field)
    if number <= 0.0:
        raise SpecError("must be > 0", field=where(entry, field), value=value)
    return number


def check_non_negative(value: Any, *, entry: str, field: str) -> float:
    """A finite number >= 0, returned as float."""
    number = _number(value, entry=entry, field=field)
    if number < 0.0:
        raise SpecError("must be >= 0", field=where(entry, field), value=value)
    return number


def check_fraction(value: Any, *, entry: str, field: str) -> float:
    """An efficiency: a finite number in (0, 1], returned as float."""
    number = _number(value, entry=entry, field=field)
    if not 0.0 < number <= 1.0:
        raise SpecError("must be in (0, 1]", field=where(entry, field), value=value)
    return number


def check_choice(value: Any, choices: tuple[str, ...], *, entry: str, field: str) -> str:
    """One of ``choices``; the error lists them."""
    if value not in choices:
        raise SpecError(f"must be one of {', '.join(choices)}", field=where(entry, field),
                        value=value)
    return value


def check_bool(value: Any, *, entry: str, field: str) -> bool:
    """A real ``bool`` (``1`` or ``"yes"`` are refused)."""
    if not isinstance(value, bool):
        raise SpecError("must be true or false", field=where(entry, field), value=value)
    return value


def check_table(value: Any, keys: tuple[str, ...], check, *, entry: str, field: str,
                required: tuple[str, ...] = ()) -> FrozenMap:
    """A mapping whose keys are among ``keys`` (``required`` ones present) and whose values pass
    ``check``; returned as a :class:`FrozenMap` in the canonical order of ``keys``."""
    if not isinstance(value, Mapping) or not value:
        raise SpecError("must be a non-empty mapping", field=where(entry, field), value=value)
    for key in value:
        if key not in keys:
            raise SpecError(f"unknown key; valid keys: {', '.join(keys)}",
                            field=where(entry, field), value=key)
    for key in required:
        if key not in value:
            raise SpecError(f"the key {key!r} is required", field=where(entry, field))
    return FrozenMap({key: check(value[key], entry=entry, field=f"{field}.{key}")
                      for key in keys if key in value})
