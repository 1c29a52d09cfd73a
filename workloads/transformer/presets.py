"""Named transformer presets: published models as data (``workloads/presets/transformers.json``).

Each entry holds the hyper-parameters of :class:`~workloads.transformer.config.TransformerConfig`
plus where they come from (``source``, a key of the file's ``sources``; ``reference``, the table
or page; ``confidence``; ``notes``), the published global batch in sequences (``global_batch``,
``null`` where the source has no single one) and the size as the source prints it
(``published_params``). The file is read on each call (it is small), so nothing is cached
between runs.

>>> from workloads.transformer import preset
>>> preset("llama3-8b")["kv_heads"]
8
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

from simulator.errors import SpecError, UnknownNameError
from workloads.transformer.build import transformer_net
from workloads.transformer.config import TransformerConfig

PRESET_FILE = "transformers.json"
#: keys of an entry that are hyper-parameters (the rest describe where they come from)
HYPER_KEYS = ("arch", "layers", "hidden", "heads", "kv_heads", "ffn", "seq_len", "vocab")
META_KEYS = ("global_batch", "published_params", "source", "reference", "confidence", "notes")
CONFIDENCE = ("high", "medium", "low")


def _source_name() -> str:
    return f"workloads/presets/{PRESET_FILE}"


def _table() -> dict[str, Any]:
    """The parsed preset file, its structure checked."""
    source = _source_name()
    text = (resources.files("workloads.presets") / PRESET_FILE).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno}", source=source) from None
    entries = data.get("presets") if isinstance(data, dict) else None
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not isinstance(sources, dict):
        raise SpecError("the root must hold 'presets' and 'sources' objects", source=source)
    for name, entry in entries.items():
        field = f"presets.{name}"
        if not isinstance(entry, dict):
            raise SpecError("a preset must be an object", source=source, field=field)
        unknown = sorted(set(entry) - set(HYPER_KEYS) - set(META_KEYS))
        if unknown:
            raise SpecError("unknown keys; valid: " + ", ".join(sorted(HYPER_KEYS + META_KEYS)),
                            source=source, field=field, value=unknown)
        if entry.get("source") not in sources:
            raise UnknownNameError("source", str(entry.get("source")), list(sources),
                                   source=source, field=f"{field}.source")
        if entry.get("confidence") not in CONFIDENCE:
            raise SpecError(f"confidence must be one of {', '.join(CONFIDENCE)}", source=source,
                            field=f"{field}.confidence", value=entry.get("confidence"))
        batch = entry.get("global_batch")
        if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool)
                                  or batch < 1):
            raise SpecError("global_batch must be a positive integer or null", source=source,
                            field=f"{field}.global_batch", value=batch)
    return data


def presets() -> tuple[str, ...]:
    """The names of the transformer presets, sorted."""
    return tuple(sorted(_table()["presets"]))


def _entry(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    data = _table()
    try:
        return data["presets"][name], data
    except (KeyError, TypeError):
        raise UnknownNameError("transformer preset", str(name), list(data["presets"])) from None


def preset_config(name: str, *, seq_len: int | None = None) -> TransformerConfig:
    """The validated config of preset ``name`` (``seq_len`` overrides the published length)."""
    entry, _ = _entry(name)
    hyper = {k: entry[k] for k in HYPER_KEYS if k in entry}
    if seq_len is not None:
        hyper["seq_len"] = seq_len
    return TransformerConfig(**hyper, source=f"{_source_name()}: presets.{name}")


def preset(name: str) -> dict[str, Any]:
    """The hyper-parameters of preset ``name``, defaults filled in.

    The keys are :data:`HYPER_KEYS`, so ``transformer_spec(**preset(name))`` builds the model.
    """
    cfg = preset_config(name)
    return {k: getattr(cfg, k) for k in HYPER_KEYS}


def preset_info(name: str) -> dict[str, Any]:
    """The whole entry of preset ``name``: its hyper-parameters (defaults filled in), the
    published global batch and size, and its citation (``source`` expanded to the full text as
    ``citation``)."""
    entry, data = _entry(name)
    info = preset(name) | {k: entry.get(k) for k in META_KEYS}
    info["citation"] = data["sources"][entry["source"]]
    return info


def preset_spec(name: str, *, batch: int = 1, seq_len: int | None = None) -> dict[str, Any]:
    """The net spec of preset ``name`` with ``batch`` sequences (of ``seq_len`` tokens, default
    the published length); the net is named ``name`` and its ``transformer`` object also records
    ``preset``."""
    entry, _ = _entry(name)
    cfg = preset_config(name, seq_len=seq_len)
    spec = transformer_net(cfg, batch=batch, name=name,
                           description=f"{name}: published as {entry['published_params']} "
                                       f"parameters; source: {entry['source']}, "
                                       f"{entry['reference']} (see {_source_name()})")
    spec["transformer"]["preset"] = name
    return spec


def preset_rows() -> list[dict[str, Any]]:
    """One dict per preset, sorted by name: its hyper-parameters, published global batch and
    size, source key and confidence (a table of what :func:`presets` offers)."""
    rows = []
    for name in presets():
        info = preset_info(name)
        rows.append({"preset": name, **{k: info[k] for k in HYPER_KEYS},
                     **{k: info[k] for k in ("global_batch", "published_params", "source",
                                             "confidence")}})
    return rows
