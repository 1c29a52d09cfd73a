"""ParaDnn generators (workloads/paradnn): FC parameter counts and training FLOPs against ParaDnn's
published results, structure of the FC/CNN/RNN nets, labels, grid files, `paleosim generate`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph, load_net
from workloads.paradnn import (CNNConfig, FCConfig, Grid, RNNConfig, cnn_net, config_rows,
                               expand_axis, fc_net, generate, generate_graph, grid_configs,
                               load_grid, make_config, parse_grid, rnn_net, summarize,
                               training_flops)
from workloads.zoo import to_json

REPO = Path(__file__).resolve().parents[1]
PARADNN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "paradnn"
CONFIGS = REPO / "experiments" / "configs"

requires_paradnn = pytest.mark.skipif(
    not PARADNN_DATA.is_dir(),
    reason=f"ParaDnn results not found at {PARADNN_DATA} (the shared/ folder beside the clone)")


def read_results(name: str) -> dict:
    return json.loads((PARADNN_DATA / name).read_text())


def tfprof_count(n: int) -> float:
    """A count as the TF profiler prints it (``18.08m``), read back as a float: below 1000 the
    integer, else two decimals of thousands (k), millions (m) or billions (b). ParaDnn's
    ``params`` field was parsed from this text."""
    for scale in (1e9, 1e6, 1e3):
        if n >= scale:
            return float(f"{n / scale:.2f}") * scale
    return float(n)


# ---------------------------------------------------------------------------------------------
# Against ParaDnn's published FC results

@requires_paradnn
@pytest.mark.parametrize("results", ["gpu_fc.json", "tpu_fc.json"])
def test_fc_params_equal_the_files_to_their_printed_precision(results):
    """Every row: the generated graph's parameter count, printed as the TF profiler prints it
    (3-4 significant digits), is the file's ``params`` (float equality up to 1e-9 relative, the
    parse's rounding). 176 GPU rows, 1724 TPU rows."""
    data = read_results(results)
    graphs: dict[tuple, int] = {}
    for label, params in zip(data["labels"], data["params"], strict=True):
        cfg = FCConfig.from_label(label)
        key = (cfg.layers, cfg.nodes, cfg.input_width, cfg.output_width)
        if key not in graphs:  # parameters do not depend on the batch
            graphs[key] = build_graph(fc_net(cfg), batch=1).total_params
            assert graphs[key] == cfg.params
        assert tfprof_count(graphs[key]) == pytest.approx(params, rel=1e-9), label
    assert len(data["labels"]) == {"gpu_fc.json": 176, "tpu_fc.json": 1724}[results]


@requires_paradnn
def test_fc_training_flops_match_the_gpu_files():
    """Every GPU row: 6 x batch x weights is within 2% of the file's ``fl`` (GFLOP per step).

    paleosim's own count (every layer and phase, elementwise work included) skips the first
    layer's data gradient, which TensorFlow prunes at run time but its profiler counts from the
    graph; with that gradient added back, the count is within 1% of ``fl``."""
    data = read_results("gpu_fc.json")
    worst_six, worst_graph = 0.0, 0.0
    for label, fl in zip(data["labels"], data["fl"], strict=True):
        graph = generate_graph(FCConfig.from_label(label))
        six = 6 * graph.batch * graph.total_params / 1e9
        with_dx = (training_flops(graph) + 2 * graph["fc1"].macs) / 1e9
        worst_six = max(worst_six, abs(six / fl - 1))
        worst_graph = max(worst_graph, abs(with_dx / fl - 1))
        assert six == pytest.approx(fl, rel=0.02), label
        assert with_dx == pytest.approx(fl, rel=0.01), label
    # the comparison is not vacuous: the files' rounding and overheads show
    assert worst_six > 0.001 and worst_graph > 0.001


@requires_paradnn
@pytest.mark.parametrize("results, grid", [("gpu_fc.json", "paradnn_fc_gpu.yaml"),
                                           ("tpu_fc.json", "paradnn_fc.yaml")])
def test_fc_grids_are_exactly_the_published_workloads(results, grid):
    data = read_results(results)
    published = set(data["labels"]) | set(data["err_jobs"])
    labels = [cfg.label for cfg in grid_configs(CONFIGS / grid)]
    assert len(labels) == len(set(labels)) == len(published)
    assert set(labels) == published


# ---------------------------------------------------------------------------------------------
# FC structure

def test_fc_net_structure_and_closed_form():
    cfg = FCConfig(layers=3, nodes=16, input_width=10, output_width=4, batch=8)
    g = build_graph(fc_net(cfg))
    assert [layer.type for layer in g.layers] == (
        ["Input"] + ["InnerProduct", "Activation"] * 3 + ["InnerProduct", "Softmax"])
    assert g["data"].output_shape == (8, 10)
    assert g["logits"].output_shape == (8, 4)
    assert g.total_params == cfg.params == 10 * 16 + 16 + 2 * (16 * 16 + 16) + 16 * 4 + 4
    assert g.forward_macs == 8 * (10 * 16 + 2 * 16 * 16 + 16 * 4)
    assert all(g[f"fc{i}"].attrs["bias"] for i in (1, 2, 3))
    assert g.name == "paradnn-fc-layer_3-node_16-input_10-output_4-bs_8"


def test_fc_summary_counts():
    g = generate_graph(FCConfig(layers=4, nodes=512, input_width=2000, output_width=1000,
                                batch=64))
    s = summarize(g)
    assert s["params"] == 2_325_480
    assert s["six_b_params"] == 6 * 64 * 2_325_480
    assert s["training_flops"] == training_flops(g)
    # matmul FLOPs: 2 per MAC forward, backward-filter everywhere, backward-data but for fc1
    macs = g.forward_macs
    matmul = sum(layer.work[p].flops for layer in g.layers if layer.op_class == "matmul"
                 for p in ("forward", "backward_data", "backward_filter"))
    assert matmul == 6 * macs - 2 * g["fc1"].macs


def test_same_config_same_text():
    cfg = FCConfig(layers=8, nodes=128, input_width=2000, output_width=1000, batch=256)
    text = to_json(fc_net(cfg))
    assert to_json(fc_net(cfg)) == text
    assert to_json(generate(FCConfig.from_label(cfg.label))) == text


# ---------------------------------------------------------------------------------------------
# RNN structure

@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_rnn_net_structure_and_params(cell, gates):
    cfg = RNNConfig(cell=cell, layers=3, embedding=20, max_length=7, vocab=50, batch=2)
    g = build_graph(rnn_net(cfg))
    assert [layer.type for layer in g.layers] == (
        ["Input", "Embedding"] + ["Recurrent"] * 3 + ["InnerProduct", "Softmax"])
    assert g["logits"].output_shape == (2, 7, 50)
    assert g["loss"].output_shape == (2, 7, 50)
    expected = 50 * 20 + 3 * gates * (20 * 20 + 20 * 20 + 20) + 20 * 50 + 50
    assert g.total_params == cfg.params == expected
    assert {g[f"{cell}{i}"].attrs["cell"] for i in (1, 2, 3)} == {cell}


# ---------------------------------------------------------------------------------------------
# CNN structure (the zoo's ResNet builder with ParaDnn's TensorFlow details)

def paradnn_resnet_params(block: str, k: int, f: int, image: int, classes: int) -> int:
    """ParaDnn's ResNet parameters counted from resnet_model.py's structure: convolutions without
    bias, BatchNorm scale and shift, a projection in the first block of every group, a 7x7/1
    VALID average pool over the ceil(image/32)-wide last map, then a dense layer with bias."""
    bn = 2
    total = 7 * 7 * 3 * f + bn * f
    c_in = f
    for i in range(4):
        w = f * 2 ** i
        out = w if block == "residual" else 4 * w
        for j in range(k):
            cin = c_in if j == 0 else out
            if block == "residual":
                total += 9 * cin * w + bn * w + 9 * w * w + bn * w
            else:
                total += cin * w + bn * w + 9 * w * w + bn * w + w * out + bn * out
            if j == 0:
                total += cin * out + bn * out
        c_in = out
    side = -(-image // 32) - 7 + 1
    return total + side * side * c_in * classes + classes


@pytest.mark.parametrize("block, k, f, image, classes", [
    ("residual", 1, 16, 200, 500), ("residual", 2, 64, 224, 1000), ("residual", 3, 32, 300, 1500),
    ("bottleneck", 1, 16, 300, 1000), ("bottleneck", 2, 32, 250, 500),
    ("bottleneck", 3, 64, 224, 1000)])
def test_cnn_params_follow_paradnn_resnet(block, k, f, image, classes):
    cfg = CNNConfig(block=block, blocks=k, filters=f, image=image, classes=classes)
    g = build_graph(cnn_net(cfg))
    assert g.total_params == paradnn_resnet_params(block, k, f, image, classes)
    convs = [layer for layer in g.layers if layer.type == "Convolution"]
    projections = [layer for layer in convs if "downsample" in layer.name]
    assert len(projections) == 4
    assert len(convs) == 1 + 4 * k * (2 if block == "residual" else 3) + 4
    assert not any(layer.attrs["bias"] for layer in convs)


def test_cnn_resnet18_like_is_torchvision_plus_group1_projection():
    # residual blocks 2-2-2-2, 64 filters, 224x224, 1000 classes: torchvision's ResNet-18
    # (11,689,512) plus ParaDnn's projection in group 1 (64*64 weights, 2*64 BatchNorm)
    g = generate_graph(CNNConfig(block="residual", blocks=2, filters=64, image=224,
                                 classes=1000))
    assert g.total_params == 11_689_512 + 64 * 64 + 2 * 64
    assert g["avgpool"].output_shape == (1, 1, 1, 512)


def test_cnn_large_image_keeps_a_spatial_head():
    g = generate_graph(CNNConfig(block="bottleneck", blocks=1, filters=16, image=300,
                                 classes=1000))
    assert g["avgpool"].input_shapes == ((1, 10, 10, 512),)
    assert g["avgpool"].output_shape == (1, 4, 4, 512)
    assert g["fc"].attrs["in_features"] == 4 * 4 * 512


def test_cnn_image_too_small_for_the_final_pool():
    CNNConfig(block="residual", blocks=1, filters=16, image=193, classes=10)
    with pytest.raises(SpecError, match="at least 193 pixels") as info:
        CNNConfig(block="residual", blocks=1, filters=16, image=192, classes=10)
    assert info.value.field == "image"


# ---------------------------------------------------------------------------------------------
# Configs and labels

def test_labels_round_trip():
    fc = FCConfig.from_label("layer_64-node_512-input_2000-output_1000-bs_64")
    assert fc == FCConfig(layers=64, nodes=512, input_width=2000, output_width=1000, batch=64)
    assert fc.label == "layer_64-node_512-input_2000-output_1000-bs_64"
    rnn = RNNConfig(cell="gru", layers=5, embedding=500, max_length=50, vocab=9, batch=128)
    assert rnn.label == "gru-layer_5-maxlength_50-vocabsize_9-embeddingsize_500-batchsize_128"
    assert RNNConfig.from_label(rnn.label) == rnn
    cnn = CNNConfig(block="bottleneck", blocks=8, filters=64, image=300, classes=1500, batch=64)
    assert cnn.label == "bottleneck-block_8-filtersz_64-input_300-output_1500-batchsize_64"
    assert CNNConfig.from_label(cnn.label) == cnn


@pytest.mark.parametrize("label, match", [
    ("layer_4-node_x-input_2000-output_1000-bs_64", "does not end in an integer"),
    ("layer_4-node_32-input_2000-bs_64", "missing output_width"),
    ("layer_4-nodes_32-input_2000-output_1000-bs_64", "cannot read 'nodes_32'"),
])
def test_bad_labels(label, match):
    with pytest.raises(SpecError, match=match):
        FCConfig.from_label(label)


def test_config_validation():
    with pytest.raises(SpecError, match="positive integer") as info:
        FCConfig(layers=4, nodes=0, input_width=1, output_width=1)
    assert info.value.field == "nodes"
    with pytest.raises(SpecError, match="positive integer"):
        FCConfig(layers=True, nodes=1, input_width=1, output_width=1)
    with pytest.raises(UnknownNameError, match="valid: gru, lstm, rnn"):
        RNNConfig(cell="transformer", layers=1, embedding=1, max_length=1, vocab=1)
    with pytest.raises(UnknownNameError, match="valid: bottleneck, residual"):
        CNNConfig(block="basic", blocks=1, filters=1, image=224, classes=1)
    with pytest.raises(UnknownNameError, match="valid: batch, input_width, layers"):
        make_config("fc", layers=1, nodes=1, input_width=1, output_width=1, width=3)
    with pytest.raises(SpecError, match="missing output_width"):
        make_config("fc", layers=1, nodes=1, input_width=1)
    with pytest.raises(UnknownNameError, match="valid: cnn, fc, rnn"):
        make_config("mlp")


# ---------------------------------------------------------------------------------------------
# Grids

@pytest.mark.parametrize("grid, model, size", [
    ("paradnn_fc.yaml", "fc", 6 * 9 * 2 * 2 * 9), ("paradnn_fc_gpu.yaml", "fc", 6 * 5 * 9),
    ("paradnn_cnn.yaml", "cnn", 2 * 8 * 3 * 2 * 3 * 5),
    ("paradnn_rnn.yaml", "rnn", 3 * 4 * 3 * 3 * 3 * 5)])
def test_shipped_grids_load_and_build(grid, model, size):
    g = load_grid(CONFIGS / grid)
    configs = g.configs()
    assert g.model == model and len(g) == len(configs) == size
    assert len({c.label for c in configs}) == size
    assert g.citation and "Wang" in g.citation
    for cfg in (configs[0], configs[len(configs) // 2], configs[-1]):  # ends and middle build
        graph = generate_graph(cfg)
        assert graph.batch == cfg.batch and graph.total_params > 0


def test_grid_order_and_ranges():
    g = parse_grid({"model": "fc", "axes": {"layers": [4, 8], "nodes": {"from": 32, "to": 100,
                                                                        "times": 2},
                                            "input_width": 10, "output_width": 3}})
    assert [(c.layers, c.nodes) for c in g] == [(4, 32), (4, 64), (8, 32), (8, 64)]
    assert {c.batch for c in g} == {1}
    assert expand_axis({"from": 10, "to": 90, "step": 40}, source="s", field="f") == (10, 50, 90)
    assert expand_axis({"from": 64, "to": 1024, "times": 2}, source="s", field="f") == (
        64, 128, 256, 512, 1024)


@pytest.mark.parametrize("data, match", [
    ({"model": "fc", "axes": {"layers": 1, "nodes": 1, "input_width": 1}},
     "no axis for output_width"),
    ({"model": "fc", "axes": {"layers": 1, "nodes": 1, "input_width": 1, "output_width": 1,
                              "width": 2}}, "unknown fc hyperparameter 'width'"),
    ({"model": "fc", "axes": {"layers": [4, 0], "nodes": 1, "input_width": 1,
                              "output_width": 1}}, "axes.layers: must be a positive integer"),
    ({"model": "cnn", "axes": {"block": "residual", "blocks": 1, "filters": 1, "image": [100],
                               "classes": 1}}, "at least 193 pixels"),
    ({"model": "fc", "axes": {"layers": {"from": 4, "to": 2, "times": 2}}}, "from <= to"),
    ({"model": "fc", "axes": {"layers": {"from": 4, "to": 8, "times": 2, "step": 1}}},
     "exactly one of"),
    ({"model": "fc", "axes": {"layers": {"from": 4, "to": 8, "by": 2}}}, "unknown range key"),
    ({"model": "fc", "axes": {"layers": []}}, "at least one value"),
    ({"model": "mlp", "axes": {"layers": 1}}, "unknown ParaDnn model family"),
    ({"model": "fc", "axes": {}}, "non-empty mapping"),
    ({"model": "fc", "grid": 1, "axes": {"layers": 1}}, "unknown grid key 'grid'"),
])
def test_bad_grids(data, match):
    with pytest.raises(SpecError, match=match):
        parse_grid(data, source="g.yaml")


def test_grid_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: fc\naxes: {layers: [1, 2\n")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        load_grid(bad)
    bad.write_text("model: fc\naxes:\n  layers: 0\n  nodes: 1\n  input_width: 1\n"
                   "  output_width: 1\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: axes\.layers"):
        load_grid(bad)


def test_config_rows_with_summary():
    grid = Grid(name="g", model="fc", axes=(("layers", (1, 2)), ("nodes", (4,)),
                                            ("input_width", (3,)), ("output_width", (2,))))
    rows = config_rows(grid, summary=True)
    assert [r["params"] for r in rows] == [3 * 4 + 4 + 4 * 2 + 2, 3 * 4 + 4 + 20 + 4 * 2 + 2]
    assert rows[0]["label"] == "layer_1-node_4-input_3-output_2-bs_1"


# ---------------------------------------------------------------------------------------------
# `paleosim generate`

def test_cli_writes_a_loadable_net(tmp_path, capsys):
    out = tmp_path / "net.json"
    rc = main(["generate", "fc", "--layers", "4", "--nodes", "512", "--input", "2000",
               "--output", "1000", "--batch", "64", "--out", str(out)])
    assert rc == 0
    assert capsys.readouterr().out == ""
    g = load_net(out)
    assert (g.total_params, g.batch) == (2_325_480, 64)
    assert out.read_text() == to_json(fc_net(FCConfig(layers=4, nodes=512, input_width=2000,
                                                      output_width=1000, batch=64)))


def test_cli_prints_json_and_summary(capsys):
    assert main(["generate", "rnn", "--cell", "lstm", "--layers", "2", "--embedding", "8",
                 "--max-length", "5", "--vocab", "11"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert build_graph(spec).total_params == RNNConfig(cell="lstm", layers=2, embedding=8,
                                                       max_length=5, vocab=11).params
    assert main(["generate", "cnn", "--block", "residual", "--blocks", "1", "--filters", "8",
                 "--image", "224", "--classes", "10", "--summary", "--format", "json",
                 "--name", "tiny"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["net"] == "tiny"
    assert row["params"] == paradnn_resnet_params("residual", 1, 8, 224, 10)


def test_cli_errors_are_one_line_exit_2(capsys):
    assert main(["generate", "fc", "--layers", "0", "--nodes", "1", "--input", "1",
                 "--output", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers" in err and "got 0" in err
    assert main(["generate", "cnn", "--block", "residual", "--blocks", "1", "--filters", "8",
                 "--image", "100", "--classes", "10"]) == 2
    assert "193" in capsys.readouterr().err


def test_cli_grid_lists_and_writes(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("model: rnn\naxes:\n  cell: [rnn, gru]\n  layers: 1\n  embedding: 4\n"
                    "  max_length: 3\n  vocab: 5\n")
    assert main(["generate", "grid", str(grid), "--summary", "--format", "csv",
                 "--out-dir", str(tmp_path / "nets")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("label,model,cell,layers")
    assert len(lines) == 3
    written = sorted(p.name for p in (tmp_path / "nets").iterdir())
    assert written == ["gru-layer_1-maxlength_3-vocabsize_5-embeddingsize_4-batchsize_1.json",
                       "rnn-layer_1-maxlength_3-vocabsize_5-embeddingsize_4-batchsize_1.json"]
    for name in written:
        assert load_net(tmp_path / "nets" / name).total_params > 0
