"""The model zoo's builders: parameter counts, multiply-adds and shapes checked against published
numbers and independent per-layer tables.

Reference counts: torchvision's models (BatchNorm scale and shift counted, running statistics not)
for VGG-16, ResNet-18/34/50/101/152, DenseNet-121 and Inception v3; BVLC Caffe's AlexNet and
GoogLeNet; Paleo's own files for AlexNet v2, the one-tower AlexNet and NiN. Per-layer MACs: FODLAM's
tables extracted from the Caffe deploy nets (``../shared/data/fodlam/nets``).
"""
from __future__ import annotations

import json

import pytest

from conftest import PALEO_NETS, SHARED_DATA, requires_shared
from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph, load_net
from workloads.zoo import NETS, build, names, resnet, to_json
from workloads.zoo.resnet import PRESETS, preset

FODLAM_NETS = SHARED_DATA / "fodlam" / "nets"


def graph(name: str, batch: int | None = None):
    return build_graph(build(name, batch=batch), source=name)


def _conv_params(k: int | tuple[int, int], c_in: int, c_out: int, bias: bool = True) -> int:
    kh, kw = (k, k) if isinstance(k, int) else k
    return kh * kw * c_in * c_out + (c_out if bias else 0)


# ---------------------------------------------------------------------------------------------
# Parameter counts

PUBLISHED_PARAMS = {
    "vgg16": 138_357_544,        # torchvision vgg16
    "resnet50": 25_557_032,      # torchvision resnet50
    "resnet101": 44_549_160,     # torchvision resnet101
    "resnet152": 60_192_808,     # torchvision resnet152
    "densenet121": 7_978_856,    # torchvision densenet121
    "alexnet": 60_965_224,       # BVLC Caffe bvlc_alexnet
    "googlenet": 6_998_552,      # BVLC Caffe bvlc_googlenet without the two auxiliary heads
    "alexnet_v2": 50_303_912,    # Paleo's alex_v2.json
    "alexnet_owt": 49_566_504,   # Paleo's alex_v2_1gpu.json
    "nin": 7_595_176,            # Paleo's nin.json
    # torchvision inception_v3 (27,161,264) less its auxiliary head: a 1x1 conv 768->128 and a 5x5
    # conv 128->768, each with an affine BatchNorm, and a 768->1000 classifier
    "inception_v3": 27_161_264 - (768 * 128 + 2 * 128 + 25 * 128 * 768 + 2 * 768
                                  + 768 * 1000 + 1000),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_counts_match_published(name):
    assert graph(name).total_params == PUBLISHED_PARAMS[name]


def test_inception_v3_count_is_torchvision_without_aux_head():
    assert PUBLISHED_PARAMS["inception_v3"] == 23_834_568


def test_overfeat_parameters_from_table_1():
    """Sermanet et al. 2014, table 1 (fast model): convs 96-256-512-1024-1024, FC 3072-4096-1000
    on a 6x6x1024 pool5, biases everywhere."""
    expected = (_conv_params(11, 3, 96) + _conv_params(5, 96, 256) + _conv_params(3, 256, 512)
                + _conv_params(3, 512, 1024) + _conv_params(3, 1024, 1024)
                + (6 * 6 * 1024 * 3072 + 3072) + (3072 * 4096 + 4096) + (4096 * 1000 + 1000))
    assert expected == 145_920_872
    g = graph("overfeat")
    assert g.total_params == expected
    assert [g[f"conv{i}"].output_shape[1:3] for i in range(1, 6)] == [(56, 56), (24, 24),
                                                                      (12, 12), (12, 12), (12, 12)]
    assert g["pool5"].output_shape[1:] == (6, 6, 1024)


# ---------------------------------------------------------------------------------------------
# Multiply-adds against FODLAM's per-layer tables (Caffe deploy nets)

def _fodlam_macs(filename: str) -> dict[str, int]:
    path = FODLAM_NETS / filename
    if not path.is_file():
        pytest.skip(f"FODLAM net table not found at {path}")
    rows = json.loads(path.read_text())
    return {row["name"]: row["macs"] for row in rows if "macs" in row}


def test_vgg16_forward_macs_per_image():
    g = graph("vgg16")
    assert g.forward_macs // g.batch == 15_470_264_320
    assert g.forward_macs == 15_470_264_320 * g.batch
    assert g.with_batch(1).forward_macs == 15_470_264_320


@requires_shared
def test_vgg16_per_layer_macs_equal_fodlam():
    expected = _fodlam_macs("VGG_ILSVRC_16_layers_deploy.json")
    g = graph("vgg16", batch=1)
    ours = {layer.name: layer.macs for layer in g.layers if layer.macs}
    assert len(expected) == 16
    assert ours == expected  # the same layer names (conv1_1 ... fc8), and the same counts
    assert sum(expected.values()) == 15_470_264_320


@requires_shared
def test_alexnet_per_layer_macs_equal_fodlam():
    expected = _fodlam_macs("alexnet_deploy.json")
    g = graph("alexnet", batch=1)
    ours = {layer.name: layer.macs for layer in g.layers if layer.macs}
    assert ours == expected
    # the grouped convolutions are what makes conv2/4/5 agree: each group sees half the channels
    assert {n: g[n].attrs["groups"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5")} == {
        "conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}


def test_alexnet_bvlc_shapes_use_caffe_ceil_mode():
    g = graph("alexnet")
    assert g["data"].output_shape[1:] == (227, 227, 3)
    assert g["conv1"].output_shape[1:] == (55, 55, 96)
    assert g["pool1"].output_shape[1:] == (27, 27, 96)
    assert g["pool2"].output_shape[1:] == (13, 13, 256)
    assert g["pool5"].output_shape[1:] == (6, 6, 256)
    assert all(g[p].attrs["ceil_mode"] for p in ("pool1", "pool2", "pool5"))
    assert [layer.type for layer in g.layers if layer.name.startswith("norm")] == ["LRN", "LRN"]


# ---------------------------------------------------------------------------------------------
# Shapes at key points

@pytest.mark.parametrize("name, layer, shape", [
    ("resnet50", "layer4/2/relu", (7, 7, 2048)),
    ("resnet101", "layer4/2/relu", (7, 7, 2048)),
    ("resnet152", "layer4/2/relu", (7, 7, 2048)),
    ("resnet50", "layer1/2/relu", (56, 56, 256)),
    ("resnet50", "layer2/0/conv2", (28, 28, 128)),   # v1.5: the 3x3 strides
    ("resnet50", "layer2/0/conv1", (56, 56, 128)),
    ("inception_v3", "Mixed_7c/concat", (8, 8, 2048)),
    ("inception_v3", "Mixed_5d/concat", (35, 35, 288)),
    ("inception_v3", "Mixed_6e/concat", (17, 17, 768)),
    ("inception_v3", "MaxPool_5a_3x3", (35, 35, 192)),
    ("densenet121", "relu5", (7, 7, 1024)),
    ("densenet121", "denseblock1/denselayer6/concat", (56, 56, 256)),
    ("densenet121", "transition1/pool", (28, 28, 128)),
    ("densenet121", "transition2/pool", (14, 14, 256)),
    ("densenet121", "transition3/pool", (7, 7, 512)),
    ("googlenet", "inception_5b/output", (7, 7, 1024)),
    ("googlenet", "pool1/3x3_s2", (56, 56, 64)),      # Caffe ceil mode: 112 -> 56
    ("googlenet", "pool2/3x3_s2", (28, 28, 192)),
    ("googlenet", "inception_3b/output", (28, 28, 480)),
    ("googlenet", "pool4/3x3_s2", (7, 7, 832)),
    ("nin", "pool1", (27, 27, 96)),
    ("nin", "pool3", (6, 6, 384)),
    ("nin", "pool4", (1, 1, 1000)),
    ("vgg16", "pool5", (7, 7, 512)),
    ("alexnet_v2", "conv1", (54, 54, 64)),
    ("alexnet_v2", "pool5", (5, 5, 256)),
    ("alexnet_v2", "fc6", (1, 1, 4096)),
])
def test_feature_map_shapes(name, layer, shape):
    assert graph(name)[layer].output_shape[1:] == shape


@pytest.mark.parametrize("name", sorted(NETS))
def test_every_net_ends_in_a_1000_way_softmax(name):
    g = graph(name)
    last = g.layers[-1]
    assert last.type == "Softmax"
    assert last.output_shape == (g.batch, 1000)
    assert g.children[last.name] == ()


def test_batch_normalised_nets_have_no_conv_bias_and_bn_after_every_conv():
    for name in ("resnet50", "inception_v3", "densenet121"):
        g = graph(name)
        convs = [layer for layer in g.layers if layer.type == "Convolution"]
        if name == "inception_v3":
            convs = [c for c in convs if c.name != "Logits/Conv2d_1c_1x1"]  # the classifier
        assert convs and all(c.attrs["bias"] is False for c in convs), name
        if name != "densenet121":  # DenseNet is pre-activation: BN comes before its convs
            assert all([g[k].type for k in g.children[c.name]] == ["BatchNorm"] for c in convs)
    g = graph("resnet50")
    assert sum(layer.type == "Elementwise" for layer in g.layers) == 16
    assert sum(layer.type == "Convolution" for layer in g.layers) == 53


# ---------------------------------------------------------------------------------------------
# AlexNet one-tower, its model-parallel variants, and Paleo's files

@pytest.mark.parametrize("workers", [1, 2, 4, 8])
def test_model_parallel_variants_keep_the_one_tower_parameters(workers):
    one = graph("alexnet_owt")
    split = graph(f"alexnet_owt_{workers}gpu")
    assert split.total_params == one.total_params == 49_566_504
    assert split.forward_macs == one.forward_macs
    copies = [layer for layer in split.layers if layer.block == "parallel_fc67"
              and layer.name.startswith("parallel_fc67/fc6@")]
    assert len(copies) == workers
    assert all(c.splits == workers and c.output_shape[-1] == 4096 // workers for c in copies)
    assert split["concat7"].output_shape[1:] == (1, 1, 4096)
    for s in range(workers):  # every copy of fc7 reads all of fc6 (gathered by concat6@s)
        assert split[f"parallel_fc67/fc7@{s}"].input_shapes[0][1:] == (1, 1, 4096)


def _comparable(g):
    return [(layer.name, layer.type, layer.parents, layer.output_shape, layer.params, layer.macs,
             dict(layer.attrs), layer.split, layer.splits) for layer in g.layers]


@requires_shared
@pytest.mark.parametrize("ours, paleo", [("alexnet_v2", "alex_v2"),
                                         ("alexnet_owt", "alex_v2_1gpu"),
                                         ("alexnet_owt_2gpu", "alex_v2_2gpu"),
                                         ("alexnet_owt_4gpu", "alex_v2_4gpu"),
                                         ("alexnet_owt_8gpu", "alex_v2_8gpu")])
def test_alexnet_variants_read_like_paleos_files(ours, paleo):
    """Layer for layer (names, parents, shapes, params, MACs, attributes, splits) our files mean
    what Paleo's mean, so Paleo's estimator, hybrid mode included, treats them the same."""
    path = PALEO_NETS / f"{paleo}.json"
    assert _comparable(graph(ours)) == _comparable(load_net(path))


# ---------------------------------------------------------------------------------------------
# The parameterised ResNet builder

def _resnet_params(kind: str, groups, filters: int, classes: int) -> int:
    """torchvision's ResNet parameter count, written independently of the builder."""
    expansion = 4 if kind == "bottleneck" else 1
    total = _conv_params(7, 3, filters, bias=False) + 2 * filters
    c = filters
    for g, count in enumerate(groups):
        w = filters * 2 ** g
        for j in range(count):
            stride = 2 if g > 0 and j == 0 else 1
            if kind == "basic":
                total += _conv_params(3, c, w, False) + _conv_params(3, w, w, False) + 4 * w
            else:
                total += (_conv_params(1, c, w, False) + _conv_params(3, w, w, False)
                          + _conv_params(1, w, 4 * w, False) + 2 * (w + w + 4 * w))
            if stride != 1 or c != w * expansion:
                total += _conv_params(1, c, w * expansion, False) + 2 * w * expansion
            c = w * expansion
    return total + c * classes + classes


@pytest.mark.parametrize("preset_name, expected", [("resnet18", 11_689_512),
                                                   ("resnet34", 21_797_672),
                                                   ("resnet50", 25_557_032),
                                                   ("resnet101", 44_549_160),
                                                   ("resnet152", 60_192_808)])
def test_resnet_presets_match_torchvision(preset_name, expected):
    g = build_graph(preset(preset_name))
    assert g.total_params == expected
    kind, groups = PRESETS[preset_name]
    assert _resnet_params(kind, groups, 64, 1000) == expected
    last = [layer for layer in g.layers if layer.name.startswith("layer4/")][-1]
    assert last.output_shape[1:] == (7, 7, 512 * (4 if kind == "bottleneck" else 1))


@pytest.mark.parametrize("kind, groups, filters, size, classes", [
    ("basic", (2, 2), 16, 32, 10),
    ("basic", (1, 1, 1), 8, 64, 7),
    ("bottleneck", (1, 2, 1), 32, 96, 100),
    ("bottleneck", (2,), 64, 56, 5),
])
def test_resnet_builder_parameters(kind, groups, filters, size, classes):
    g = build_graph(resnet(block_type=kind, blocks_per_group=groups, filters=filters,
                           image_size=size, classes=classes, batch=3))
    assert g.batch == 3
    assert g.total_params == _resnet_params(kind, groups, filters, classes)
    assert g.layers[-1].output_shape == (3, classes)
    # stem /4, then /2 per later group (ceil for odd sizes: padding keeps the edge)
    side = -(-size // 4)
    for _ in groups[1:]:
        side = -(-side // 2)
    expansion = 4 if kind == "bottleneck" else 1
    last = g[f"layer{len(groups)}/{groups[-1] - 1}/relu"]
    assert last.output_shape[1:] == (side, side, filters * 2 ** (len(groups) - 1) * expansion)


@requires_shared
def test_resnet_v1_equals_msra_caffe_resnet50():
    """Our v1 (stride in the first 1x1) against the paper's Caffe ResNet-50 as our importer reads
    it: the same 54 conv/FC multiply-add counts, and the same parameters except that MSRA's conv1
    has a bias (64 more)."""
    caffe = load_net(PALEO_NETS / "caffe" / "resnet50.prototxt", batch=1)
    ours = build_graph(resnet(version="v1", batch=1))
    assert sorted(x.macs for x in ours.layers if x.macs) == sorted(
        x.macs for x in caffe.layers if x.macs)
    assert ours.forward_macs == caffe.forward_macs == 3_857_973_248
    assert caffe.total_params - ours.total_params == 64
    assert caffe["conv1"].attrs["bias"] is True and ours["conv1"].attrs["bias"] is False
    # v1.5 moves the stride to the 3x3: same parameters, more multiply-adds
    v15 = build_graph(resnet(batch=1))
    assert v15.total_params == ours.total_params
    assert v15.forward_macs == 4_089_184_256 > ours.forward_macs


def test_resnet_rejects_bad_parameters():
    with pytest.raises(UnknownNameError, match="valid: basic, bottleneck"):
        resnet(block_type="wide")
    with pytest.raises(UnknownNameError, match="valid: v1, v1.5"):
        resnet(version="v2")
    with pytest.raises(SpecError, match="blocks_per_group"):
        resnet(blocks_per_group=())
    with pytest.raises(SpecError, match="filters"):
        resnet(filters=0)
    with pytest.raises(UnknownNameError, match="resnet152, resnet18"):
        preset("resnet200")


# ---------------------------------------------------------------------------------------------
# The registry and the canonical text

def test_zoo_names_and_unknown_name():
    assert names() == tuple(sorted(NETS))
    assert {"alexnet", "alexnet_v2", "alexnet_owt", "alexnet_owt_1gpu", "alexnet_owt_2gpu",
            "alexnet_owt_4gpu", "alexnet_owt_8gpu", "vgg16", "inception_v3", "nin", "overfeat",
            "googlenet", "resnet50", "resnet101", "resnet152", "densenet121"} == set(NETS)
    with pytest.raises(UnknownNameError) as info:
        build("resnet51")
    assert info.value.valid == sorted(NETS)


@pytest.mark.parametrize("name", sorted(NETS))
def test_spec_name_batch_and_json_round_trip(name):
    spec = build(name)
    assert spec["name"] == name
    text = to_json(spec)
    assert text.endswith("}\n") and json.loads(text) == spec
    assert to_json(build(name)) == text  # deterministic
    small = build(name, batch=2)
    assert build_graph(small).batch == 2
    assert build_graph(small).total_params == build_graph(spec).total_params
    assert build_graph(small).forward_macs * build_graph(spec).batch == \
        build_graph(spec).forward_macs * 2
