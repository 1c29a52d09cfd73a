"""Reading a net spec: JSON parsing, Block and ModelParallel expansion, ordering by edges.

The result is a flat list of :class:`LayerSpec`, each with fully resolved parent names, in a
deterministic topological order (ties broken by order of definition). Shapes are not touched here;
``workloads.graph`` infers them.

Paleo's rules (see ``docs/NET_FORMAT.md`` and Paleo's format README):

- A ``Block`` namespaces its children: child ``x`` becomes ``block/x``. A child with empty parents
  inherits the block's parents; a child's parent ``p`` means the sibling ``block/p``. paleosim also
  accepts a parent that names a layer outside the block by its full name, and nested blocks.
- A ``ModelParallel`` block with ``splits: K`` instantiates each child K times as ``block/x@s``.
  Inside it, ``x@self`` is the same split and ``x@all`` is every split. Outside, ``block/x@all`` is
  every split and ``block/x@s`` one of them.
- A bare block name used as a parent resolves to ``block/endpoint`` when the block has an endpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from simulator.errors import SpecError

CONTAINER_TYPES = ("Block", "ModelParallel")


@dataclass(frozen=True)
class LayerSpec:
    """One layer as written (fields other than ``type``/``parents``), with resolved parents."""

    name: str
    type: str
    parents: tuple[str, ...]
    fields: Mapping[str, Any]
    block: str | None = None
    split: int | None = None     # index of this copy inside a ModelParallel block
    splits: int | None = None    # K of that block


@dataclass(frozen=True)
class NetSpec:
    """A parsed, expanded net: its name, source and layers in topological order."""

    name: str
    source: str
    layers: tuple[LayerSpec, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)


def read_json(path: str | Path) -> dict:
    """Parse ``path`` as JSON; a file that is not JSON is a SpecError naming the line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", source=source) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                        source=source) from None
    return data


def parse_net(data: Any, *, source: str = "<net>") -> NetSpec:
    """Validate the root object and expand it into a :class:`NetSpec`."""
    if not isinstance(data, dict):
        raise SpecError("the root must be a JSON object with 'name' and 'layers'", source=source,
                        value=type(data).__name__)
    layers = data.get("layers")
    if not isinstance(layers, dict) or not layers:
        raise SpecError("missing or empty 'layers' object", source=source, field="layers")
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise SpecError("'name' must be a string", source=source, field="name", value=name)
    expanded = _Expander(source).expand(layers)
    ordered = _toposort(expanded, source)
    return NetSpec(name=name, source=source, layers=tuple(ordered), raw=data)


class _Expander:
    """Flattens Blocks and ModelParallel blocks into plain layers with resolved parent names."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.out: dict[str, LayerSpec] = {}
        self.endpoints: dict[str, str] = {}        # block name -> full endpoint name
        self.split_names: dict[str, list[str]] = {}  # "block/x" -> ["block/x@0", ...]
        self.pending: list[tuple[str, tuple[str, ...], str]] = []  # (layer, raw parents, field path)

    def expand(self, layers: Mapping[str, Any]) -> dict[str, LayerSpec]:
        self._walk(layers, prefix="", inherited=(), field_path="layers", block=None, split=None)
        resolved: dict[str, LayerSpec] = {}
        for name, spec in self.out.items():
            parents = tuple(p for raw in spec.parents for p in self._resolve(raw, name))
            resolved[name] = LayerSpec(name=name, type=spec.type, parents=parents,
                                       fields=spec.fields, block=spec.block, split=spec.split,
                                       splits=spec.splits)
        return resolved

    def _layer_dict(self, name: str, params: Any, field_path: str) -> dict:
        if not isinstance(params, dict):
            raise SpecError("a layer must be a JSON object", source=self.source, field=field_path,
                            value=params)
        if "type" not in params:
            raise SpecError("missing field 'type'", source=self.source, field=field_path)
        if not isinstance(params["type"], str):
            raise SpecError("'type' must be a string", source=self.source,
                            field=f"{field_path}.type", value=params["type"])
        parents = params.get("parents", [])
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise SpecError("'parents' must be a list of layer names", source=self.source,
                            field=f"{field_path}.parents", value=parents)
        return params

    def _walk(self, layers: Mapping[str, Any], *, prefix: str, inherited: tuple[str, ...],
              field_path: str, block: str | None, split: tuple[int, int] | None) -> None:
        for short, params in layers.items():
            path = f"{field_path}.{short}"
            params = self._layer_dict(short, params, path)
            ltype = params["type"]
            full = prefix + short
            raw_parents = tuple(params.get("parents", []))
            if ltype in CONTAINER_TYPES:
                self._container(full, ltype, params, raw_parents, prefix, inherited, path, split)
                continue
            if split is not None:
                raw_parents = tuple(self._split_parent(p, prefix, split[0], path)
                                    for p in raw_parents)
                name = f"{full}@{split[0]}"
            else:
                raw_parents = tuple(self._namespace(p, prefix) for p in raw_parents)
                name = full
            if not raw_parents:
                raw_parents = inherited
            if name in self.out:
                raise SpecError("duplicate layer name", source=self.source, field=path, value=name)
            fields = {k: v for k, v in params.items() if k not in ("type", "parents")}
            self.out[name] = LayerSpec(name=name, type=ltype, parents=raw_parents, fields=fields,
                                       block=block, split=None if split is None else split[0],
                                       splits=None if split is None else split[1])

    def _container(self, full: str, ltype: str, params: dict, raw_parents: tuple[str, ...],
                   prefix: str, inherited: tuple[str, ...], path: str,
                   split: tuple[int, int] | None) -> None:
        if split is not None:
            raise SpecError(f"a {ltype} cannot be nested inside a ModelParallel block",
                            source=self.source, field=path)
        children = params.get("layers")
        if not isinstance(children, dict) or not children:
            raise SpecError(f"a {ltype} needs a non-empty 'layers' object", source=self.source,
                            field=f"{path}.layers")
        parents = tuple(self._namespace(p, prefix) for p in raw_parents) or inherited
        endpoint = params.get("endpoint")
        if endpoint is not None:
            if endpoint not in children:
                raise SpecError("endpoint names no layer of the block", source=self.source,
                                field=f"{path}.endpoint", value=endpoint)
            self.endpoints[full] = f"{full}/{endpoint}"
        if ltype == "Block":
            self._walk(children, prefix=f"{full}/", inherited=parents,
                       field_path=f"{path}.layers", block=full, split=None)
            return
        k = params.get("splits")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise SpecError("'splits' must be a positive integer", source=self.source,
                            field=f"{path}.splits", value=k)
        for short in children:
            self.split_names[f"{full}/{short}"] = [f"{full}/{short}@{s}" for s in range(k)]
        if endpoint is not None:
            self.endpoints[full] = f"{full}/{endpoint}@all"
        for s in range(k):
            self._walk(children, prefix=f"{full}/", inherited=parents,
                       field_path=f"{path}.layers", block=full, split=(s, k))

    def _namespace(self, parent: str, prefix: str) -> str:
        """Inside a block, a short name means the sibling; remember both for resolution."""
        if not prefix:
            return parent
        return f"{prefix}{parent}\x00{parent}"  # sibling first, then the global name

    def _split_parent(self, parent: str, prefix: str, s: int, path: str) -> str:
        if parent.endswith("@self"):
            return f"{prefix}{parent[:-5]}@{s}"
        if parent.endswith("@all"):
            return f"{prefix}{parent[:-4]}@all"
        raise SpecError("inside a ModelParallel block a parent must end in '@self' or '@all'",
                        source=self.source, field=f"{path}.parents", value=parent)

    def _resolve(self, raw: str, child: str) -> list[str]:
        candidates = raw.split("\x00")
        for cand in candidates:
            hit = self._lookup(cand)
            if hit is not None:
                return hit
        raise SpecError("unknown parent", source=self.source, field=f"layers.{child}.parents",
                        value=candidates[-1])

    def _lookup(self, name: str) -> list[str] | None:
        if name in self.out:
            return [name]
        if name in self.endpoints:
            return self._lookup(self.endpoints[name])
        if name.endswith("@all") and name[:-4] in self.split_names:
            return list(self.split_names[name[:-4]])
        return None


def _toposort(layers: dict[str, LayerSpec], source: str) -> list[LayerSpec]:
    """Kahn's algorithm; ties broken by order of definition, so the order is deterministic."""
    position = {name: i for i, name in enumerate(layers)}
    indegree = {name: len(set(spec.parents)) for name, spec in layers.items()}
    children: dict[str, list[str]] = {name: [] for name in layers}
    for name, spec in layers.items():
        for parent in dict.fromkeys(spec.parents):
            children[parent].append(name)
    import heapq
    ready = [(position[n], n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    ordered: list[LayerSpec] = []
    while ready:
        _, name = heapq.heappop(ready)
        ordered.append(layers[name])
        for child in children[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, (position[child], child))
    if len(ordered) != len(layers):
        stuck = sorted((n for n, d in indegree.items() if d > 0), key=position.get)
        raise SpecError("the layers form a cycle", source=source, field="layers",
                        value=stuck[:6])
    return ordered
