"""Simulation configs: a JSON or YAML file with three sections, ``workload``, ``system`` and
``strategy`` (see ``docs/CONFIG.md`` and ``experiments/configs/``)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import SpecError
from simulator.specs import (SystemSpec, WorkloadSpec, strategy_from_dict, system_from_dict,
                             workload_from_dict)

SECTIONS = ("workload", "system", "strategy")


@dataclass(frozen=True)
class SimConfig:
    workload: WorkloadSpec
    system: SystemSpec
    strategy: Any
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        return {"workload": asdict(self.workload), "system": asdict(self.system),
                "strategy": asdict(self.strategy)}


def read_document(path: str | Path) -> Any:
    """Parse a JSON or YAML file (by suffix; YAML otherwise); errors name the file and line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}", source=source) from None
    if Path(path).suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                            source=source) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"not valid YAML: {problem}{where}", source=source) from None


def config_from_dict(data: Any, *, source: str = "<config>") -> SimConfig:
    if not isinstance(data, dict):
        raise SpecError("a config must be a mapping with sections workload, system, strategy",
                        source=source, value=type(data).__name__)
    for section in SECTIONS:
        if section not in data:
            raise SpecError("missing section", source=source, field=section)
    extra = sorted(set(data) - set(SECTIONS))
    if extra:
        raise SpecError(f"unknown section; valid: {', '.join(SECTIONS)}", source=source,
                        field=extra[0])
    return SimConfig(workload=workload_from_dict(data["workload"], source=source),
                     system=system_from_dict(data["system"], source=source),
                     strategy=strategy_from_dict(data["strategy"], source=source), source=source)


def load_config(path: str | Path) -> SimConfig:
    return config_from_dict(read_document(path), source=str(path))
