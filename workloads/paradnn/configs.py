"""The configurations of ParaDnn's three model families, as frozen keyword-only specs.

ParaDnn (Wang, Wei, Brooks, "A Systematic Methodology for Analysis of Deep Learning Hardware and
Software Platforms", MLSys 2020; arXiv:1907.10701, "Benchmarking TPU, GPU, and CPU Platforms for
Deep Learning") generates end-to-end models from a few hyperparameters each:

- :class:`FCConfig`: ``layers`` hidden dense ReLU layers of ``nodes`` units on an input of width
  ``input_width``, then a dense layer of ``output_width`` logits; biases on every dense layer.
- :class:`CNNConfig`: a ResNet-v1 (He et al., CVPR 2016) with ``blocks`` residual or bottleneck
  blocks in each of its four groups, ``filters`` in the first group (doubling per group), square
  RGB images of ``image`` pixels and ``classes`` outputs.
- :class:`RNNConfig`: a token embedding of width ``embedding``, ``layers`` recurrent layers (RNN,
  LSTM or GRU cells) whose hidden size equals the embedding size, sequences of ``max_length``
  steps, a vocabulary of ``vocab`` tokens and an output projection to the vocabulary at every step.

Every config has a ``label`` in ParaDnn's workload-name style (``layer_4-node_512-input_2000-
output_1000-bs_64`` for FC, the names of its published result files) and ``from_label`` to read it
back. Batch sizes are part of the config because ParaDnn names every run by its batch; the graph
built from a config can still be re-inferred at any batch (``LayerGraph.with_batch``).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, Mapping

from simulator.errors import SpecError, UnknownNameError
from workloads.ops_rnn import CELL_TYPES, CELLS

CNN_BLOCKS = ("bottleneck", "residual")
RNN_CELLS = CELL_TYPES
# ParaDnn's ResNet (resnet_model.py) ends in average_pooling2d(pool_size=7, strides=1, 'VALID'); its
# stem and three strided groups halve the image five times (rounding up), so the last feature map
# is ceil(image/32) wide and must be at least 7.
CNN_FINAL_POOL = 7
CNN_DOWNSAMPLING = 32
MIN_CNN_IMAGE = CNN_DOWNSAMPLING * (CNN_FINAL_POOL - 1) + 1   # 193


def _positive_int(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError("must be a positive integer", source=owner, field=name, value=value)


def _choice(owner: str, kind: str, name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise UnknownNameError(kind, str(value), valid, source=owner, field=name)


@dataclass(frozen=True, kw_only=True)
class _Config:
    """Shared behaviour: validation of integer fields, labels, dict round trips."""

    model: ClassVar[str] = ""
    _label_keys: ClassVar[tuple[tuple[str, str], ...]] = ()  # (label key, field name)
    _label_prefix_field: ClassVar[str | None] = None          # a field written before the keys

    def __post_init__(self) -> None:
        owner = f"paradnn {self.model} config"
        for f in fields(self):
            if f.type in ("int", int):
                _positive_int(owner, f.name, getattr(self, f.name))

    @property
    def label(self) -> str:
        """ParaDnn's name for this workload (see the class docstring for the format)."""
        parts = [f"{key}_{getattr(self, name)}" for key, name in self._label_keys]
        if self._label_prefix_field:
            parts.insert(0, str(getattr(self, self._label_prefix_field)))
        return "-".join(parts)

    @classmethod
    def from_label(cls, label: str, **extra: Any):
        """Parse a label written by :attr:`label` (extra keyword fields fill what it lacks)."""
        owner = f"paradnn {cls.model} label"
        parts = label.split("-")
        values: dict[str, Any] = dict(extra)
        if cls._label_prefix_field:
            if not parts:
                raise SpecError("empty label", source=owner, value=label)
            values[cls._label_prefix_field] = parts.pop(0)
        by_key = dict(cls._label_keys)
        for part in parts:
            key, sep, text = part.rpartition("_")
            if not sep or key not in by_key:
                raise SpecError(f"cannot read '{part}'; expected " + "-".join(
                    f"{k}_<int>" for k, _ in cls._label_keys), source=owner, value=label)
            try:
                values[by_key[key]] = int(text)
            except ValueError:
                raise SpecError(f"'{part}' does not end in an integer", source=owner,
                                value=label) from None
        missing = [name for _, name in cls._label_keys if name not in values]
        if missing:
            raise SpecError(f"missing {', '.join(missing)}", source=owner, value=label)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``model`` first), e.g. for a row of a sweep table."""
        return {"model": self.model, **{f.name: getattr(self, f.name) for f in fields(self)}}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, kw_only=True)
class FCConfig(_Config):
    """A ParaDnn fully connected model. Label: ``layer_L-node_N-input_I-output_O-bs_B``."""

    layers: int
    nodes: int
    input_width: int
    output_width: int
    batch: int = 1

    model: ClassVar[str] = "fc"
    _label_keys: ClassVar[tuple[tuple[str, str], ...]] = (
        ("layer", "layers"), ("node", "nodes"), ("input", "input_width"),
        ("output", "output_width"), ("bs", "batch"))

    @property
    def params(self) -> int:
        """``I·N + N + (L-1)·(N² + N) + N·O + O``: every dense layer's weights and biases."""
        n = self.nodes
        return (self.input_width * n + n + (self.layers - 1) * (n * n + n)
                + n * self.output_width + self.output_width)


@dataclass(frozen=True, kw_only=True)
class CNNConfig(_Config):
    """A ParaDnn ResNet-v1. Label: ``<block>-block_K-filtersz_F-input_S-output_C-batchsize_B``
    (ParaDnn's run scripts name a CNN run without its block type, which names their folder)."""

    block: str
    blocks: int
    filters: int
    image: int
    classes: int
    batch: int = 1

    model: ClassVar[str] = "cnn"
    _label_prefix_field: ClassVar[str | None] = "block"
    _label_keys: ClassVar[tuple[tuple[str, str], ...]] = (
        ("block", "blocks"), ("filtersz", "filters"), ("input", "image"),
        ("output", "classes"), ("batchsize", "batch"))

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("paradnn cnn config", "block type", "block", self.block, CNN_BLOCKS)
        if self.image < MIN_CNN_IMAGE:
            raise SpecError(f"must be at least {MIN_CNN_IMAGE} pixels: ParaDnn's ResNet ends in "
                            f"a {CNN_FINAL_POOL}x{CNN_FINAL_POOL} VALID average pool over the "
                            "last feature map, ceil(image/32) wide", source="paradnn cnn config",
                            field="image", value=self.image)


@dataclass(frozen=True, kw_only=True)
class RNNConfig(_Config):
    """A ParaDnn recurrent model. Label: ``<cell>-layer_L-maxlength_T-vocabsize_V-
    embeddingsize_E-batchsize_B`` (ParaDnn's run scripts leave out the cell, which names their
    folder)."""

    cell: str
    layers: int
    embedding: int
    max_length: int
    vocab: int
    batch: int = 1

    model: ClassVar[str] = "rnn"
    _label_prefix_field: ClassVar[str | None] = "cell"
    _label_keys: ClassVar[tuple[tuple[str, str], ...]] = (
        ("layer", "layers"), ("maxlength", "max_length"), ("vocabsize", "vocab"),
        ("embeddingsize", "embedding"), ("batchsize", "batch"))

    def __post_init__(self) -> None:
        super().__post_init__()
        _choice("paradnn rnn config", "cell", "cell", self.cell, RNN_CELLS)

    @property
    def params(self) -> int:
        """``V·E`` (embedding) + ``L·g·(2·E² + E)`` (cells, one bias per gate as in TensorFlow 1)
        + ``E·V + V`` (output projection), with ``g`` = 1, 3, 4 gates for RNN, GRU, LSTM."""
        g = CELLS[self.cell].gates
        e, v = self.embedding, self.vocab
        return v * e + self.layers * g * (2 * e * e + e) + e * v + v


CONFIG_TYPES: Mapping[str, type[_Config]] = {"cnn": CNNConfig, "fc": FCConfig, "rnn": RNNConfig}


def config_type(model: str) -> type[_Config]:
    """The config class of a model family: ``fc``, ``cnn`` or ``rnn``."""
    try:
        return CONFIG_TYPES[model]
    except KeyError:
        raise UnknownNameError("ParaDnn model family", str(model), list(CONFIG_TYPES)) from None


def make_config(model: str, **values: Any) -> _Config:
    """A config of family ``model`` from keyword values; unknown keys name the valid ones."""
    cls = config_type(model)
    valid = cls.field_names()
    for key in values:
        if key not in valid:
            raise UnknownNameError(f"{model} hyperparameter", key, valid)
    missing = [f.name for f in fields(cls) if f.name not in values
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise SpecError(f"missing {', '.join(missing)}", source=f"paradnn {model} config")
    return cls(**values)
