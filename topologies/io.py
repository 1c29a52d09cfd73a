"""Read and write topologies in networkx's own formats: GraphML and node-link JSON.

Node labels that are tuples (``("gpu", 0, 3)``) are written as their Python text (``"('gpu', 0,
3)"``) in GraphML and as JSON arrays in node-link files; both are read back as tuples. Edge
bandwidth may be given as ``bandwidth_Bps``, ``bandwidth_GBps`` or ``bandwidth_Gbitps`` and latency
as ``latency_s`` or ``latency_us``; they are converted to bytes/s and seconds once, here. Every loaded
graph goes through :func:`topologies.schema.validate`.
"""
from __future__ import annotations

import ast
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import networkx as nx

from simulator.errors import SpecError
from simulator.units import US, gb_per_s_to_Bps, gbit_per_s_to_Bps
from topologies.schema import validate

SUFFIXES = (".graphml", ".json")
_BANDWIDTH = {"bandwidth_Bps": float, "bandwidth_GBps": gb_per_s_to_Bps,
              "bandwidth_Gbitps": gbit_per_s_to_Bps}
_LATENCY = {"latency_s": float, "latency_us": lambda v: v * US}


def _label(text: Any) -> Any:
    """A GraphML node id back to the label it was written from (a tuple or number), else itself."""
    if not isinstance(text, str) or not text[:1] in "(-0123456789":
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (tuple, int, float)) else text


def _tupled(value: Any) -> Any:
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


#: Node attributes whose values are node labels (tuples), written like node ids.
_LABEL_ATTRS = ("nic",)


def _labels_back(graph: nx.Graph) -> None:
    """Node attributes that hold node labels, back to labels (GraphML text, JSON arrays)."""
    for _, data in graph.nodes(data=True):
        for key in _LABEL_ATTRS:
            if key in data:
                value = data[key]
                data[key] = _label(value) if isinstance(value, str) else _tupled(value)


def _convert_units(graph: nx.Graph, source: str) -> None:
    for u, v, data in graph.edges(data=True):
        where = f"edges[{u!r}, {v!r}]"
        for table, target in ((_BANDWIDTH, "bandwidth_Bps"), (_LATENCY, "latency_s")):
            given = [k for k in table if k in data]
            if len(given) > 1:
                raise SpecError(f"give one of {', '.join(table)}", source=source, field=where,
                                value=given)
            if given and given[0] != target:
                raw = data.pop(given[0])
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise SpecError("must be a number", source=source,
                                    field=f"{where}.{given[0]}", value=raw)
                data[target] = table[given[0]](raw)
            elif given and isinstance(data[target], int) and not isinstance(data[target], bool):
                data[target] = float(data[target])


def _check_declared(declared: set, edges, source: str) -> None:
    for u, v in edges:
        for end in (u, v):
            if end not in declared:
                raise SpecError("edge references a node that is not declared", source=source,
                                field=f"edges[{u!r}, {v!r}]", value=end)


def _read_graphml(path: Path, source: str) -> nx.Graph:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SpecError(f"cannot read GraphML: {exc}", source=source) from None
    declared, edges = set(), []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "node":
            declared.add(el.get("id"))
        elif tag == "edge":
            edges.append((el.get("source"), el.get("target")))
    _check_declared(declared, edges, source)
    try:
        graph = nx.read_graphml(path)
    except Exception as exc:  # networkx raises several types for malformed files
        raise SpecError(f"cannot read GraphML: {exc}", source=source) from None
    return nx.relabel_nodes(graph, {n: _label(n) for n in graph.nodes}, copy=True)


def _read_node_link(path: Path, source: str) -> nx.Graph:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read node-link JSON: {exc}", source=source) from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise SpecError("a node-link file is an object with a 'nodes' list", source=source,
                        field="nodes")
    edge_key = "edges" if "edges" in data else "links"
    if not isinstance(data.get(edge_key, []), list):
        raise SpecError("must be a list", source=source, field=edge_key)
    for i, node in enumerate(data["nodes"]):
        if not isinstance(node, dict) or "id" not in node:
            raise SpecError("each node is an object with an 'id'", source=source,
                            field=f"nodes[{i}]", value=node)
        node["id"] = _tupled(node["id"])
    for i, edge in enumerate(data.get(edge_key, [])):
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            raise SpecError("each edge is an object with 'source' and 'target'", source=source,
                            field=f"{edge_key}[{i}]", value=edge)
        edge["source"], edge["target"] = _tupled(edge["source"]), _tupled(edge["target"])
    _check_declared({n["id"] for n in data["nodes"]},
                    [(e["source"], e["target"]) for e in data.get(edge_key, [])], source)
    data.setdefault("directed", False)
    data.setdefault("multigraph", False)
    try:
        return nx.node_link_graph(data, edges=edge_key)
    except Exception as exc:
        raise SpecError(f"cannot read node-link JSON: {exc}", source=source) from None


def load(path: str | Path) -> nx.Graph:
    """Read a ``.graphml`` or node-link ``.json`` topology and validate it.

    Raises
    ------
    SpecError
        If the file cannot be read, an edge references an undeclared node, or the graph fails
        :func:`~topologies.schema.validate` (the message names the file).
    """
    path = Path(path)
    source = str(path)
    if path.suffix not in SUFFIXES:
        raise SpecError("topology files end in " + " or ".join(SUFFIXES), source=source,
                        value=path.suffix)
    if not path.is_file():
        raise SpecError("no such file", source=source)
    graph = _read_graphml(path, source) if path.suffix == ".graphml" else \
        _read_node_link(path, source)
    _convert_units(graph, source)
    _labels_back(graph)
    graph.graph.setdefault("name", path.stem)
    return validate(graph, source=source)


def save(graph: nx.Graph, path: str | Path) -> None:
    """Write ``graph`` as GraphML or node-link JSON (chosen by the suffix), readable by :func:`load`.

    The file is written whole or not at all.
    """
    from simulator.commands._output import write_atomic  # a plain text writer, no CLI logic

    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise SpecError("topology files end in " + " or ".join(SUFFIXES), source=str(path),
                        value=path.suffix)
    if path.suffix == ".graphml":
        plain = nx.relabel_nodes(graph, {n: repr(n) if isinstance(n, tuple) else n
                                         for n in graph.nodes}, copy=True)
        for _, data in plain.nodes(data=True):
            for key in _LABEL_ATTRS:
                if isinstance(data.get(key), tuple):
                    data[key] = repr(data[key])
        text = "\n".join(nx.generate_graphml(plain)) + "\n"
    else:
        data = nx.node_link_data(graph, edges="edges")
        text = json.dumps(data, indent=1, default=str) + "\n"
    write_atomic(path, text)
