"""Shared output helpers for CLI commands: render a pandas table, write files atomically."""
from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from simulator.atomic import write_text_atomic

FORMATS = ("table", "csv", "json")


def add_format_option(parser, default: str = "table") -> None:
    parser.add_argument("--format", choices=FORMATS, default=default,
                        help=f"output format (default: {default})")


def render(frame: pd.DataFrame, fmt: str, *, float_format: str = "{:.6g}") -> str:
    """Text for ``frame`` in ``fmt``: an aligned table, CSV, or JSON records (one object per row)."""
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps(frame.to_dict(orient="records"), indent=2, default=_jsonable) + "\n"
    with pd.option_context("display.max_rows", None, "display.max_columns", None,
                           "display.width", 250, "display.max_colwidth", 60):
        return frame.to_string(index=False, float_format=float_format.format) + "\n"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:mod:`simulator.atomic`)."""
    write_text_atomic(path, text)
