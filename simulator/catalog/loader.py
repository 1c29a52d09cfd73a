"""Read the JSON catalogs (package data, read once per process) and look entries up by name.

Every file is one JSON object. Its list sections (``devices``, ``networks``) hold one object per
entry whose keys are exactly the fields of the spec class; ``source`` may be a string or a list of
strings (joined with ``"; "``). Optional top-level keys: ``notes`` and ``source`` (free text, not
read) and, in device files, ``aliases`` (``{"alias": "entry name"}``). Unknown keys, missing
fields, duplicate names (compared case-insensitively) and bad values raise
:class:`~simulator.errors.SpecError` naming the file, the entry and the field.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from importlib import resources
from typing import Any

from simulator.catalog.device import Device
from simulator.catalog.network import NetworkPreset
from simulator.catalog.paleo import PaleoDevicePreset, PaleoNetworkPreset
from simulator.errors import SpecError, UnknownNameError

_DEVICES_FILE = "devices.json"
_NETWORKS_FILE = "networks.json"
_PALEO_FILE = "paleo_presets.json"
_FREE_TEXT_KEYS = ("notes", "source")


@dataclass(frozen=True)
class _Catalog:
    """Entries in file order plus a case-insensitive index (names and aliases)."""

    kind: str
    entries: tuple
    index: Mapping[str, Any]
    names: tuple[str, ...]

    def get(self, name: str):
        if isinstance(name, str):
            entry = self.index.get(name.casefold())
            if entry is not None:
                return entry
        raise UnknownNameError(self.kind, name, self.names)


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                        source=source) from None


def _build_entry(cls, item: Any, *, source: str, label: str):
    if not isinstance(item, Mapping):
        raise SpecError("each entry must be a JSON object", source=source, field=label,
                        value=item)
    entry = item.get("name") if isinstance(item.get("name"), str) else label
    valid = [f.name for f in fields(cls)]
    for key in item:
        if key not in valid:
            raise SpecError(f"unknown field; valid: {', '.join(valid)}", source=source,
                            field=f"{entry}.{key}", value=key)
    for f in fields(cls):
        if f.name not in item and f.default is MISSING and f.default_factory is MISSING:
            raise SpecError("missing field", source=source, field=f"{entry}.{f.name}")
    values = dict(item)
    if isinstance(values.get("source"), list) and all(isinstance(s, str)
                                                      for s in values["source"]):
        values["source"] = "; ".join(values["source"])
    try:
        return cls(**values)
    except SpecError as exc:
        raise exc.with_source(source) from None


def _build_section(cls, items: Any, *, source: str, section: str) -> tuple:
    if not isinstance(items, list) or not items:
        raise SpecError("must be a non-empty list of entries", source=source, field=section,
                        value=items if not isinstance(items, list) else [])
    built = tuple(_build_entry(cls, item, source=source, label=f"{section}[{i}]")
                  for i, item in enumerate(items))
    seen: dict[str, str] = {}
    for entry in built:
        key = entry.name.casefold()
        if key in seen:
            raise SpecError(f"duplicate name (names are case-insensitive; first: {seen[key]!r})",
                            source=source, field=f"{section}.name", value=entry.name)
        seen[key] = entry.name
    return built


def _index(kind: str, entries: tuple, aliases: Any, *, source: str) -> _Catalog:
    index = {entry.name.casefold(): entry for entry in entries}
    names = [entry.name for entry in entries]
    if not isinstance(aliases, Mapping):
        raise SpecError("must be an object mapping alias to entry name", source=source,
                        field="aliases", value=aliases)
    by_name = {entry.name: entry for entry in entries}
    for alias, target in aliases.items():
        if alias.casefold() in index or not alias.strip():
            raise SpecError("alias is empty or clashes with another name or alias",
                            source=source, field=f"aliases.{alias}", value=alias)
        if not isinstance(target, str) or target not in by_name:
            raise SpecError(f"alias target is not an entry; entries: {', '.join(sorted(by_name))}",
                            source=source, field=f"aliases.{alias}", value=target)
        index[alias.casefold()] = by_name[target]
        names.append(alias)
    return _Catalog(kind=kind, entries=entries, index=index, names=tuple(names))


def _parse_document(data: Any, *, source: str, sections: Mapping[str, type],
                    aliases: bool) -> tuple[dict[str, tuple], Any]:
    """The sections of one catalog file (each a tuple of specs) and its raw aliases."""
    if not isinstance(data, Mapping):
        raise SpecError("the file must hold one JSON object", source=source,
                        value=type(data).__name__)
    allowed = tuple(sections) + _FREE_TEXT_KEYS + (("aliases",) if aliases else ())
    for key in data:
        if key not in allowed:
            raise SpecError(f"unknown top-level key; valid: {', '.join(allowed)}",
                            source=source, value=key)
    built = {}
    for section, cls in sections.items():
        if section not in data:
            raise SpecError("missing section", source=source, field=section)
        built[section] = _build_section(cls, data[section], source=source, section=section)
    return built, data.get("aliases", {})


def _read_package_file(filename: str) -> tuple[Any, str]:
    source = f"simulator/catalog/{filename}"
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    return _parse_json(text, source), source


@functools.lru_cache(maxsize=None)
def _device_catalog() -> _Catalog:
    data, source = _read_package_file(_DEVICES_FILE)
    built, aliases = _parse_document(data, source=source, sections={"devices": Device},
                                     aliases=True)
    return _index("device", built["devices"], aliases, source=source)


@functools.lru_cache(maxsize=None)
def _network_catalog() -> _Catalog:
    data, source = _read_package_file(_NETWORKS_FILE)
    built, _ = _parse_document(data, source=source, sections={"networks": NetworkPreset},
                               aliases=False)
    return _index("network", built["networks"], {}, source=source)


@functools.lru_cache(maxsize=None)
def _paleo_catalogs() -> tuple[_Catalog, _Catalog]:
    data, source = _read_package_file(_PALEO_FILE)
    built, _ = _parse_document(data, source=source, aliases=False,
                               sections={"devices": PaleoDevicePreset,
                                         "networks": PaleoNetworkPreset})
    return (_index("Paleo device", built["devices"], {}, source=source),
            _index("Paleo network", built["networks"], {}, source=source))


def get_device(name: str) -> Device:
    """The catalog device called ``name`` (case-insensitive; aliases such as ``"A100"`` work).

    Raises
    ------
    UnknownNameError
        Listing every valid name, sorted.

    Examples
    --------
    >>> get_device("v100").peak("fp32")
    15700000000000.0
    """
    return _device_catalog().get(name)


def devices() -> tuple[Device, ...]:
    """Every catalog device, in catalog order."""
    return _device_catalog().entries


def get_network(name: str) -> NetworkPreset:
    """The network preset called ``name`` (case-insensitive)."""
    return _network_catalog().get(name)


def networks() -> tuple[NetworkPreset, ...]:
    """Every network preset, in catalog order."""
    return _network_catalog().entries


def get_paleo_device(name: str) -> PaleoDevicePreset:
    """Paleo's device preset called ``name`` (case-insensitive), e.g. ``"TITAN_X"``."""
    return _paleo_catalogs()[0].get(name)


def paleo_devices() -> tuple[PaleoDevicePreset, ...]:
    """Paleo's device presets, in Paleo's order."""
    return _paleo_catalogs()[0].entries


def get_paleo_network(name: str) -> PaleoNetworkPreset:
    """Paleo's network preset called ``name`` (case-insensitive), e.g. ``"ethernet20"``."""
    return _paleo_catalogs()[1].get(name)


def paleo_networks() -> tuple[PaleoNetworkPreset, ...]:
    """Paleo's network presets, in Paleo's order."""
    return _paleo_catalogs()[1].entries


def load_device_file(path: str | os.PathLike) -> tuple[Device, ...]:
    """Devices from a user's JSON catalog with the same schema as the built-in ``devices.json``.

    The file is read on every call (it is the caller's data, not package data). Its ``aliases``,
    if any, are validated but not returned.

    Raises
    ------
    SpecError
        If the file cannot be read, is not valid JSON, or holds an invalid entry; the message
        names the file, the entry and the field.
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError(f"cannot read device file: {reason}", source=source) from None
    built, aliases = _parse_document(_parse_json(text, source), source=source,
                                     sections={"devices": Device}, aliases=True)
    _index("device", built["devices"], aliases, source=source)
    return built["devices"]


def select(entries: Sequence, names: Iterable[str], *, kind: str) -> tuple:
    """The entries called ``names`` (case-insensitive, in the order asked), from any catalog.

    Raises
    ------
    UnknownNameError
        For the first name that is not there, listing the valid ones.
    """
    index = {entry.name.casefold(): entry for entry in entries}
    chosen = []
    for name in names:
        entry = index.get(name.casefold()) if isinstance(name, str) else None
        if entry is None:
            raise UnknownNameError(kind, name, [e.name for e in entries])
        chosen.append(entry)
    return tuple(chosen)
