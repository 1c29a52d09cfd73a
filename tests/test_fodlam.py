"""FODLAM re-implementation: the nine published configs, constants, node scaling, our nets."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from simulator.costmodels.accelerator import (
    EIE_POWER_W, AcceleratorCostModel, Cost, FodlamData, eie_cost, eyeriss_cost,
    node_factors, normalise_layer_name, packaged_per_mac_costs, totals,
)
from simulator.errors import SpecError, UnknownNameError
from workloads import load_net

FODLAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "fodlam"
needs_fodlam = pytest.mark.skipif(not FODLAM.is_dir(),
                                  reason=f"FODLAM fixtures not found at {FODLAM}")

# shared/data/fodlam/README.md, "Expected FODLAM outputs": total energy (J), total latency (s),
# and the per-kind columns as printed there (conv energy, conv latency, fc energy, fc latency).
EXPECTED = {
    "vgg16": (1.016350072, 4.309474389, "1.0162585", "4.3094", "9.157180384e-05",
              "7.438888889e-05"),
    "vgg16-after-pool1": (0.7990833, 3.3229744, "0.7989917", "3.3229", "9.1572e-05",
                          "7.4389e-05"),
    # Printed to 5 digits; it is exactly the fc part of the vgg16 row (the same three EIE
    # layers), which the README gives in full precision.
    "vgg16-fconly": (9.157180384e-05, 7.438888889e-05, "0", "0", "9.1572e-05", "7.4389e-05"),
    "vgg16-scale": (1.0048800, 4.2408259, "1.0047547", "4.2407241", "1.2532e-04",
                    "1.0181e-04"),
    "alexnet": (0.0321788, 0.1153757, "0.0320856", "0.1153", "9.3172e-05", "7.5689e-05"),
    "alexnet-scale": (0.0436488, 0.1840242, "0.0435894", "0.1839759", "5.9422e-05",
                      "4.8272e-05"),
    "vgg-m": (0.1035284, 0.4366249, "0.1034307", "0.4365455", "9.7686e-05", "7.9356e-05"),
    "faster-rcnn-vgg16": (1.0355062, 4.3701011, "1.0353846", "4.3700023", "1.2161e-04",
                          "9.8787e-05"),
    "faster-rcnn-vgg-m": (0.1167168, 0.4923460, "0.1166360", "0.4922803", "8.0889e-05",
                          "6.5710e-05"),
}


def _printed_tolerance(text: str) -> float:
    """Half a unit in the last printed digit of ``text`` (absolute)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


@pytest.fixture(scope="module")
def model():
    if not FODLAM.is_dir():
        pytest.skip(f"FODLAM fixtures not found at {FODLAM}")
    return AcceleratorCostModel.from_data(FODLAM)


@needs_fodlam
def test_all_nine_configs_are_the_readme_ones():
    assert sorted(p.stem for p in (FODLAM / "config").glob("*.json")) == sorted(EXPECTED)


@needs_fodlam
@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_config_reproduces_fodlam_totals_to_1e6(model, config):
    path = FODLAM / "config" / f"{config}.json"
    out = totals(model.run_config(json.loads(path.read_text()), source=str(path)))
    energy, latency = EXPECTED[config][:2]
    assert out["total_energy_J"] == pytest.approx(energy, rel=1e-6)
    assert out["total_latency_s"] == pytest.approx(latency, rel=1e-6)


@needs_fodlam
@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_config_per_kind_columns_match_to_printed_digits(model, config):
    path = FODLAM / "config" / f"{config}.json"
    out = totals(model.run_config(json.loads(path.read_text()), source=str(path)))
    keys = ("conv_energy_J", "conv_latency_s", "fc_energy_J", "fc_latency_s")
    for key, text in zip(keys, EXPECTED[config][2:]):
        assert abs(out[key] - float(text)) <= _printed_tolerance(text), key


@needs_fodlam
def test_vgg16_fc_hand_check(model):
    # README: EIE VGG16 FC6+FC7+FC8 = 34.4+8.7+8.4 = 51.5 us; x65/45; x 0.59 (65/45)^2 W.
    latency = 51.5e-6 * 65 / 45
    frame = model.run_config({"net": "VGG16", "layers": ["FC6", "FC7", "FC8"]})
    assert frame["latency_s"].sum() == pytest.approx(latency, rel=1e-12)
    assert frame["energy_J"].sum() == pytest.approx(latency * 0.59 * (65 / 45) ** 2, rel=1e-12)
    assert list(frame["mode"]) == ["lookup"] * 3 and set(frame["kind"]) == {"fc"}


@needs_fodlam
def test_packaged_constants_equal_those_derived_from_the_tables(model):
    derived = model.per_mac
    packaged = packaged_per_mac_costs()
    for kind in ("conv", "fc"):
        assert packaged.per_mac[kind].energy_J == pytest.approx(
            derived.per_mac[kind].energy_J, rel=1e-12)
        assert packaged.per_mac[kind].latency_s == pytest.approx(
            derived.per_mac[kind].latency_s, rel=1e-12)


@needs_fodlam
@pytest.mark.parametrize("net, config", [("vgg16", "vgg16-scale"), ("alexnet", "alexnet-scale")])
def test_our_nets_at_batch_1_match_the_scaled_configs(model, net, config):
    # nets/vgg16.json and nets/alexnet.json (BVLC, grouped) have FODLAM's per-layer MACs.
    graph = load_net(net, batch=1)
    ours = totals(AcceleratorCostModel.packaged().graph_costs(graph))
    path = FODLAM / "config" / f"{config}.json"
    theirs = totals(model.run_config(json.loads(path.read_text())))
    for key in theirs:
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9), key


@needs_fodlam
def test_lookup_errors_name_the_layer_and_valid_ones(model):
    with pytest.raises(UnknownNameError, match="CONV9"):
        model.run_config({"net": "VGG16", "layers": ["CONV9"]}, source="x.json")
    with pytest.raises(SpecError, match="exactly one"):
        model.run_config({"net": "VGG16", "netfile": "alexnet_deploy.json", "layers": []})
    with pytest.raises(UnknownNameError, match="valid: AlexNet, VGG16"):
        model.run_config({"net": "ResNet", "layers": ["CONV1"]})


def test_node_scaling_rules():
    assert node_factors(45, 65) == pytest.approx((65 / 45, (65 / 45) ** 2))
    c = Cost(2.0, 3.0).at_node(65, 130)
    assert c.latency_s == pytest.approx(6.0) and c.energy_J == pytest.approx(2.0 * 8)
    # EIE at its own node is unscaled; at 65 nm it is FODLAM's rule.
    assert eie_cost(10.0, node_nm=45).latency_s == pytest.approx(10e-6)
    assert eie_cost(10.0, node_nm=45).energy_J == pytest.approx(10e-6 * EIE_POWER_W)
    assert eie_cost(10.0).latency_s == pytest.approx(10e-6 * 65 / 45)
    assert eyeriss_cost(76.2, 247).energy_J == pytest.approx(0.0762 * 0.247)
    with pytest.raises(SpecError):
        node_factors(0, 65)


def test_packaged_model_prices_a_net_without_the_data_folder():
    graph = load_net("alexnet", batch=1)
    model = AcceleratorCostModel.packaged()
    frame = model.graph_costs(graph)
    per_mac = packaged_per_mac_costs().per_mac
    conv = frame[frame["kind"] == "conv"]
    assert conv["energy_J"].sum() == pytest.approx(conv["macs"].sum() * per_mac["conv"].energy_J)
    assert set(frame["kind"]) == {"conv", "fc"}
    # Halving the node: latency x0.5, energy x0.125, exactly for every layer.
    half = AcceleratorCostModel.packaged(node_nm=32.5).graph_costs(graph)
    assert half["latency_s"].tolist() == pytest.approx((frame["latency_s"] * 0.5).tolist())
    assert half["energy_J"].tolist() == pytest.approx((frame["energy_J"] * 0.125).tolist())
    with pytest.raises(SpecError, match="published tables"):
        model.run_config({"net": "VGG16", "layers": ["FC6"]})


def test_layer_names_are_normalised_like_fodlam():
    assert normalise_layer_name("conv1_1") == "CONV1-1"
    assert normalise_layer_name("rpn_conv/3x3") == "RPN-CONV/3X3"


def test_reading_a_folder_without_tables_is_a_clear_error(tmp_path):
    with pytest.raises(SpecError, match="not a FODLAM data folder"):
        FodlamData.read(tmp_path)
    assert math.isfinite(packaged_per_mac_costs().per_mac["fc"].energy_J)
