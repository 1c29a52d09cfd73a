"""Small constructors for the layer dicts of a net spec, and the canonical JSON text of a spec.

Every constructor returns one layer as a plain ``dict`` in paleosim's net format
(``docs/NET_FORMAT.md``): ``type`` first, then ``parents``, then the type's fields, so the files
written from them read the same way everywhere. Shapes are NHWC; a filter is
``[kh, kw, C_in, C_out]`` with the full ``C_in`` even for grouped convolutions; strides and pooling
windows are Paleo's ``[1, h, w, 1]`` vectors.

``padding`` is either ``"SAME"``/``"VALID"`` (TensorFlow's rules, for nets defined in TensorFlow)
or an explicit symmetric ``(ph, pw)`` (for nets defined in Caffe or PyTorch, which pad explicitly).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

Padding = str | int | Sequence[int]


def _pair(value: int | Sequence[int]) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    h, w = value
    return [int(h), int(w)]


def _padding(padding: Padding) -> str | list[int]:
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or (ph, pw), got {padding!r}")
        return padding
    return _pair(padding)


def input_layer(batch: int, height: int, width: int, channels: int) -> dict:
    """The ``Input`` layer: a ``[batch, height, width, channels]`` image tensor."""
    return {"type": "Input", "parents": [], "tensor": [batch, height, width, channels]}


def conv(parents: Sequence[str], kernel: int | Sequence[int], c_in: int, c_out: int, *,
         stride: int | Sequence[int] = 1, padding: Padding = "SAME", bias: bool = True,
         groups: int = 1, activation_fn: str | None = None) -> dict:
    """A 2-D convolution of ``c_in`` to ``c_out`` channels with a ``kernel`` (k or (kh, kw)) window.

    ``bias=False`` writes ``"bias": false`` (convolutions followed by batch norm have no bias);
    ``activation_fn`` is Paleo's fused activation attribute, written only when given.
    """
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    layer: dict[str, Any] = {"type": "Convolution", "parents": list(parents),
                             "filter": [kh, kw, c_in, c_out], "strides": [1, sh, sw, 1],
                             "padding": _padding(padding)}
    if groups != 1:
        layer["groups"] = groups
    if not bias:
        layer["bias"] = False
    if activation_fn is not None:
        layer["activation_fn"] = activation_fn
    return layer


def pool(parents: Sequence[str], kernel: int | Sequence[int], stride: int | Sequence[int], *,
         padding: Padding = "VALID", ceil_mode: bool = False, average: bool = False) -> dict:
    """A max (or, with ``average=True``, average) pooling window.

    ``ceil_mode=True`` is Caffe's output size ``ceil((H + 2p - k)/s) + 1``; Caffe always pools
    that way, so nets defined in Caffe set it on every pooling layer.
    """
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride)
    layer: dict[str, Any] = {"type": "AvgPool" if average else "Pooling", "parents": list(parents),
                             "ksize": [1, kh, kw, 1], "strides": [1, sh, sw, 1],
                             "padding": _padding(padding)}
    if ceil_mode:
        layer["ceil_mode"] = True
    return layer


def global_avg_pool(parents: Sequence[str]) -> dict:
    """Average over the whole feature map: ``[N, H, W, C]`` to ``[N, 1, 1, C]``."""
    return {"type": "GlobalAvgPool", "parents": list(parents)}


def batch_norm(parents: Sequence[str], *, epsilon: float | None = None) -> dict:
    """Batch normalisation with affine scale and shift (2 parameters per channel)."""
    layer: dict[str, Any] = {"type": "BatchNorm", "parents": list(parents)}
    if epsilon is not None:
        layer["epsilon"] = epsilon
    return layer


def relu(parents: Sequence[str]) -> dict:
    """A separate ReLU layer (as Caffe and PyTorch run it, unfused)."""
    return {"type": "Activation", "parents": list(parents), "function": "relu"}


def lrn(parents: Sequence[str], *, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
        k: float = 1.0) -> dict:
    """Local response normalisation across channels (Krizhevsky et al. 2012, section 3.3)."""
    return {"type": "LRN", "parents": list(parents), "size": size, "alpha": alpha, "beta": beta,
            "k": k}


def fc(parents: Sequence[str], outputs: int, *, bias: bool = True) -> dict:
    """A fully connected layer; a rank-4 input is flattened first."""
    layer: dict[str, Any] = {"type": "InnerProduct", "parents": list(parents),
                             "num_outputs": outputs}
    if not bias:
        layer["bias"] = False
    return layer


def dropout(parents: Sequence[str], keep_prob: float) -> dict:
    """Dropout keeping a fraction ``keep_prob`` of the activations."""
    return {"type": "Dropout", "parents": list(parents), "dropout_keep_prob": keep_prob}


def concat(parents: Sequence[str]) -> dict:
    """Concatenation along the channel axis (NHWC axis 3)."""
    return {"type": "Concatenate", "parents": list(parents), "dim": 3}


def add(parents: Sequence[str]) -> dict:
    """An elementwise sum (a residual connection)."""
    return {"type": "Elementwise", "parents": list(parents), "operation": "sum"}


def softmax(parents: Sequence[str], classes: int) -> dict:
    """The output distribution over ``classes`` classes."""
    return {"type": "Softmax", "parents": list(parents), "num_classes": classes}


def block(layers: Mapping[str, dict], *, parents: Sequence[str] = (),
          endpoint: str | None = None) -> dict:
    """A ``Block``: its children are named ``block/child``; ``endpoint`` is what the block's name
    means when used as a parent."""
    out: dict[str, Any] = {"type": "Block", "parents": list(parents), "layers": dict(layers)}
    if endpoint is not None:
        if endpoint not in layers:
            raise ValueError(f"endpoint {endpoint!r} is not a layer of the block")
        out["endpoint"] = endpoint
    return out


def model_parallel(layers: Mapping[str, dict], splits: int, *,
                   parents: Sequence[str] = ()) -> dict:
    """A ``ModelParallel`` block: each child is instantiated ``splits`` times (``x@s``), each copy
    computing 1/``splits`` of the output channels."""
    return {"type": "ModelParallel", "parents": list(parents), "splits": splits,
            "layers": dict(layers)}


class Stack:
    """Writes a chain of layers into ``layers``, each fed by the one written before it.

    >>> s = Stack({"data": input_layer(1, 8, 8, 3)}, head="data")
    >>> s.add("conv", conv, 3, 3, 16)
    'conv'
    >>> s.layers["conv"]["parents"]
    ['data']
    """

    def __init__(self, layers: dict[str, dict] | None = None, *, head: str | None = None) -> None:
        self.layers: dict[str, dict] = {} if layers is None else layers
        self.head = head

    def add(self, name: str, make: Any, *args: Any, **kwargs: Any) -> str:
        """Write ``make([head], *args, **kwargs)`` as layer ``name``; it becomes the new head."""
        if name in self.layers:
            raise ValueError(f"layer {name!r} written twice")
        parents = [] if self.head is None else [self.head]
        self.layers[name] = make(parents, *args, **kwargs)
        self.head = name
        return name


def net(name: str, layers: Mapping[str, dict], *, description: str | None = None) -> dict:
    """The root object of a net spec; ``description`` (optional) says what the net is and where
    it comes from (loaders ignore it)."""
    root: dict[str, Any] = {"name": name}
    if description is not None:
        root["description"] = description
    root["layers"] = dict(layers)
    return root


def to_json(spec: Mapping[str, Any], *, indent: int = 2) -> str:
    """The canonical text of a spec: objects one key per line in insertion order, lists of scalars
    on one line, and a trailing newline. The same spec always gives the same text."""
    return _render(spec, 0, indent) + "\n"


def _render(value: Any, level: int, indent: int) -> str:
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        pad = " " * (indent * (level + 1))
        items = [f"{pad}{json.dumps(str(k))}: {_render(v, level + 1, indent)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * (indent * level) + "}"
    if isinstance(value, (list, tuple)):
        if all(not isinstance(v, (Mapping, list, tuple)) for v in value):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        pad = " " * (indent * (level + 1))
        items = [pad + _render(v, level + 1, indent) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * (indent * level) + "]"
    return json.dumps(value)

