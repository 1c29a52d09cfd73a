"""The shipped ``nets/*.json`` files: each zoo net is shipped, equals its builder's output byte for
byte (regenerate with ``python3 experiments/make_nets.py``), and loads by name."""
from __future__ import annotations

import pytest

from workloads import build_graph, load_net, net_path, shipped_nets
from workloads.spec import read_json
from workloads.zoo import NETS, build, to_json


@pytest.mark.parametrize("name", sorted(NETS))
def test_zoo_net_is_shipped_and_equals_its_builder(name):
    assert name in shipped_nets()
    path = net_path(name)
    assert path.read_text(encoding="utf-8") == to_json(build(name)), (
        f"{path} differs from workloads.zoo's builder: run python3 experiments/make_nets.py")


@pytest.mark.parametrize("name", sorted(NETS))
def test_zoo_net_loads_by_name(name):
    g = load_net(name)
    expected = build_graph(build(name))
    assert g.name == name
    assert (g.batch, g.total_params, g.forward_macs) == (expected.batch, expected.total_params,
                                                         expected.forward_macs)
    assert [layer.name for layer in g.layers] == [layer.name for layer in expected.layers]
    assert load_net(name, batch=1).forward_macs * g.batch == g.forward_macs


@pytest.mark.parametrize("name", shipped_nets())
def test_every_shipped_net_loads(name):
    g = load_net(name)
    assert g.total_params > 0 and g.forward_macs > 0
    assert read_json(net_path(name))["layers"]
