"""Topology builders, presets, files and validation."""
from __future__ import annotations

import json
import math

import networkx as nx
import pytest

import topologies
from simulator.errors import SpecError, UnknownNameError
from topologies import add_link, validate

ONE_GPU = "{'gpu': 'V100', 'gpus': 1, 'nics': 1, 'nic': 'ib_edr'}"  # GPU and NIC on the CPU
CHIP = "{'gpu': 'TPUv3', 'gpus': 1, 'nics': 0}"
ICI = "{'kind': 'ici', 'bandwidth_GBps': 100, 'latency_us': 1}"
LINKS = topologies.links()
EDR = 100e9 / 8 * LINKS["ib_edr"].payload_efficiency  # what flows see on an EDR link


def pay(name):
    """The payload efficiency of a catalogued link technology (topologies/links.json)."""
    return LINKS[name].payload_efficiency


def count(graph, role):
    return sum(1 for _, r in graph.nodes(data="role") if r == role)


def bw(graph, u, v):
    return graph.edges[u, v]["bandwidth_Bps"]


@pytest.mark.parametrize("name", topologies.names())
def test_every_builder_and_preset_builds_a_valid_graph(name):
    graph = topologies.get(name)
    assert validate(graph) is graph
    assert graph.graph["name"] == name
    for node, data in graph.nodes(data=True):
        if data["role"] == "gpu":
            assert data["device"] in {"K20", "K20X", "K40", "K80", "TitanX", "P100", "V100",
                                      "V100-SXM3", "A100-40GB", "A100-80GB", "H100", "H200",
                                      "TPUv3", "TPUv4"}
            assert node == ("gpu", data["server"], data["index"])
    assert len(topologies.gpus(graph)) == graph.graph["gpus"] == count(graph, "gpu")


def test_fat_tree_counts_and_bandwidths():
    g = topologies.get(f"fat_tree(k=4, server={ONE_GPU})")
    assert count(g, "switch") == 8 + 8 + 4
    assert g.graph["servers"] == 16 and g.number_of_nodes() == 20 + 16 * 3
    assert g.number_of_edges() == 16 + 16 + 16 + 16 * 2
    assert topologies.diameter_hops(g) == 10  # gpu cpu nic edge agg core agg edge nic cpu gpu
    assert topologies.bisection_Bps(g) == pytest.approx(8 * EDR)
    over = topologies.get(f"fat_tree(k=4, oversubscription=2, server={ONE_GPU})")
    assert bw(over, ("switch", "edge", 0), ("switch", "agg", 0)) == pytest.approx(EDR / 2)
    assert bw(over, ("switch", "agg", 0), ("switch", "core", 0)) == EDR
    assert topologies.bisection_Bps(over) == pytest.approx(4 * EDR)


def test_fat_tree_rejects_bad_parameters():
    with pytest.raises(SpecError, match="k must be even"):
        topologies.get("fat_tree(k=5)")
    with pytest.raises(SpecError, match="oversubscription"):
        topologies.get("fat_tree(oversubscription=0.5)")
    with pytest.raises(SpecError, match="do not fit"):
        topologies.get("fat_tree(k=4, servers=3, server='dgx_a100')")


def test_direct_chip_torus_2d():
    g = topologies.get(f"torus(dims=(4, 4), server={CHIP}, link={ICI})")
    assert g.graph["gpus_forward"] is True
    assert g.number_of_edges() == 2 * 16 + 16  # torus links + each chip's PCIe to its host
    assert topologies.diameter_hops(g) == 4
    assert topologies.bisection_Bps(g) == 8 * 100e9  # two cuts of 4 links each


def test_router_torus_3d_with_a_size_two_dimension():
    g = topologies.get("torus(dims=(2, 3, 4))")
    assert count(g, "router") == 24
    router_links = sum(1 for u, v in g.edges if u[0] == v[0] == "router")
    assert router_links == 12 + 24 + 24  # a size-2 dimension has one link per pair
    assert bw(g, ("router", 0, 0, 0), ("router", 0, 0, 1)) == pytest.approx(6.911e9, rel=1e-6)
    with pytest.raises(SpecError, match="dims"):
        topologies.get("torus(dims=(0, 2))")


def test_ring_of_chips_and_ring_of_servers():
    g = topologies.get(f"ring(servers=8, server={CHIP}, link={ICI})")
    assert topologies.bisection_Bps(g) == 2 * 100e9
    assert topologies.diameter_hops(g) == 4
    g = topologies.get("ring(servers=6, server='dgx1_v100')")
    nic_links = sum(1 for u, v in g.edges if u[0] == v[0] == "nic")
    assert nic_links == 4 * 6  # one ring per NIC
    assert g.number_of_edges() == 6 * 32 + 24


def test_leaf_spine_and_rail_optimized():
    g = topologies.get(f"leaf_spine(leaves=3, spines=2, servers_per_leaf=2, server={ONE_GPU})")
    assert count(g, "switch") == 5
    assert g.degree(("switch", "leaf", 2)) == 2 + 2
    assert topologies.bisection_Bps(g) == pytest.approx(3 * EDR)
    g = topologies.get(f"leaf_spine(leaves=2, spines=2, servers_per_leaf=4, server={ONE_GPU})")
    assert topologies.bisection_Bps(g) == pytest.approx(2 * EDR)  # 4 GPUs behind a leaf's 2 uplinks
    g = topologies.get("rail_optimized(servers=4, server='dgx_a100', servers_per_leaf=2)")
    assert count(g, "switch") == 16 + 8
    assert g.has_edge(("nic", 3, 5), ("switch", "rail", 5, 1))
    hdr = 200e9 / 8 * pay("ib_hdr")
    assert bw(g, ("switch", "rail", 0, 0), ("switch", "spine", 0)) == pytest.approx(2 / 8 * hdr)
    assert topologies.bisection_Bps(g) == pytest.approx(16 * hdr)  # non-blocking


def test_dragonfly_merges_repeated_global_links():
    g = topologies.get(f"dragonfly(groups=3, routers_per_group=2, servers_per_router=1, "
                       f"global_links=2, server={ONE_GPU})")
    global_edges = [(u, v) for u, v in g.edges
                    if u[0] == v[0] == "router" and u[1] != v[1]]
    assert len(global_edges) == 3
    assert all(bw(g, u, v) == pytest.approx(2 * EDR) for u, v in global_edges)
    assert sum(1 for u, v in g.edges if u[0] == v[0] == "router" and u[1] == v[1]) == 3


def test_cpu_hosts_are_extra_servers_without_gpus():
    g = topologies.get("single_switch(servers=3, server='p2.8xlarge', cpu_hosts=2)")
    assert topologies.cpu_hosts(g) == [("cpu", 3), ("cpu", 4)]
    assert topologies.cpus(g)[:3] == [("cpu", 0), ("cpu", 1), ("cpu", 2)]
    assert bw(g, ("nic", 4, 0), ("switch", "tor", 0)) == pytest.approx(10e9 / 8 * pay("eth10"))


def test_gpu_rank_order_is_server_major():
    g = topologies.get("single_switch(servers=3, server='pascal4_roce25')")
    assert topologies.gpus(g) == [("gpu", s, i) for s in range(3) for i in range(4)]
    assert topologies.servers(g) == {s: [("gpu", s, i) for i in range(4)] for s in range(3)}


def test_published_system_presets_carry_the_published_link_facts():
    # Edges carry the payload rate: the published line rate x the technology's payload efficiency.
    approx = pytest.approx
    titan = topologies.get("titan_firecaffe")
    assert titan.graph["gpus"] == 128 and titan.graph["gpu_device"] == "K20X"
    assert bw(titan, ("router", 0, 0, 0), ("router", 0, 0, 1)) == approx(6.911e9, rel=1e-6)  # measured
    p2 = topologies.get("aws_p2_8xlarge")
    assert p2.graph["gpus"] == 128
    assert bw(p2, ("nic", 0, 0), ("switch", "tor", 0)) == approx(10e9 / 8 * 1448 / 1538, rel=1e-6)
    p16 = topologies.get("aws_p2_16xlarge")
    assert p16.graph["gpus_per_server"] == 16
    assert bw(p16, ("nic", 0, 0), ("switch", "tor", 0)) == approx(20e9 / 8 * 1448 / 1538, rel=1e-6)
    v100 = topologies.get("dgx1_v100")
    assert bw(v100, ("gpu", 0, 0), ("gpu", 0, 3)) == approx(2 * 20e9)  # a double NVLink2 pair
    for i in range(8):
        nvlink = sum(d["bandwidth_Bps"] for _, _, d in v100.edges(("gpu", 0, i), data=True)
                     if d["kind"] == "nvlink")
        assert nvlink == approx(6 * 20e9)  # 6 x 25 GB/s line rate, 20 GB/s payload (NCCL)
    p100 = topologies.get("dgx1_p100")
    assert all(sum(d["bandwidth_Bps"] for _, _, d in p100.edges(g, data=True)
                   if d["kind"] == "nvlink") == approx(4 * 18e9) for g in topologies.gpus(p100))
    dgx2 = topologies.get("dgx2h")
    assert dgx2.graph["gpus"] == 16 and dgx2.graph["gpu_device"] == "V100-SXM3"
    assert bw(dgx2, ("gpu", 0, 7), ("nvswitch", 0, 0)) == approx(6 * 20e9)
    selene = topologies.get("selene")
    assert selene.graph["gpus"] == 1024 and selene.graph["gpu_device"] == "A100-80GB"
    assert count(selene, "nic") == 8 * 128
    assert bw(selene, ("gpu", 5, 0), ("nvswitch", 5, 0)) == approx(12 * 20e9)
    assert bw(selene, ("nic", 5, 0), ("switch", "edge", 5)) == approx(200e9 / 8 * 0.96)
    h100 = topologies.get("dgx_h100_pod")
    assert bw(h100, ("gpu", 0, 0), ("nvswitch", 0, 0)) == approx(18 * 20.6e9)
    horovod = topologies.get("horovod_roce")
    assert horovod.graph["gpus"] == 128 and horovod.graph["gpus_per_server"] == 4
    assert bw(horovod, ("nic", 0, 0), ("switch", "tor", 0)) == approx(25e9 / 8 * 0.96)
    pcie2 = topologies.get("k20_server")
    assert bw(pcie2, ("gpu", 0, 0), ("pcie", 0, 0)) == approx(8e9 * 0.75)


def test_payload_efficiency_is_validated_and_scales_with_bundles():
    from topologies.catalog import link_from_mapping
    link = link_from_mapping("x", {"kind": "nvlink", "bandwidth_GBps": 25, "latency_us": 0,
                                   "payload_efficiency": 0.8}, source="test")
    assert link.payload_Bps == approx_exact(20e9)
    assert link.scaled(12).payload_Bps == approx_exact(240e9)
    assert link_from_mapping("y", {"bandwidth_GBps": 1, "latency_us": 0},
                             source="test").payload_efficiency == 1.0
    for bad in (0, 1.5, -0.1, "0.8", True):
        with pytest.raises(SpecError, match="payload_efficiency"):
            link_from_mapping("z", {"bandwidth_GBps": 1, "latency_us": 0,
                                    "payload_efficiency": bad}, source="test")


def approx_exact(value):
    return pytest.approx(value, rel=1e-12, abs=0)


def test_get_resolves_presets_with_overrides_and_builder_calls():
    g = topologies.get("selene(k=4)")
    assert g.graph["servers"] == 2 and g.graph["name"] == "selene(k=4)"
    assert topologies.get(" fat_tree( k=4 ) ").graph["servers"] == 2


@pytest.mark.parametrize("spec, error, text", [
    ("nope", UnknownNameError, "valid: aws_p2_16xlarge, aws_p2_8xlarge"),
    ("fat_tree(k=4, colour=1)", SpecError, "no parameter 'colour'; valid: cpu_hosts, k, link"),
    ("fat_tree(4)", SpecError, "by keyword"),
    ("fat_tree(k=x)", SpecError, "literals"),
    ("fat_tree(k=", SpecError, "not a topology name"),
    ("fat_tree(server='dgx9')", UnknownNameError, "unknown server 'dgx9'; valid: dgx1_p100"),
    ("fat_tree(link='ib_xdr')", UnknownNameError, "unknown link 'ib_xdr'"),
    ("ring(servers=1)", SpecError, "servers must be an integer >= 2"),
    ("missing.graphml", SpecError, "no such file"),
])
def test_get_rejects_bad_specs_with_one_clear_message(spec, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")) as info:
        topologies.get(spec)
    assert spec.strip() in str(info.value)


def _two_hosts(**edge):
    g = nx.Graph(name="pair")
    g.add_node("a", role="cpu", device="CPU")
    g.add_node("b", role="cpu", device="CPU")
    g.add_edge("a", "b", **edge)
    return g


@pytest.mark.parametrize("edge, text", [
    ({"bandwidth_Bps": 0.0, "latency_s": 0.0}, "bandwidth_Bps must be a positive"),
    ({"bandwidth_Bps": -5.0, "latency_s": 0.0}, "got -5.0"),
    ({"bandwidth_Bps": math.nan, "latency_s": 0.0}, "bandwidth_Bps"),
    ({"latency_s": 0.0}, "got None"),
    ({"bandwidth_Bps": 1e9, "latency_s": -1.0}, "latency_s"),
    ({"bandwidth_Bps": 1e9}, "latency_s"),
])
def test_validate_rejects_bad_links(edge, text):
    with pytest.raises(SpecError, match=text) as info:
        validate(_two_hosts(**edge), source="pair.json")
    assert str(info.value).startswith("pair.json: edges['a', 'b']")


def test_validate_rejects_bad_graphs():
    g = _two_hosts(bandwidth_Bps=1e9, latency_s=0.0)
    g.add_node("c", role="switch")
    with pytest.raises(SpecError, match="disconnected"):
        validate(g)
    g = _two_hosts(bandwidth_Bps=1e9, latency_s=0.0)
    g.nodes["a"]["role"] = "toaster"
    with pytest.raises(SpecError, match=r"nodes\['a'\].role: unknown role; valid: cpu, gpu"):
        validate(g)
    g = _two_hosts(bandwidth_Bps=1e9, latency_s=0.0)
    del g.nodes["b"]["device"]
    with pytest.raises(SpecError, match="device"):
        validate(g)
    with pytest.raises(SpecError, match="undirected"):
        validate(nx.DiGraph(_two_hosts(bandwidth_Bps=1e9, latency_s=0.0)))
    with pytest.raises(SpecError, match="parallel edges"):
        validate(nx.MultiGraph(_two_hosts(bandwidth_Bps=1e9, latency_s=0.0)))
    with pytest.raises(ValueError, match="two different nodes"):
        add_link(nx.Graph(), "a", "a", bandwidth_Bps=1, latency_s=0, kind="link")


@pytest.mark.parametrize("suffix", [".graphml", ".json"])
def test_files_round_trip(tmp_path, suffix):
    original = topologies.get("fat_tree(k=4, server='dgx1_v100', cpu_hosts=1)")
    path = tmp_path / f"cluster{suffix}"
    topologies.save(original, path)
    loaded = topologies.get(str(path))
    assert set(loaded.nodes) == set(original.nodes)
    assert topologies.gpus(loaded) == topologies.gpus(original)
    assert topologies.cpu_hosts(loaded) == [("cpu", 3)]  # 3 servers x 4 NICs + 1 host <= 16
    for u, v, data in original.edges(data=True):
        assert loaded.edges[u, v] == data
    assert loaded.graph["servers"] == 3 and loaded.graph["gpus_forward"] is False


def test_custom_graphml_with_human_units(tmp_path):
    g = nx.Graph(name="lab")
    g.add_node("gpu0", role="gpu", device="V100")
    g.add_node("gpu1", role="gpu", device="V100")
    g.add_node("sw", role="switch")
    g.add_edge("gpu0", "sw", bandwidth_Gbitps=100, latency_us=2.0, kind="ethernet")
    g.add_edge("gpu1", "sw", bandwidth_GBps=12.5, latency_s=2e-6, kind="ethernet")
    path = tmp_path / "lab.graphml"
    nx.write_graphml(g, path)
    loaded = topologies.load(path)
    assert loaded.edges["gpu0", "sw"] == {"bandwidth_Bps": 12.5e9, "latency_s": 2e-6,
                                          "kind": "ethernet"}
    assert loaded.edges["gpu1", "sw"]["bandwidth_Bps"] == 12.5e9
    assert topologies.gpus(loaded) == ["gpu0", "gpu1"]


def _node_link(edges, nodes=("a", "b")):
    return {"directed": False, "multigraph": False, "graph": {},
            "nodes": [{"id": n, "role": "cpu", "device": "CPU"} for n in nodes], "edges": edges}


@pytest.mark.parametrize("edges, text", [
    ([{"source": "a", "target": "zz", "bandwidth_Bps": 1e9, "latency_s": 0}],
     r"edges\['a', 'zz'\]: edge references a node that is not declared \(got 'zz'\)"),
    ([{"source": "a", "target": "b", "bandwidth_Bps": 0, "latency_s": 0}], "bandwidth_Bps"),
    ([{"source": "a", "target": "b", "bandwidth_Gbitps": "fast", "latency_s": 0}],
     "must be a number"),
    ([], "disconnected"),
])
def test_bad_node_link_files_name_the_file_and_field(tmp_path, edges, text):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_node_link(edges)))
    with pytest.raises(SpecError, match=text) as info:
        topologies.get(str(path))
    assert str(info.value).startswith(str(path))


def test_graphml_edge_to_an_undeclared_node(tmp_path):
    path = tmp_path / "bad.graphml"
    path.write_text("""<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="role" for="node" attr.name="role" attr.type="string"/>
  <key id="bw" for="edge" attr.name="bandwidth_Bps" attr.type="double"/>
  <graph edgedefault="undirected">
    <node id="a"><data key="role">switch</data></node>
    <edge source="a" target="ghost"><data key="bw">1e9</data></edge>
  </graph>
</graphml>
""")
    with pytest.raises(SpecError, match="not declared") as info:
        topologies.load(path)
    assert "ghost" in str(info.value)


def test_server_catalog_rejects_inconsistent_nvlink_pairs():
    bad = "{'gpu': 'V100', 'gpus': 2, 'gpu_interconnect': 'nvlink', 'nvlink': 'nvlink2', " \
          "'nvlinks_per_gpu': 1, 'nvlink_pairs': [[0, 1, 2]], 'nics': 1, 'nic': 'eth10'}"
    with pytest.raises(SpecError, match="more than nvlinks_per_gpu"):
        topologies.get(f"single_switch(servers=1, server={bad})")
