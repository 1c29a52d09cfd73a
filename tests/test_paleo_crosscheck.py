"""The two fidelities agree where both are exact: with Paleo's per-layer costs, no overlap, one link
per worker (Paleo's network bandwidth x ppp_comm, no latency) and a binomial-tree all-reduce, the
discrete-event simulator reproduces the Paleo-compatible estimator on Paleo's case studies
(PALEO_COST_MODEL.md section 4)."""
from __future__ import annotations

import networkx as nx
import pytest

import topologies
from simulator.catalog import get_paleo_network
from simulator.paleo import estimate, software_ppp
from simulator.simulate import scaling_table
from simulator.specs import DataParallelSpec, SystemSpec, WorkloadSpec
from conftest import PALEO_NETS, requires_shared

# (net file, catalog device, Paleo network, software, batch, scaling, worker counts)
CASES = {
    "firecaffe_nin_1024": ("nin", "K20X", "infiniband", "caffe", 1024, "strong",
                           [1, 2, 4, 8, 16, 32, 64, 128]),
    "firecaffe_nin_256": ("nin", "K20X", "infiniband", "caffe", 256, "strong", [1, 4, 32, 128]),
    "tf_inception": ("inception_v3", "K40", "ethernet", "tensorflow", 256, "weak",
                     [1, 2, 8, 50, 100]),
    "mxnet_inception": ("inception_v3", "K80-board", "ethernet20", "mxnet", 32, "weak",
                        [1, 4, 32, 128]),
    "owt_data_parallel": ("alex_v2_1gpu", "K20", "pcie2", "cuda-convnet2", 128, "weak",
                          [1, 2, 4, 8]),
}


def paleo_star(path, workers: int, device: str, bandwidth_Bps: float) -> str:
    """Every worker on its own link of Paleo's bandwidth into one switch, no latency."""
    g = nx.Graph(name=f"paleo-star-{workers}")
    g.add_node(("switch", "tor", 0), role="switch")
    for i in range(workers):
        g.add_node(("gpu", i, 0), role="gpu", device=device, server=i, index=0)
        topologies.add_link(g, ("gpu", i, 0), ("switch", "tor", 0), bandwidth_Bps=bandwidth_Bps,
                            latency_s=0.0, kind="link")
    topologies.save(g, path)
    return str(path)


@requires_shared
@pytest.mark.parametrize("case", sorted(CASES))
def test_simulator_equals_paleo_estimator_without_overlap(case, tmp_path):
    net, device, network, software, batch, scaling, workers = CASES[case]
    ppp = software_ppp(software)
    path = str(PALEO_NETS / f"{net}.json")
    paleo = estimate(path, device=device.replace("K80-board", "K80"), network=network,
                     software=software, batch=batch, scaling=scaling, workers=workers)
    bandwidth = get_paleo_network(network).bandwidth_gbit_per_s * 1e9 / 8 * ppp.comm
    topology = paleo_star(tmp_path / "star.json", max(workers), device, bandwidth)
    table, _ = scaling_table(
        WorkloadSpec(net=path, batch=batch),
        SystemSpec(topology=topology, cost_model=f"paleo:{software}"),
        DataParallelSpec(scaling=scaling, overlap=False, algorithm="tree"), workers,
        on_overflow="flag")  # timing only: Paleo does not model memory, and some baselines
    #                          (NiN at batch 1024 on one K20X) would not fit on a real GPU
    expected = (paleo["time_comp_ms"] + paleo["TreeAllReduce_ms"]).to_numpy() / 1e3
    simulated = table["iteration_s"].to_numpy()
    assert list(table["workers"]) == workers
    assert simulated == pytest.approx(expected, rel=0.01)
    assert table["speedup"].to_numpy() == pytest.approx(
        paleo["speedup_TreeAllReduce"].to_numpy(), rel=0.01)
