"""The profiled cost model: exact lookup, interpolation in batch and in MACs, fallback, CSV."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from simulator.catalog import get_device
from simulator.costmodel import RooflineCostModel, get_cost_model
from simulator.costmodels.profiled import (
    Profile, ProfiledCostModel, layer_signature, profile_frame,
)
from simulator.errors import SpecError, UnknownNameError
from workloads import build_graph
from workloads.ops import PHASES

V100 = get_device("V100")
ROOF = RooflineCostModel()


def _graph(batch: int, channels: int = 16):
    return build_graph({"name": "tiny", "layers": {
        "data": {"type": "Input", "parents": [], "tensor": [batch, 32, 32, 3]},
        "conv1": {"type": "Convolution", "parents": ["data"], "filter": [3, 3, 3, channels],
                  "strides": [1, 1, 1, 1], "padding": "SAME"},
        "pool1": {"type": "Pooling", "parents": ["conv1"], "ksize": [1, 2, 2, 1],
                  "strides": [1, 2, 2, 1], "padding": "VALID"},
        "fc": {"type": "InnerProduct", "parents": ["pool1"], "num_outputs": 10},
    }}, source="tiny.json")


def _times(graph, scale: float = 1.0):
    """Roofline times of every layer phase, times ``scale``: a stand-in for measurements."""
    return {l.name: {p: scale * ROOF.phase_time_s(l, p, V100) for p in PHASES}
            for l in graph.layers}


@pytest.fixture(scope="module")
def model():
    frame = pd.concat([profile_frame(_graph(b), "V100", _times(_graph(b), 2.0))
                       for b in (4, 8)], ignore_index=True)
    return ProfiledCostModel(profile=Profile.from_frame(frame, source="p.csv"))


def test_signature_is_batch_independent_and_names_the_geometry():
    a, b = _graph(4)["conv1"], _graph(64)["conv1"]
    assert layer_signature(a) == layer_signature(b) == \
        "Convolution|in=32x32x3|out=32x32x16|k=3x3|s=1x1|p=1x1|g=1|d=1x1"
    assert layer_signature(_graph(4)["fc"]) == "InnerProduct|in=16x16x16|out=10"


def test_exact_lookup_returns_the_measurement(model):
    g = _graph(4)
    for layer in g.layers:
        for phase in PHASES:
            seconds, how = model.lookup(layer, phase, V100)
            assert how == "exact"
            assert seconds == 2.0 * ROOF.phase_time_s(layer, phase, V100)


def test_batch_between_measurements_interpolates_linearly(model):
    g4, g8, g6 = _graph(4), _graph(8), _graph(6)
    for name in ("conv1", "pool1", "fc"):
        t4 = 2.0 * ROOF.phase_time_s(g4[name], "forward", V100)
        t8 = 2.0 * ROOF.phase_time_s(g8[name], "forward", V100)
        seconds, how = model.lookup(g6[name], "forward", V100)
        assert how == "batch-interpolated"
        assert seconds == pytest.approx(t4 + 0.5 * (t8 - t4), rel=1e-12)


def test_other_shapes_interpolate_log_log_in_macs(model):
    # 12 output channels at batch 8: MACs between conv1 at batch 4 and batch 8 (16 channels).
    layer = _graph(8, channels=12)["conv1"]
    lo, hi = _graph(4)["conv1"], _graph(8)["conv1"]
    assert lo.macs < layer.macs < hi.macs
    t0 = 2.0 * ROOF.phase_time_s(lo, "forward", V100)
    t1 = 2.0 * ROOF.phase_time_s(hi, "forward", V100)
    frac = math.log(layer.macs / lo.macs) / math.log(hi.macs / lo.macs)
    seconds, how = model.lookup(layer, "forward", V100)
    assert how == "macs-interpolated"
    assert seconds == pytest.approx(math.exp(math.log(t0) + frac * math.log(t1 / t0)),
                                    rel=1e-12)


def test_uncovered_layers_fall_back_or_fail(model):
    g = _graph(16)  # beyond the measured batches: nothing is extrapolated
    seconds, how = model.lookup(g["pool1"], "forward", V100)
    assert how == "fallback" and seconds == ROOF.phase_time_s(g["pool1"], "forward", V100)
    assert model.lookup(_graph(4)["conv1"], "forward", get_device("A100"))[1] == "fallback"
    strict = ProfiledCostModel(profile=model.profile, fallback=None)
    with pytest.raises(SpecError, match="p.csv: .*'pool1' .*batch 16.* not covered"):
        strict.phase_time_s(g["pool1"], "forward", V100)
    coverage = model.coverage(_graph(6), V100)
    assert set(coverage["how"]) == {"batch-interpolated"} and len(coverage) == 4 * 3


def test_csv_round_trip_and_registry_name(model, tmp_path):
    path = tmp_path / "profile.csv"
    frame = profile_frame(_graph(4), "A100", _times(_graph(4)))  # an alias in the catalog
    frame.to_csv(path, index=False)
    cm = get_cost_model(f"profiled:{path}")
    assert isinstance(cm, ProfiledCostModel) and cm.name == f"profiled:{path}"
    a100 = get_device("A100")  # resolves to the A100-80GB entry
    layer = _graph(4)["fc"]
    assert cm.lookup(layer, "backward_filter", a100) == \
        (ROOF.phase_time_s(layer, "backward_filter", V100), "exact")
    assert cm.update_time_s(100, a100) == ROOF.update_time_s(100, a100)


def test_bad_profiles_are_clear_errors(tmp_path):
    good = profile_frame(_graph(4), "V100", _times(_graph(4)))
    with pytest.raises(SpecError, match="missing columns: time_s"):
        Profile.from_frame(good.drop(columns="time_s"))
    bad = good.copy()
    bad.loc[0, "phase"] = "sideways"
    with pytest.raises(UnknownNameError, match="line 2.phase"):
        Profile.from_frame(bad)
    bad = good.copy()
    bad.loc[1, "time_s"] = -1.0
    with pytest.raises(SpecError, match="line 3.time_s"):
        Profile.from_frame(bad)
    with pytest.raises(SpecError, match="duplicate measurement"):
        Profile.from_frame(pd.concat([good, good.iloc[:1]]))
    with pytest.raises(SpecError, match="no such file"):
        Profile.read_csv(tmp_path / "none.csv")
