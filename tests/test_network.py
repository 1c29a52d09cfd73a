"""The flow-level network: exact timings of small scenarios, routing, records and event order."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import simpy

import topologies
from simulator.errors import SpecError, UnknownNameError
from simulator.network import Network, maxmin_rates
from topologies import add_link

GB = 1e9


def hosts(n_links: int, bandwidths, latencies=None) -> nx.Graph:
    """A chain of CPU hosts h0 - h1 - ... joined by the given links (CPUs forward)."""
    g = nx.Graph(name="chain")
    latencies = latencies or [0.0] * n_links
    for i in range(n_links + 1):
        g.add_node(("cpu", i), role="cpu", device="CPU")
    for i in range(n_links):
        add_link(g, ("cpu", i), ("cpu", i + 1), bandwidth_Bps=bandwidths[i],
                 latency_s=latencies[i], kind="ethernet")
    return g


def star(n_leaves: int, bandwidth: float, latency: float = 0.0) -> nx.Graph:
    g = nx.Graph(name="star")
    g.add_node(("switch", "tor", 0), role="switch")
    for i in range(n_leaves):
        g.add_node(("cpu", i), role="cpu", device="CPU")
        add_link(g, ("cpu", i), ("switch", "tor", 0), bandwidth_Bps=bandwidth, latency_s=latency,
                 kind="ethernet")
    return g


def run_flows(graph, flows, **kwargs):
    """Submit ``(start_s, src, dst, nbytes, tag)`` flows; run to the end; return the network."""
    env = simpy.Environment()
    net = Network(env, graph, **kwargs)

    def submit(start, src, dst, nbytes, tag):
        if start:
            yield env.timeout(start)
        yield net.transfer(src, dst, nbytes, tag=tag)

    for start, src, dst, nbytes, tag in flows:
        env.process(submit(start, src, dst, nbytes, tag))
    env.run()
    return net


def ends(net) -> dict:
    table = net.flows_table()
    return dict(zip(table["tag"], table["end_s"]))


def test_one_flow_takes_latency_plus_bytes_over_bandwidth():
    g = hosts(2, [1 * GB, 2 * GB], [1e-6, 2e-6])
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 2), 1e6, "a")])
    (end,) = ends(net).values()
    assert end == pytest.approx(1e6 / GB + 3e-6, rel=1e-12)
    row = net.flows_table().iloc[0]
    assert row["tx_end_s"] == pytest.approx(1e-3, rel=1e-12)
    assert row["hops"] == 2
    assert row["latency_s"] == pytest.approx(3e-6, rel=1e-12)


def test_two_flows_on_one_bottleneck_each_get_half():
    g = star(3, 1 * GB)
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 2), 1e6, "a"),
                        (0, ("cpu", 1), ("cpu", 2), 1e6, "b")])
    assert ends(net) == {"a": pytest.approx(2e-3, rel=1e-12), "b": pytest.approx(2e-3, rel=1e-12)}


def test_textbook_maxmin_three_flows_two_links():
    # Flow a crosses both links; b only the first, c only the second (Bertsekas & Gallager).
    rates = maxmin_rates(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([1.0, 1.0]), 3)
    assert rates.tolist() == [0.5, 0.5, 0.5]
    rates = maxmin_rates(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([10.0, 4.0]), 3)
    assert rates.tolist() == [2.0, 8.0, 2.0]


def test_textbook_example_on_the_network_finishes_at_predicted_instants():
    # links: h0-h1 10 GB/s, h1-h2 4 GB/s. a: h0->h2 (both), b: h0->h1, c: h1->h2.
    g = hosts(2, [10 * GB, 4 * GB])
    size = 8e6
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 2), size, "a"),
                        (0, ("cpu", 0), ("cpu", 1), size, "b"),
                        (0, ("cpu", 1), ("cpu", 2), size, "c")])
    # rates 2, 8, 2 GB/s: b ends at 1 ms; a and c keep 2 GB/s each (link 2 stays the bottleneck)
    assert ends(net) == {"a": pytest.approx(4e-3, rel=1e-12), "b": pytest.approx(1e-3, rel=1e-12),
                         "c": pytest.approx(4e-3, rel=1e-12)}


# p2.8xlarge's layout with GPUDirect RDMA (the catalog's p2.8xlarge stages through host memory)
RDMA_SERVER = ("{'gpu': 'K80', 'gpus': 8, 'pcie': 'pcie3_x16', 'gpus_per_pcie_switch': 2, "
               "'nics': 1, 'nic': 'eth10'}")


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_incast_into_one_nic_gives_each_flow_one_nth(n):
    g = topologies.get(f"single_switch(servers={n}, server={RDMA_SERVER}, cpu_hosts=1)")
    ps = topologies.cpu_hosts(g)[0]
    senders = [gpus[0] for gpus in topologies.servers(g).values()]
    assert len(senders) == n
    env = simpy.Environment()
    net = Network(env, g)
    nic = g.edges[("nic", n, 0), ("switch", "tor", 0)]["bandwidth_Bps"]
    events = [net.transfer(s, ps, 1e8, tag=i) for i, s in enumerate(senders)]
    env.run(simpy.AllOf(env, events))
    table = net.flows_table()
    assert (table["tx_end_s"] == table["tx_end_s"].iloc[0]).all()
    assert table["tx_end_s"].iloc[0] == pytest.approx(n * 1e8 / nic, rel=1e-12)
    links = net.links_table()
    into_ps = links[(links["src"] == ("switch", "tor", 0)) & (links["dst"] == ("nic", n, 0))]
    assert into_ps["bytes"].iloc[0] == pytest.approx(n * 1e8, rel=1e-12)
    assert net.recomputations == 1


def test_late_flow_shares_then_speeds_up():
    g = star(3, 1 * GB)
    # a alone for 1 ms (1e6 B), then shares with b at 0.5 GB/s: a has 1e6 left -> 2 ms more.
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 2), 2e6, "a"),
                        (1e-3, ("cpu", 1), ("cpu", 2), 2e6, "b")])
    # b gets 0.5 GB/s until a ends at 3 ms (1e6 sent), then 1 GB/s: ends at 4 ms.
    assert ends(net) == {"a": pytest.approx(3e-3, rel=1e-12), "b": pytest.approx(4e-3, rel=1e-12)}


def test_zero_bytes_pay_latency_and_local_copies_cost_what_is_configured():
    g = hosts(1, [1 * GB], [5e-6])
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 1), 0, "empty"),
                        (0, ("cpu", 0), ("cpu", 0), 1e6, "local")])
    assert ends(net) == {"empty": pytest.approx(5e-6, rel=1e-12), "local": 0.0}
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 0), 1e6, "local")], local_copy_Bps=2 * GB)
    assert ends(net) == {"local": pytest.approx(5e-4, rel=1e-12)}
    assert net.recomputations == 0


def test_one_recomputation_per_instant_for_finishes_and_the_starts_they_trigger():
    g = star(8, 1 * GB)
    env = simpy.Environment()
    net = Network(env, g)

    def worker(i):
        yield net.transfer(("cpu", i), ("cpu", 7), 1e6, tag=(i, 0))
        yield net.transfer(("cpu", i), ("cpu", 7), 1e6, tag=(i, 1))

    for i in range(4):
        env.process(worker(i))
    env.run()
    # t=0: 4 starts (one update); t=4 ms: 4 finishes and 4 starts (one update); t=8 ms: the
    # last finishes free links nobody else uses (no flow left to re-rate).
    assert net.recomputations == 2
    assert env.now == pytest.approx(8e-3, rel=1e-12)


def test_routes_inside_and_across_dgx_a100_servers():
    g = topologies.get("fat_tree(k=4, server='dgx_a100')")
    net = Network(simpy.Environment(), g)
    assert net.path(("gpu", 0, 0), ("gpu", 0, 5)) == [("gpu", 0, 0), ("nvswitch", 0, 0),
                                                       ("gpu", 0, 5)]
    across = net.path(("gpu", 0, 2), ("gpu", 1, 2))
    # GPUs 2 and 3 share PCIe switch 1 with NICs 2 and 3; GPU 2 is bound to NIC 2 (its nearest,
    # servers.json gpu_nics), as NCCL binds it, so it never takes NIC 3
    assert across[:3] == [("gpu", 0, 2), ("pcie", 0, 1), ("nic", 0, 2)]
    assert across[-3:] == [("nic", 1, 2), ("pcie", 1, 1), ("gpu", 1, 2)]
    roles = [g.nodes[n]["role"] for n in across[3:-3]]
    assert roles == ["switch"] * 5  # edge, agg, core, agg, edge


def test_pcie_gpus_cross_their_switch_and_the_cpu():
    g = topologies.get("server(server='p2.8xlarge')")
    net = Network(simpy.Environment(), g)
    assert net.path(("gpu", 0, 0), ("gpu", 0, 1)) == [("gpu", 0, 0), ("pcie", 0, 0), ("gpu", 0, 1)]
    assert net.path(("gpu", 0, 0), ("gpu", 0, 2)) == [
        ("gpu", 0, 0), ("pcie", 0, 0), ("cpu", 0), ("pcie", 0, 1), ("gpu", 0, 2)]


def test_gpus_never_relay_on_the_dgx1_mesh():
    g = topologies.get("dgx1_p100")  # GPU 0 has no NVLink to GPU 5
    net = Network(simpy.Environment(), g)
    path = net.path(("gpu", 0, 0), ("gpu", 0, 5))
    assert all(g.nodes[n]["role"] != "gpu" for n in path[1:-1])
    assert net.path(("gpu", 0, 0), ("gpu", 0, 4)) == [("gpu", 0, 0), ("gpu", 0, 4)]


def test_ecmp_spreads_tags_over_core_switches_and_is_deterministic():
    g = topologies.get("fat_tree(k=4, server='dgx_a100', routing='ecmp')")
    net = Network(simpy.Environment(), g, seed=3)
    cores = {tuple(net.path(("gpu", 0, 0), ("gpu", 1, 0), tag=t))[5] for t in range(64)}
    assert len(cores) == 4  # (k/2)^2 core switches, all used
    again = Network(simpy.Environment(), g, seed=3)
    assert [net.path(("gpu", 0, 0), ("gpu", 1, 0), tag=t) for t in range(8)] == \
        [again.path(("gpu", 0, 0), ("gpu", 1, 0), tag=t) for t in range(8)]
    single = Network(simpy.Environment(), g, routing="shortest")
    assert len({tuple(single.path(("gpu", 0, 0), ("gpu", 1, 0), tag=t)) for t in range(16)}) == 1


def test_unknown_routing_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="ecmp, shortest"):
        Network(simpy.Environment(), star(2, GB), routing="adaptive")


def test_bad_transfers_raise_clear_errors():
    net = Network(simpy.Environment(), star(2, GB))
    with pytest.raises(SpecError, match="src: no such node"):
        net.transfer(("cpu", 9), ("cpu", 0), 1)
    with pytest.raises(SpecError, match="nbytes"):
        net.transfer(("cpu", 1), ("cpu", 0), -1)
    with pytest.raises(SpecError, match="nbytes"):
        net.transfer(("cpu", 1), ("cpu", 0), math.inf)
    g = nx.Graph(name="relay")
    for i in range(3):
        g.add_node(("gpu", 0, i), role="gpu", device="V100", server=0, index=i)
    add_link(g, ("gpu", 0, 0), ("gpu", 0, 1), bandwidth_Bps=GB, latency_s=0, kind="nvlink")
    add_link(g, ("gpu", 0, 1), ("gpu", 0, 2), bandwidth_Bps=GB, latency_s=0, kind="nvlink")
    net = Network(simpy.Environment(), g)
    with pytest.raises(SpecError, match="no route"):
        net.transfer(("gpu", 0, 0), ("gpu", 0, 2), 1)
    g.graph["gpus_forward"] = True
    assert Network(simpy.Environment(), g).path(("gpu", 0, 0), ("gpu", 0, 2))[1] == ("gpu", 0, 1)


def test_link_records_add_up():
    g = star(4, 1 * GB)
    net = run_flows(g, [(0, ("cpu", 0), ("cpu", 3), 3e6, "a"),
                        (1e-3, ("cpu", 1), ("cpu", 3), 1e6, "b")])
    links = net.links_table()
    down = links[(links["src"] == ("switch", "tor", 0)) & (links["dst"] == ("cpu", 3))].iloc[0]
    assert down["bytes"] == pytest.approx(4e6, rel=1e-12)
    assert down["busy_s"] == pytest.approx(4e-3, rel=1e-12)
    assert down["utilisation"] == pytest.approx(1.0, rel=1e-12)
    series = net.utilisation_table()
    mine = series[(series["src"] == ("switch", "tor", 0)) & (series["dst"] == ("cpu", 3))]
    assert mine["start_s"].tolist() == [0.0]
    assert mine["end_s"].tolist() == pytest.approx([4e-3], rel=1e-12)
    # a alone at 1 GB/s for 1 ms, shares with b at 0.5 GB/s until b ends at 3 ms, then alone
    up = series[series["src"] == ("cpu", 0)]
    assert up["rate_Bps"].tolist() == [1e9, 5e8, 1e9]
    assert up["start_s"].tolist() == pytest.approx([0, 1e-3, 3e-3], rel=1e-12)
    b = series[series["src"] == ("cpu", 1)]
    assert b["rate_Bps"].tolist() == [5e8, 0.0]
    assert b["end_s"].tolist() == pytest.approx([3e-3, 4e-3], rel=1e-12)


def test_flow_event_value_is_the_flow_record():
    env = simpy.Environment()
    net = Network(env, star(2, GB))
    done = net.transfer(("cpu", 0), ("cpu", 1), 10, tag="x")
    flow = env.run(done)
    assert (flow.src, flow.dst, flow.nbytes, flow.tag, flow.end_s) == (
        ("cpu", 0), ("cpu", 1), 10.0, "x", env.now)
    assert net.flows_table(paths=True)["path"].iloc[0] == (
        ("cpu", 0), ("switch", "tor", 0), ("cpu", 1))


def test_without_gpudirect_rdma_a_transfer_is_staged_through_both_hosts():
    # Titan nodes: GPU -> host over PCIe 2.0, host -> host over Gemini, host -> GPU, one after
    # the other, each hop at its own bottleneck and with its own path latency.
    g = topologies.get("torus(dims=(2, 1, 1), server='titan_node')")
    src, dst = ("gpu", 0, 0), ("gpu", 1, 0)
    hops = [(src, ("cpu", 0)), (("cpu", 0), ("cpu", 1)), (("cpu", 1), dst)]
    env = simpy.Environment()
    net = Network(env, g)
    expected = 0.0
    for u, v in hops:
        path = net.path(u, v)
        bottleneck = min(g.edges[a, b]["bandwidth_Bps"] for a, b in zip(path, path[1:]))
        expected += 1e8 / bottleneck + net.path_latency_s(u, v)
    done = net.transfer(src, dst, 1e8)
    env.run(done)
    assert env.now == pytest.approx(expected, rel=1e-12)
    table = net.flows_table()
    assert list(zip(table["src"], table["dst"])) == hops
    # inside a server, and towards a CPU, nothing extra: a direct flow, or one staging hop
    net2 = Network(simpy.Environment(), g)
    net2.transfer(src, ("cpu", 1), 1e8)
    net2.env.run()
    assert list(zip(net2.flows_table()["src"], net2.flows_table()["dst"])) == [
        (src, ("cpu", 0)), (("cpu", 0), ("cpu", 1))]
