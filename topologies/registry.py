"""Name topologies: builders and presets in one registry, and :func:`get` to resolve a spec string.

A spec is one of

- a preset name from ``presets.json`` (``"selene"``), optionally called with overrides
  (``"selene(k=8)"``);
- a builder call with keyword arguments whose values are Python literals
  (``"fat_tree(k=8, oversubscription=2)"``, ``"torus(dims=(4, 4), server='titan_node')"``);
- a path to a ``.graphml`` or node-link ``.json`` file.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, Callable

import networkx as nx

from simulator.errors import SpecError, UnknownNameError
from topologies import fabrics
from topologies.catalog import presets
from topologies.io import SUFFIXES, load
from topologies.schema import validate

#: Topology builders by name: plain functions returning a new graph.
BUILDERS: dict[str, Callable[..., nx.Graph]] = {
    "dragonfly": fabrics.dragonfly,
    "fat_tree": fabrics.fat_tree,
    "leaf_spine": fabrics.leaf_spine,
    "rail_optimized": fabrics.rail_optimized,
    "ring": fabrics.ring,
    "server": fabrics.server,
    "single_switch": fabrics.single_switch,
    "torus": fabrics.torus,
}


def table():
    """Builders and presets as a DataFrame: ``name, kind, parameters, description``.

    For a builder, ``parameters`` lists its keyword parameters with defaults; for a preset, the
    builder call it stands for.
    """
    import pandas as pd

    rows = []
    for name, func in sorted(BUILDERS.items()):
        params = ", ".join(f"{p.name}={p.default!r}" for p in
                           inspect.signature(func).parameters.values())
        summary = (inspect.getdoc(func) or "").split("\n\n")[0].replace("\n", " ")
        rows.append({"name": name, "kind": "builder", "parameters": params,
                     "description": summary})
    for name, entry in sorted(presets().items()):
        call = ", ".join(f"{k}={v!r}" for k, v in entry["params"].items())
        rows.append({"name": name, "kind": "preset", "parameters": f"{entry['builder']}({call})",
                     "description": entry.get("description", "")})
    return pd.DataFrame(rows, columns=["name", "kind", "parameters", "description"])


def names() -> list[str]:
    """Every builder and preset name, sorted."""
    return sorted(set(BUILDERS) | set(presets()))


def _parse(spec: str) -> tuple[str, dict[str, Any]]:
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        raise SpecError("not a topology name, builder call or file", source=spec) from None
    if isinstance(tree, ast.Name):
        return tree.id, {}
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise SpecError("not a topology name, builder call or file", source=spec)
    if tree.args:
        raise SpecError("give builder parameters by keyword, e.g. fat_tree(k=8)", source=spec)
    kwargs = {}
    for kw in tree.keywords:
        if kw.arg is None:
            raise SpecError("** is not allowed in a topology spec", source=spec)
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise SpecError("parameter values must be literals (numbers, strings, lists, dicts)",
                            source=spec, field=kw.arg, value=ast.unparse(kw.value)) from None
    return tree.func.id, kwargs


def build(builder: str, **params: Any) -> nx.Graph:
    """Call builder ``builder`` with ``params`` and validate the result.

    Raises ``UnknownNameError`` for an unknown builder and ``SpecError`` naming the parameter for
    a parameter the builder does not take or rejects.
    """
    if builder not in BUILDERS:
        raise UnknownNameError("topology builder", builder, list(BUILDERS))
    func = BUILDERS[builder]
    accepted = inspect.signature(func).parameters
    for key in params:
        if key not in accepted:
            raise SpecError(f"{builder} has no parameter {key!r}; valid: "
                            + ", ".join(sorted(accepted)), field=key)
    try:
        graph = func(**params)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:
        raise SpecError(str(exc), field=builder) from None
    return validate(graph)


def get(spec: str) -> nx.Graph:
    """The topology named by ``spec`` (see the module docstring), validated.

    >>> g = get("fat_tree(k=4, server='dgx1_v100')")
    >>> g.graph["servers"], g.graph["gpus_per_server"]
    (4, 8)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError("a topology spec is a non-empty string", value=spec)
    if spec.endswith(SUFFIXES) or Path(spec).is_file():
        return load(spec)
    name, overrides = _parse(spec)
    table = presets()
    try:
        if name in table:
            entry = table[name]
            graph = build(entry["builder"], **{**entry["params"], **overrides})
            graph.graph["name"] = name if not overrides else spec.strip()
            graph.graph["description"] = entry.get("description", "")
        elif name in BUILDERS:
            graph = build(name, **overrides)
            graph.graph["name"] = spec.strip()
        else:
            raise UnknownNameError("topology", name, names())
    except SpecError as exc:
        if not exc.source:  # keep the error's class (UnknownNameError stays one)
            exc.source = spec.strip()
            exc.args = (exc._render(),)
        raise
    graph.graph["spec"] = spec.strip()
    return graph
