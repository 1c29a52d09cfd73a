"""Finding nets: a shipped net by name (``nets/*.json``, found from a clone or an installed wheel),
a transformer preset by name (``workloads/presets/transformers.json``, generated on load), or a
file by path (Paleo-format JSON, or a Caffe ``.prototxt`` or ONNX ``.onnx`` file through its
importer)."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from simulator.errors import UnknownNameError
from workloads.graph import LayerGraph, build_graph
from workloads.spec import parse_net, read_json

NET_SUFFIXES = (".json", ".prototxt", ".onnx")


def shipped_nets() -> tuple[str, ...]:
    """Names of the nets shipped in the ``nets`` package, sorted."""
    root = resources.files("nets")
    return tuple(sorted(p.name[:-5] for p in root.iterdir()
                        if p.name.endswith(".json") and not p.name.startswith("_")))


def net_path(name: str) -> Path:
    """The file of a shipped net; ``UnknownNameError`` lists the shipped names."""
    candidate = resources.files("nets") / f"{name}.json"
    if not candidate.is_file():
        raise UnknownNameError("net", name, shipped_nets())
    return Path(str(candidate))


def resolve_net(name_or_path: str | Path) -> Path:
    """A path as given if it names a file (or has a net suffix), else a shipped net by name."""
    text = str(name_or_path)
    path = Path(text)
    if path.is_file() or path.suffix in NET_SUFFIXES or "/" in text:
        return path
    return net_path(text)


def load_net(name_or_path: str | Path, *, batch: int | None = None,
             unknown_layers: str = "error") -> LayerGraph:
    """Load a net by shipped name, transformer preset name (``workloads.transformer.presets()``)
    or path, inferred at ``batch`` (default: the file's batch; 1 for a preset)."""
    preset = transformer_preset(name_or_path)
    if preset is not None:
        from workloads.transformer import preset_spec
        spec = preset_spec(preset, batch=1 if batch is None else batch)
        return build_graph(spec, batch=batch, source=preset, unknown_layers=unknown_layers)
    try:
        path = resolve_net(name_or_path)
    except UnknownNameError as exc:
        from workloads.transformer import presets
        raise UnknownNameError("net", exc.name, [*exc.valid, *presets()]) from None
    source = str(name_or_path) if not Path(str(name_or_path)).is_file() else str(path)
    if path.suffix == ".prototxt":
        from workloads.caffe import import_prototxt
        data = import_prototxt(path)
    elif path.suffix == ".onnx":
        from workloads.onnx import import_onnx
        data = import_onnx(path, batch=batch)
    else:
        data = read_json(path)
    spec = parse_net(data, source=source)
    return build_graph(spec, batch=batch, unknown_layers=unknown_layers)


def transformer_preset(name_or_path: str | Path) -> str | None:
    """``name_or_path`` if it is a transformer preset's name and neither a file nor a shipped net
    (those keep precedence), else None."""
    text = str(name_or_path)
    path = Path(text)
    if path.is_file() or path.suffix in NET_SUFFIXES or "/" in text or text in shipped_nets():
        return None
    from workloads.transformer import presets
    return text if text in presets() else None
