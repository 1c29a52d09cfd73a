"""The collective planner on the shipped presets: bytes take the paths NCCL's take.

Closed forms: a ring all-reduce of S bytes over n GPUs on servers of m GPUs takes
2(n-1)/n S / B + 2(n-1) alpha, where alpha is its slowest hop's latency and B its bus bandwidth:
the smaller of the servers' NIC bandwidth (NICs x payload rate) and the GPU interconnect
(per-GPU NVLink/PCIe payload rate), the latter times m/(m-1) across servers because each
channel crosses m-1 GPU-to-GPU links per server and enters through a NIC.
"""
from __future__ import annotations

import pytest
import simpy

import topologies
from simulator.engine import execute
from simulator.errors import SpecError
from simulator.network import Network
from simulator.planner import CollectivePlanner
from simulator.taskgraph import TaskGraph
from topologies.catalog import servers as server_types

S = 4e9
MULTI_GPU = sorted(n for n, s in server_types().items() if s.gpus > 1 and s.nics > 0)


def run(graph, n=None, algorithm="ring", collective="allreduce", nbytes=S, seed=0, **kw):
    nodes = topologies.gpus(graph)[:n]
    tg = TaskGraph(ranks=len(nodes))
    tg.collective(collective, range(len(nodes)), nbytes, algorithm=algorithm)
    result, net = execute(tg, network_factory=lambda env: Network(env, graph, seed=seed, **kw),
                          rank_nodes=nodes)
    return result, net, tuple(nodes)


def bus_bound_Bps(name: str, servers: int) -> float:
    s = server_types()[name]
    local = (s.link(s.pcie).payload_Bps if s.gpu_interconnect == "pcie"
             else s.nvlinks_per_gpu * s.link(s.nvlink).payload_Bps)
    if servers > 1:
        local *= s.gpus / (s.gpus - 1)
    return min(local, s.nics * s.link(s.nic).payload_Bps)


def fabrics(name: str, servers: int) -> dict[str, str]:
    ports = servers * server_types()[name].nics
    k = 4
    while k ** 3 // 4 < ports:
        k *= 2
    ethernet = server_types()[name].link(server_types()[name].nic).kind == "ethernet"
    # Ethernet fabrics hash connections (ECMP) and their collisions are real; the bound is for
    # deterministic routing, which test_ecmp_collisions_on_ethernet_fat_trees_are_real covers
    multipath = ", routing='dmodk'" if ethernet else ""
    return {"single_switch": f"single_switch(servers={servers}, server='{name}')",
            "fat_tree": f"fat_tree(k={k}, server='{name}', servers={servers}{multipath})",
            "rail_optimized": f"rail_optimized(servers={servers}, server='{name}')",
            "selene": f"selene(servers={servers}, server='{name}'{multipath})"}


@pytest.mark.parametrize("servers", [2, 4, 8, 16])
@pytest.mark.parametrize("name", MULTI_GPU)
def test_large_ring_allreduce_reaches_the_closed_form_bound(name, servers):
    bound = bus_bound_Bps(name, servers)
    for fabric, spec in fabrics(name, servers).items():
        graph = topologies.get(spec)
        for seed in (0, 1, 2):
            result, net, nodes = run(graph, seed=seed)
            n = len(nodes)
            plan = CollectivePlanner(graph, network=net).plan("allreduce", "ring", nodes)
            hop = max(float(net.links.latency_s[net.route_links(h.src, h.dst, via=h.via)].sum())
                      for g in plan.phases[0].groups for h in g.hops)
            expected = 2 * (n - 1) / n * S / bound + 2 * (n - 1) * hop
            assert result.end_s == pytest.approx(expected, rel=0.02), (fabric, seed)


def test_ecmp_collisions_on_ethernet_fat_trees_are_real():
    """RoCE/Ethernet switches hash each connection onto one equal-cost path: rail-aligned rings
    still collide on uplinks (for every hash seed here); deterministic destination routing on
    the same fabric avoids it."""
    spec = "fat_tree(k=8, server='dgx_a100_100g', servers=4{})"
    assert topologies.get(spec.format("")).graph["routing"] == "ecmp"
    ecmp = [run(topologies.get(spec.format("")), seed=seed)[0].end_s for seed in range(4)]
    dmodk = run(topologies.get(spec.format(", routing='dmodk'")))[0].end_s
    assert min(ecmp) > 1.2 * dmodk


@pytest.mark.parametrize("name, channels, busbw", [("dgx1_v100", 6, 120e9),
                                                   ("dgx1_p100", 4, 72e9)])
def test_dgx1_rings_follow_nvlink_only(name, channels, busbw):
    """On the hybrid cube mesh the rank order 0..7 would cross PCIe and the CPU at 3->4 and
    7->0; the planner's rings are Hamiltonian cycles of NVLink, packed at one speed (each link
    carries one ring each way): 6 rings of 20 GB/s on the V100's six NVLink2, 4 of 18 GB/s on
    the P100's four NVLink1."""
    graph = topologies.get(name)
    result, net, nodes = run(graph, nbytes=1e9)
    plan = CollectivePlanner(graph, network=net).plan("allreduce", "ring", nodes)
    assert plan.channels == channels
    for group in plan.phases[0].groups:
        for hop in group.hops:
            path = net.path(hop.src, hop.dst, via=hop.via)
            assert [graph.edges[a, b]["kind"] for a, b in zip(path, path[1:])] == ["nvlink"]
    hop_s = 0.5e-6
    t_bw = result.end_s - 2 * 7 * hop_s
    assert 1e9 / t_bw * 2 * 7 / 8 == pytest.approx(busbw, rel=1e-9)


def test_rings_stay_on_their_rail():
    """Channel c enters and leaves every server through NIC c (the GPU bound to it enters, its
    PCIe-switch neighbour leaves through the same NIC), so on a rail-optimised fabric no byte of
    a ring climbs to a spine."""
    graph = topologies.get("rail_optimized(servers=4, server='dgx_a100', servers_per_leaf=4)")
    result, net, nodes = run(graph, nbytes=1e9)
    plan = CollectivePlanner(graph, network=net).plan("allreduce", "ring", nodes)
    assert plan.channels == 8
    for group in plan.phases[0].groups:
        inter = [h for h in group.hops if h.src[1] != h.dst[1]]
        assert len(inter) == 4
        rails = {(h.via[0][2], h.via[1][2]) for h in inter}
        assert rails == {(group.channel, group.channel)}
    links = net.links_table()
    spine = links[links["dst"].map(lambda n: n[:2] == ("switch", "spine"))]
    assert spine["bytes"].sum() == 0
    assert links["bytes"].sum() > 0


def test_cross_nic_always_crosses_rails_and_never_refuses_where_it_must():
    graph = topologies.get("rail_optimized(servers=2, server='dgx_a100')")
    nodes = topologies.gpus(graph)
    tg = TaskGraph(ranks=16)
    tg.collective("allreduce", range(16), 1e9, algorithm="ring")
    _, net = execute(tg, network_factory=lambda env: Network(env, graph), rank_nodes=nodes,
                     cross_nic="always")
    links = net.links_table()
    assert links[links["dst"].map(lambda n: n[:2] == ("switch", "spine"))]["bytes"].sum() > 0
    # one GPU of each PCIe switch: no second member reaches its NIC without the CPU
    half = tuple(n for n in nodes if n[2] % 2 == 0)
    planner = CollectivePlanner(graph, cross_nic="never")
    with pytest.raises(SpecError, match="cross_nic 'never'"):
        planner.plan("allreduce", "ring", half)
    assert CollectivePlanner(graph).plan("allreduce", "ring", half).channels == 4


@pytest.mark.parametrize("name", MULTI_GPU)
def test_every_gpu_leaves_its_server_through_its_own_nic(name):
    spec = server_types()[name]
    graph = topologies.get(f"single_switch(servers=2, server='{name}')")
    net = Network(simpy.Environment(), graph)
    for i in range(spec.gpus):
        path = net.path(("gpu", 0, i), ("gpu", 1, i))
        nics = [n for n in path if n[0] == "nic"]
        assert nics == [("nic", 0, spec.gpu_nics[i]), ("nic", 1, spec.gpu_nics[i])]


def test_identical_iterations_take_identical_times():
    """The quickstart's 64-GPU 4:1 fat tree: every connection keeps its path, so five identical
    iterations take the same time (they took 16.25 to 18.30 ms when paths were re-hashed per
    iteration)."""
    from simulator.simulate import simulate
    from simulator.specs import DataParallelSpec, SystemSpec, WorkloadSpec
    workload = WorkloadSpec(net="resnet50", batch=32, dtype="fp16", optimizer="momentum")
    system = SystemSpec(topology="fat_tree(k=16, oversubscription=4, server='dgx_a100', "
                                 "servers={servers})", gpus_per_server=8)
    result = simulate(workload, system, DataParallelSpec(workers=64, iterations=5))
    durations = result.iterations["duration_s"].tolist()[1:]
    # equal but for the rounding of absolute times (ulps of a 70 ms clock)
    assert max(durations) - min(durations) <= 1e-12 * max(durations)
    for seed in (1, 2):
        again = simulate(workload, system, DataParallelSpec(workers=64, iterations=5), seed=seed)
        assert again.metrics["iteration_s"] == result.metrics["iteration_s"]


def test_routing_is_the_fabrics_policy():
    assert topologies.get("selene(servers=2)").graph["routing"] == "dmodk"
    assert topologies.get("horovod_roce").graph["routing"] == "ecmp"
    assert topologies.get("titan_firecaffe").graph["routing"] == "shortest"
    assert topologies.get("fat_tree(k=4, server='dgx_a100', routing='ecmp')").graph[
        "routing"] == "ecmp"
    with pytest.raises(SpecError, match="routing must be one of"):
        topologies.get("fat_tree(k=4, routing='adaptive')")


def test_dmodk_sends_each_destination_down_one_tree():
    """Destination-based routing: every flow to one NIC takes the same last hops, whatever its
    source or connection, and a shift permutation of a full fat tree crosses each uplink once."""
    graph = topologies.get("fat_tree(k=4, server='dgx1_v100', servers=4)")
    net = Network(simpy.Environment(), graph)
    dst = ("nic", 3, 1)
    tails = {tuple(net.path(("nic", s, j), dst, key=k)[-3:]) for s in range(3) for j in range(4)
             for k in range(3)}
    assert len(tails) == 1
    nics = sorted(n for n in graph if n[0] == "nic")
    used: dict = {}
    for i, src in enumerate(nics):
        path = net.path(src, nics[(i + 5) % len(nics)])
        for a, b in zip(path, path[1:]):
            if a[0] == "switch" and b[0] == "switch":
                used[(a, b)] = used.get((a, b), 0) + 1
    assert max(used.values()) == 1


def test_a_coupled_ring_cannot_run_ahead_of_its_slowest_step():
    """Contention moving from one ring link to another during the collective: the lock-step
    ring runs at its slowest hop's rate throughout, (X + 2Y)/B; separate flows per hop would
    finish at (X + Y)/B, each hop slowed only once."""
    import networkx as nx
    from topologies import add_link
    b = 1e9
    g = nx.Graph(name="ring3", gpus_forward=True)
    for i in range(3):
        g.add_node(("gpu", i, 0), role="gpu", device="V100", server=i, index=0)
    for i in range(3):
        add_link(g, ("gpu", i, 0), ("gpu", (i + 1) % 3, 0), bandwidth_Bps=b, latency_s=0.0,
                 kind="link")
    s, y = 3e9, 0.5e9
    x = 2 * 2 / 3 * s  # bytes of each ring hop
    tg = TaskGraph(ranks=3)
    tg.collective("allreduce", range(3), s, algorithm="ring")
    first = tg.transfer(0, 1, y, stream="other")
    tg.transfer(1, 2, y, deps=(first,), stream="other")
    result, _ = execute(tg, network_factory=lambda env: Network(env, g),
                        rank_nodes=[("gpu", i, 0) for i in range(3)])
    ends = [r[9] for r in result.rows if r[3] == "collective"]
    assert max(ends) == pytest.approx((x + 2 * y) / b, rel=1e-12)
    assert max(ends) > (x + y) / b


def test_nvls_inside_an_h100_server():
    """NVLink SHARP: each GPU sends and receives S (n+1)/n through the switch at the measured
    multimem efficiency e: busbw = 2 e B (n-1)/(n+1). ``auto`` picks the ring up to 4 GPUs and
    NVLS above, as measured on 8 x H100 (NVIDIA/nccl issue 1455)."""
    graph = topologies.get("server(server='dgx_h100')")
    e = graph.nodes[("nvswitch", 0, 0)]["nvls_efficiency"]
    link = graph.edges[("gpu", 0, 0), ("nvswitch", 0, 0)]["bandwidth_Bps"]
    for n in (5, 8):
        result, net, nodes = run(graph, n=n, algorithm="nvls", nbytes=8e9)
        t = result.end_s - 2 * 0.5e-6  # two steps of one NVLink hop
        assert 8e9 / t * 2 * (n - 1) / n == pytest.approx(2 * e * link * (n - 1) / (n + 1),
                                                          rel=1e-9)
    chosen = {}
    for n in (2, 4, 5, 8):
        _, net, nodes = run(graph, n=n, nbytes=1e6)
        chosen[n] = CollectivePlanner(graph, network=net).plan("allreduce", "auto", nodes,
                                                               8e9).algorithm
    assert chosen == {2: "ring", 4: "ring", 5: "nvls", 8: "nvls"}
    with pytest.raises(SpecError, match="NVLS"):
        run(topologies.get("server(server='dgx_a100')"), algorithm="nvls")


def test_auto_allreduce_across_servers_by_message_size():
    graph = topologies.get("selene(servers=16)")
    _, net, nodes = run(graph, nbytes=1e3)
    planner = CollectivePlanner(graph, network=net)
    assert planner.plan("allreduce", "auto", nodes, 1e9).algorithm == "ring"
    assert planner.plan("allreduce", "auto", nodes, 64e3).algorithm == "double_binary_tree"


def test_hierarchical_shards_cross_servers_on_every_nic_three_phase_on_one():
    """Horovod's hierarchical all-reduce: each of the m GPUs of a server all-reduces its 1/m
    shard across servers through its own NIC; Goyal et al.'s three-phase scheme sends the whole
    buffer through the local root's NIC."""
    graph = topologies.get("single_switch(servers=2, server='dgx_a100')")
    for algorithm, per_nic in (("hierarchical", [S / 8] * 8), ("three_phase", [S] + [0] * 7)):
        _, net, _ = run(graph, algorithm=algorithm)
        links = net.links_table()
        out = links[links["src"].map(lambda n: n[:2] == ("nic", 0))
                    & links["dst"].map(lambda n: n[0] == "switch")].sort_values("src")
        assert out["bytes"].tolist() == pytest.approx(per_nic, rel=1e-12), algorithm


def test_pxn_keeps_alltoall_on_its_rails():
    graph = topologies.get("rail_optimized(servers=2, server='dgx_h100')")
    spine = {}
    for algorithm in ("direct", "pxn"):
        _, net, _ = run(graph, algorithm=algorithm, collective="alltoall", nbytes=1e9)
        links = net.links_table()
        spine[algorithm] = links[links["dst"].map(
            lambda n: n[:2] == ("switch", "spine"))]["bytes"].sum()
    assert spine["pxn"] == 0 and spine["direct"] > 0


def test_the_readme_says_how_each_preset_routes():
    from pathlib import Path
    from topologies.catalog import presets
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    listed = {}
    for line in readme.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) == 2 and parts[0].strip("`") in ("dmodk", "ecmp", "shortest"):
            for name in parts[1].split(","):
                listed[name.strip()] = parts[0].strip("`")
    assert listed == {name: topologies.get(name).graph["routing"] for name in presets()}


# --- regressions from review -------------------------------------------------------------------

def test_dmodk_spreads_a_rail_over_the_spines_of_a_multi_group_fabric():
    """Ports are numbered leaf by leaf, so four transfers from group 0 to group 1 on one rail
    climb to four different spines, each at its uplink's full rate (half a NIC's here: the
    fabric is non-blocking in aggregate, 4 NICs a leaf over 8 half-rate uplinks, and one flow
    takes one path)."""
    graph = topologies.get("rail_optimized(servers=8, server='dgx_a100', servers_per_leaf=4)")
    env = simpy.Environment()
    net = Network(env, graph)
    spines = {tuple(n for n in net.path(("gpu", s, 0), ("gpu", s + 4, 0)) if n[1] == "spine")
              for s in range(4)}
    assert len(spines) == 4
    done = [net.transfer(("gpu", s, 0), ("gpu", s + 4, 0), 1e9) for s in range(4)]
    env.run(simpy.AllOf(env, done))
    uplink = graph.edges[("switch", "rail", 0, 0), ("switch", "spine", 0)]["bandwidth_Bps"]
    assert env.now == pytest.approx(1e9 / uplink, rel=1e-3)


def test_ecmp_hashes_the_flows_endpoints_not_the_switches_between_them():
    graph = topologies.get("fat_tree(k=8, server='pascal4_roce25', routing='ecmp')")
    net = Network(simpy.Environment(), graph)
    paths = {tuple(net.path(("gpu", s, i), ("gpu", 12, 0), key=("p2p", "push0")))[3:-3]
             for s in range(4) for i in range(4)}
    assert len(paths) > 4


def test_no_server_relays_a_parameter_servers_traffic():
    graph = topologies.get("rail_optimized(servers=2, server='dgx_a100', cpu_hosts=1)")
    net = Network(simpy.Environment(), graph)
    for path in (net.path(("gpu", 1, 3), ("cpu", 2)), net.path(("cpu", 2), ("gpu", 1, 3))):
        assert len(path) == len(set(path))
        assert all(graph.nodes[n].get("server") in (None, 1, 2) for n in path)


def test_a_nic_cabled_to_nics_does_not_bounce_back():
    graph = topologies.get("ring(servers=2, server='dgx1_v100')")
    path = Network(simpy.Environment(), graph).path(("gpu", 0, 0), ("gpu", 1, 3))
    assert len(path) == len(set(path))


def test_a_staged_transfer_pays_its_whole_paths_latency():
    graph = topologies.get("aws_p2_16xlarge")
    env = simpy.Environment()
    net = Network(env, graph)
    staged = env.run(net.transfer(("gpu", 0, 0), ("gpu", 1, 0), 1e6))
    assert len(staged.flows) == 3
    assert staged.latency_s == pytest.approx(sum(f.latency_s for f in staged.flows))
    assert staged.latency_s > staged.flows[-1].latency_s


def test_pxn_sends_same_rail_traffic_directly():
    graph = topologies.get("single_switch(servers=2, server='hgx_a100_4nic')")
    nodes = tuple(topologies.gpus(graph))
    plan = CollectivePlanner(graph).plan("alltoall", "pxn", nodes)
    hop = next(h for g in plan.phases[0].groups for h in g.hops
               if h.src == ("gpu", 0, 1) and h.dst == ("gpu", 1, 0))
    assert ("gpu", 0, 0) not in (hop.via or ())


def test_duplicate_members_and_a_rail_only_fabric():
    graph = topologies.get("dgx1_v100")
    g = (("gpu", 0, 0), ("gpu", 0, 1), ("gpu", 0, 0))
    with pytest.raises(SpecError, match="distinct nodes"):
        CollectivePlanner(graph).plan("allreduce", "hierarchical", g)
    rails = topologies.get("rail_optimized(servers=2, server='dgx_a100')").copy()
    rails.remove_nodes_from([n for n in list(rails) if n[:2] == ("switch", "spine")])
    path = Network(simpy.Environment(), rails).path(("gpu", 0, 0), ("gpu", 1, 3))
    assert path[0] == ("gpu", 0, 0) and path[-1] == ("gpu", 1, 3)


# --- two-level schemes with a chosen inter-server algorithm (issue 16) -------------------------

@pytest.mark.parametrize("servers", [2, 4, 8])
def test_hierarchical_with_halving_doubling_across_servers_matches_its_closed_form(servers):
    """On a star of s servers of m GPUs, each GPU on its own NIC: reduce-scatter on the NVLink
    rings ((m-1)/m S / B_gpu + (m-1) alpha_gpu), then every column halves and doubles its S/m
    across servers (log2 s steps each way, step k moving S/m/2^k through each member's NIC:
    2 (s-1)/s S/m / B_hop + 2 log2(s) alpha_hop), then all-gather as the reduce-scatter."""
    import math
    graph = topologies.get(f"single_switch(servers={servers}, server='dgx_a100')")
    result, net, nodes = run(graph, algorithm="hierarchical:halving_doubling")
    plan = CollectivePlanner(graph).plan("allreduce", "hierarchical:halving_doubling", nodes)
    m = 8
    assert plan.algorithm == "hierarchical:halving_doubling"
    assert len(plan.phases) == 2 + 2 * int(math.log2(servers))

    def hop(src, dst):
        links = net.route_links(src, dst)
        return (float(net.links.latency_s[links].sum()),
                float(net.links.bandwidth_Bps[links].min()))
    a_gpu, _ = hop(("gpu", 0, 0), ("gpu", 0, 1))
    b_gpu = server_types()["dgx_a100"].nvlinks_per_gpu * \
        server_types()["dgx_a100"].link(server_types()["dgx_a100"].nvlink).payload_Bps
    a_hop, b_hop = hop(("gpu", 0, 0), ("gpu", 1, 0))
    intra = (m - 1) / m * S / b_gpu + (m - 1) * a_gpu
    inter = 2 * (servers - 1) / servers * S / m / b_hop + 2 * math.log2(servers) * a_hop
    assert result.end_s == pytest.approx(2 * intra + inter, rel=1e-9)


def test_three_phase_crosses_servers_by_the_chosen_algorithm():
    """Goyal et al.'s scheme with recursive halving-doubling between the local roots sends the
    whole buffer through each root's NIC in 2 log2 s phases (plus the local reduce and
    broadcast); the ring form has one phase of 2(s-1) steps."""
    graph = topologies.get("single_switch(servers=4, server='dgx_a100')")
    nodes = tuple(topologies.gpus(graph))
    planner = CollectivePlanner(graph)
    hd = planner.plan("allreduce", "three_phase:halving_doubling", nodes)
    ring = planner.plan("allreduce", "three_phase", nodes)
    assert [p.steps for p in ring.phases] == [7, 6, 7]
    assert len(hd.phases) == 1 + 4 + 1
    roots = {("gpu", s, 0) for s in range(4)}
    assert {h.src for p in hd.phases[1:-1] for g in p.groups for h in g.hops} == roots
    _, net, _ = run(graph, algorithm="three_phase:halving_doubling")
    links = net.links_table()
    out = links[links["src"].map(lambda n: n[:2] == ("nic", 0))
                & links["dst"].map(lambda n: n[0] == "switch")].sort_values("src")
    # halving-doubling sends (s-1)/s S each way: 1/2 + 1/4 on the way down, the same up
    assert out["bytes"].tolist() == pytest.approx([1.5 * S] + [0] * 7, rel=1e-12)


def test_every_inter_server_algorithm_is_a_registered_name():
    from simulator.collectives import algorithms
    from simulator.planner.hierarchy import INTER, SCHEMES
    for scheme in SCHEMES:
        for inter in INTER:
            assert f"{scheme}:{inter}" in algorithms("allreduce")
        graph = topologies.get("single_switch(servers=2, server='dgx_a100')")
        for inter in INTER:
            result, _, _ = run(graph, algorithm=f"{scheme}:{inter}", nbytes=1e8)
            assert result.end_s > 0
