"""Net specs of ParaDnn's models, in paleosim's net format (``docs/NET_FORMAT.md``).

Each builder takes a config from :mod:`workloads.paradnn.configs` and returns a plain ``dict``
that ``workloads.build_graph`` loads and :func:`workloads.zoo.to_json` writes. The structures
follow ParaDnn's TensorFlow models (Wang, Wei, Brooks, MLSys 2020; repository
``Emma926/paradnn``, files ``paradnn/fc.py``, ``cnn.py``, ``resnet_model.py`` and ``rnn.py``):

- FC: ``Input [B, I]`` -> ``L x (InnerProduct N -> ReLU)`` -> ``InnerProduct O`` -> ``Softmax``
  (the softmax cross-entropy loss). ``tf.layers.dense`` has a bias by default, so every dense
  layer has one: ``I·N + N + (L-1)(N² + N) + N·O + O`` parameters, equal to the TF profiler's
  counts in ParaDnn's published results.
- CNN: the ResNet builder of :mod:`workloads.zoo.resnet` with ``blocks`` blocks in each of four
  groups (ParaDnn's ``residual`` block is the zoo's ``basic`` block), ``filters`` first-group
  filters, stride in the 3x3 convolution of a bottleneck (``version="v1.5"``, as the TensorFlow TPU
  ResNet that ParaDnn modifies), then two details of that TensorFlow model the zoo builder does
  not have (see :func:`_apply_tf_resnet_details`).
- RNN: ``Input [B, T]`` token ids -> ``Embedding (V, E)`` -> ``L x Recurrent (cell, hidden E)``
  -> ``InnerProduct V`` at every step -> ``Softmax`` over the vocabulary. TensorFlow 1's cells
  have one bias per gate (``bias: true``).
"""
from __future__ import annotations

from typing import Any

from workloads.graph import LayerGraph, build_graph
from workloads.ops import PHASES
from workloads.paradnn.configs import CNN_FINAL_POOL, CNNConfig, FCConfig, RNNConfig, _Config
from workloads.zoo._layers import Stack, fc, net, relu, softmax
from workloads.zoo.resnet import resnet

# ParaDnn's residual and bottleneck blocks are the zoo's basic and bottleneck blocks.
ZOO_BLOCK_TYPE = {"residual": "basic", "bottleneck": "bottleneck"}
RESNET_GROUPS = 4


def net_name(config: _Config) -> str:
    """``paradnn-<model>-<label>``: the name written in a generated spec."""
    return f"paradnn-{config.model}-{config.label}"


def fc_net(config: FCConfig) -> dict:
    """ParaDnn's fully connected model."""
    s = Stack({"data": {"type": "Input", "parents": [], "tensor": [config.batch,
                                                                     config.input_width]}},
              head="data")
    for i in range(1, config.layers + 1):
        s.add(f"fc{i}", fc, config.nodes)
        s.add(f"relu{i}", relu)
    s.add("logits", fc, config.output_width)
    s.add("loss", softmax, config.output_width)
    return net(net_name(config), s.layers, description=(
        f"ParaDnn FC (Wang, Wei, Brooks, MLSys 2020): {config.layers} dense ReLU layers of "
        f"{config.nodes} units, input {config.input_width}, output {config.output_width}"))


def rnn_net(config: RNNConfig) -> dict:
    """ParaDnn's recurrent language model: embedding, stacked cells, per-step projection."""
    e = config.embedding
    s = Stack({"data": {"type": "Input", "parents": [],
                        "tensor": [config.batch, config.max_length]}}, head="data")
    s.add("embedding", lambda parents: {"type": "Embedding", "parents": parents,
                                        "vocab": config.vocab, "dim": e})
    for i in range(1, config.layers + 1):
        s.add(f"{config.cell}{i}", lambda parents: {"type": "Recurrent", "parents": parents,
                                                    "cell": config.cell, "hidden": e})
    s.add("logits", fc, config.vocab)
    # rank-3 logits: a Softmax without num_classes keeps [N, T, V]
    s.add("loss", lambda parents: {"type": "Softmax", "parents": parents})
    return net(net_name(config), s.layers, description=(
        f"ParaDnn RNN (Wang, Wei, Brooks, MLSys 2020): {config.layers} {config.cell.upper()} "
        f"layers of {e} units, embedding {e}, {config.max_length} steps, vocabulary "
        f"{config.vocab}"))


def cnn_net(config: CNNConfig) -> dict:
    """ParaDnn's ResNet-v1, built by the zoo's ResNet builder."""
    spec = resnet(block_type=ZOO_BLOCK_TYPE[config.block],
                  blocks_per_group=(config.blocks,) * RESNET_GROUPS, filters=config.filters,
                  image_size=config.image, classes=config.classes, batch=config.batch,
                  version="v1.5", name=net_name(config))
    _apply_tf_resnet_details(spec, config)
    spec["description"] = (
        f"ParaDnn CNN (Wang, Wei, Brooks, MLSys 2020): ResNet v1 (TensorFlow TPU model) with "
        f"{config.blocks} {config.block} blocks per group, {config.filters} filters first, "
        f"{config.image}x{config.image} images, {config.classes} classes")
    return spec


def _apply_tf_resnet_details(spec: dict, config: CNNConfig) -> None:
    """Make the zoo's ResNet match ParaDnn's ``resnet_model.py`` in two details.

    1. The first block of every group has a projection shortcut (1x1 convolution and BatchNorm),
       even in group 1 of a basic-block net, where torchvision-style ResNets use the identity.
    2. The head is a 7x7 stride-1 VALID average pool and a flatten, not a global average pool;
       images whose last feature map is smaller than 7x7 are rejected, as TensorFlow would.

    A stopgap until :func:`workloads.zoo.resnet.resnet` grows these two options; the structure it
    expects is checked, so a change in the zoo builder fails loudly here.
    """
    layers = spec["layers"]
    first = layers["layer1"]["layers"]["0"]["layers"]
    if "downsample_conv" not in first:
        if set(first) >= {"add", "conv1"} and len(first["add"]["parents"]) == 2:
            c = config.filters  # basic blocks: group 1 keeps the stem's width
            projection = {
                "downsample_conv": {"type": "Convolution", "parents": [],
                                    "filter": [1, 1, c, c], "strides": [1, 1, 1, 1],
                                    "padding": [0, 0], "bias": False},
                "downsample_bn": {"type": "BatchNorm", "parents": ["downsample_conv"]}}
            first["add"]["parents"] = [first["add"]["parents"][0], "downsample_bn"]
            reordered = {}  # the projection before the add, as the zoo writes later groups
            for key, layer in first.items():
                if key == "add":
                    reordered.update(projection)
                reordered[key] = layer
            first.clear()
            first.update(reordered)
        else:
            raise RuntimeError("workloads.zoo.resnet changed shape: group 1, block 0 has no "
                               "'add' of two parents")
    pool = layers.get("avgpool")
    if pool is None or pool.get("type") != "GlobalAvgPool":
        raise RuntimeError("workloads.zoo.resnet changed shape: no GlobalAvgPool 'avgpool'")
    k = CNN_FINAL_POOL  # a global pool only for a 7x7 last map (images of 193..224 pixels)
    layers["avgpool"] = {"type": "AvgPool", "parents": pool["parents"], "ksize": [1, k, k, 1],
                         "strides": [1, 1, 1, 1], "padding": "VALID"}


BUILDERS = {"fc": fc_net, "cnn": cnn_net, "rnn": rnn_net}


def generate(config: _Config) -> dict:
    """The net spec of any ParaDnn config."""
    return BUILDERS[config.model](config)


def generate_graph(config: _Config) -> LayerGraph:
    """The :class:`LayerGraph` of a config, at its batch."""
    return build_graph(generate(config), source=net_name(config))


def training_flops(graph: LayerGraph) -> float:
    """FLOPs of one training step: every layer's forward, backward-data and backward-filter."""
    return sum(layer.work[p].flops for layer in graph.layers for p in PHASES)


def summarize(graph: LayerGraph) -> dict[str, Any]:
    """Parameters and FLOPs of a generated net, one dict (a row of a table).

    ``six_b_params`` is the usual closed form of a training step's FLOPs, 6 x batch x weights (2
    per multiply-add, forward and two backward products per weight); ``training_flops`` is
    paleosim's count, which also skips the input layer's data gradient and adds elementwise work.
    """
    return {"net": graph.name, "batch": graph.batch, "layers": len(graph),
            "params": graph.total_params, "forward_flops": graph.phase_work("forward").flops,
            "training_flops": training_flops(graph),
            "six_b_params": 6.0 * graph.batch * graph.total_params}



def config_rows(configs, *, summary: bool = False) -> list[dict[str, Any]]:
    """One dict per config: its label and hyperparameters, and with ``summary=True`` the
    parameters and FLOPs of its net (:func:`summarize`; builds every graph, so slower)."""
    rows = []
    for config in configs:
        row = {"label": config.label, **config.as_dict()}
        if summary:
            stats = summarize(generate_graph(config))
            row.update({k: stats[k] for k in ("layers", "params", "forward_flops",
                                              "training_flops")})
        rows.append(row)
    return rows
