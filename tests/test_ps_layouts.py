"""Parameter-server layouts (issue 16): where shards live, how parameters split over them, and
what a worker server does before it pushes, with exact expectations on bytes and spans."""
from __future__ import annotations

import networkx as nx
import pytest

from simulator.errors import SpecError
from simulator.simulate import simulate
from simulator.specs import ParameterServerSpec, SystemSpec, WorkloadSpec
from simulator.strategies.common import CostCache
from simulator.strategies.ps_layout import split_loads

WORKLOAD = WorkloadSpec(net="resnet50", batch=16)
GRAD = sum(CostCache(WORKLOAD, "roofline").grad_bytes())


def node(gpus: int, gdr: bool = False) -> str:
    return (f"{{{{'gpu': 'V100', 'gpus': {gpus}, 'pcie': 'pcie3_x16', 'nics': 1, "
            f"'nic': 'eth10', 'gpudirect_rdma': {gdr}}}}}")


def nic_bytes(result, server) -> float:
    """Bytes that left or entered ``server``'s NIC towards the switch."""
    links = result.links
    mine = links["src"].map(lambda n: n[:2] == ("nic", server)) | links["dst"].map(
        lambda n: n[:2] == ("nic", server))
    fabric = links["src"].map(lambda n: n[0] == "switch") | links["dst"].map(
        lambda n: n[0] == "switch")
    return float(links[mine & fabric]["bytes"].sum())


def span(ops, phase, iteration=1):
    rows = ops[(ops["phase"] == phase) & (ops["iteration"] == iteration)]
    return float(rows["end_s"].max() - rows["start_s"].min())


@pytest.mark.parametrize("aggregation", ["cpu", "gpu", "reduce_scatter"])
@pytest.mark.parametrize("gpus", [1, 2, 4])
def test_local_aggregation_puts_twice_the_gradient_on_each_server_nic(aggregation, gpus):
    """One push and one pull per server, whatever its GPU count: 2 G on each worker server's
    NIC per iteration; without aggregation it is 2 G per GPU."""
    system = SystemSpec(topology=f"single_switch(servers=2, server={node(gpus)}, cpu_hosts=2)")
    for agg, per_server in ((aggregation, 2 * GRAD), ("none", 2 * GRAD * gpus)):
        result = simulate(WORKLOAD, system, ParameterServerSpec(
            workers=2 * gpus, shards=2, aggregation=agg, iterations=1))
        for server in (0, 1):
            assert nic_bytes(result, server) == pytest.approx(per_server, rel=1e-12), agg
        # the shards' hosts receive every push and send every pull
        assert nic_bytes(result, 2) + nic_bytes(result, 3) == pytest.approx(
            2 * per_server, rel=1e-12)


@pytest.mark.parametrize("shards,hosts", [(2, 2), (4, 2), (4, 4), (6, 3)])
def test_shards_on_the_worker_hosts_push_span_closed_form(shards, hosts):
    """k shards on the host CPUs of m one-GPU worker servers (k/m per host), with GPUDirect
    RDMA so a GPU sends from its memory: each GPU sends G/k to every shard, (m-1)/m of it
    through its NIC, and each host receives as much: on a non-blocking switch the push span is
    G (m-1)/m / B plus one path latency (the local G/m crosses PCIe, faster than the NIC)."""
    system = SystemSpec(topology=f"single_switch(servers={hosts}, server={node(1, True)})")
    result = simulate(WORKLOAD, system, ParameterServerSpec(
        workers=hosts, shards=shards, placement="worker_hosts", iterations=2))
    graph = result.cluster.graph
    bw = graph.edges[("nic", 0, 0), ("switch", "tor", 0)]["bandwidth_Bps"]
    path = nx.shortest_path(graph, ("gpu", 0, 0), ("cpu", 1))
    latency = sum(graph.edges[a, b]["latency_s"] for a, b in zip(path, path[1:]))
    expected = GRAD * (hosts - 1) / hosts / bw + latency
    assert span(result.ops, "push") == pytest.approx(expected, rel=1e-9)
    nodes = result.rank_nodes[hosts:hosts + shards]
    assert nodes == [("cpu", j % hosts) for j in range(shards)]


def test_splits_follow_tensorflow_strategies():
    sizes = [10, 0, 40, 30, 20]
    assert split_loads(sizes, 2, "even") == [50, 50]
    assert split_loads(sizes, 2, "round_robin") == [10 + 30, 40 + 20]
    # greedy: 10 -> 0; 40 -> 1; 30 -> 0 (10 < 40); 20 -> 0 (40 = 40: the lowest index)
    assert split_loads(sizes, 2, "by_size") == [60, 40]
    assert split_loads(sizes, 3, "by_size") == [30, 40, 30]


def test_an_uneven_split_loads_the_biggest_shard_longest():
    """VGG-16's fc6 alone holds 103M of its 138M parameters. Two workers push to four
    dedicated shards, each shard's bytes l_j from each worker. Max-min sharing: a worker's NIC
    carries its k flows, which share it equally until the smallest finishes; a shard's NIC
    carries one flow from each of the two workers, so a flow never runs above B/2. Sorting the
    loads, the span is sum_i max(k - i + 1, 2) (l_(i) - l_(i-1)) / B: G/B when the split is
    even, about 1.6 G/B when fc6's shard holds 76% of the bytes."""
    workload = WorkloadSpec(net="vgg16", batch=4)
    system = SystemSpec(topology=f"single_switch(servers=2, server={node(1, True)}, "
                                 "cpu_hosts=4)")
    tensors = CostCache(workload, "roofline").grad_bytes()
    grad = sum(tensors)
    for split in ("even", "round_robin", "by_size"):
        result = simulate(workload, system, ParameterServerSpec(workers=2, shards=4,
                                                                split=split, iterations=2))
        graph = result.cluster.graph
        bw = graph.edges[("nic", 0, 0), ("switch", "tor", 0)]["bandwidth_Bps"]
        path = nx.shortest_path(graph, ("gpu", 0, 0), ("cpu", 2))
        latency = sum(graph.edges[a, b]["latency_s"] for a, b in zip(path, path[1:]))
        loads = sorted(split_loads(tensors, 4, split))
        steps = sum(max(4 - i, 2) * (b - a) for i, (a, b) in enumerate(zip([0.0] + loads,
                                                                            loads)))
        expected = steps / bw + latency
        assert span(result.ops, "push") == pytest.approx(expected, rel=1e-9), split
        assert (steps > 1.5 * grad) == (split != "even"), split


def test_local_aggregation_refuses_asynchronous_modes():
    with pytest.raises(SpecError, match="aggregation"):
        ParameterServerSpec(workers=2, aggregation="cpu", mode="async")
    with pytest.raises(SpecError, match="placement"):
        ParameterServerSpec(workers=2, placement="hosts")
