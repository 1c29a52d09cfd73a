"""Plain JSON values for rows and point identities.

A row crosses process boundaries and is written to the journal as JSON, then read back on resume;
keeping every value a plain Python scalar (numpy scalars unwrapped, tuples as lists) makes a
resumed table equal, value for value, to one computed in a single run.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with numpy scalars unwrapped and containers made JSON lists and dicts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):
        try:
            return plain(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(v) for v in items]
    return str(value)


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces; floats as Python's shortest repr."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), allow_nan=True)


def digest(value: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``value``'s canonical JSON."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def cell(value: Any) -> Any:
    """A table cell for an input value: scalars as they are, anything else as canonical JSON."""
    value = plain(value)
    if isinstance(value, (list, dict)):
        return canonical_json(value)
    return value


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and not (isinstance(value, float) and math.isnan(value)))
