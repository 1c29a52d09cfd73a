"""The engine and the collective algorithms on ideal topologies, with exact expectations.

Closed forms (alpha = per-link latency, B = link bandwidth, S = bytes per rank):
ring all-reduce on a ring: 2(n-1)/n * S/B + 2(n-1) alpha (Patarasuk & Yuan 2009);
binomial-tree all-reduce on a star: 2 ceil(log2 n) (2 alpha + S/B) (Paleo's TreeAllReduce);
halving-doubling on a star: 2 log2(n) * 2 alpha + 2(n-1)/n * S/B (Thakur et al. 2005);
one-to-all on a star: the root's link carries (n-1) S each way: 2 (n-1) S/B + 4 alpha.
"""
from __future__ import annotations

import math

import networkx as nx
import pytest

from simulator.engine import Engine, execute
from simulator.network import Network
from simulator.taskgraph import TaskGraph
from topologies import add_link

B = 1e9       # bytes/s
ALPHA = 2e-6  # s


def ideal_ring(n: int) -> nx.Graph:
    g = nx.Graph(name=f"ring{n}", gpus_forward=True)
    for i in range(n):
        g.add_node(("gpu", i, 0), role="gpu", device="V100", server=i, index=0)
    for i in range(n):
        add_link(g, ("gpu", i, 0), ("gpu", (i + 1) % n, 0), bandwidth_Bps=B, latency_s=ALPHA,
                 kind="link")
    return g


def ideal_star(n: int, bandwidth=B, latency=ALPHA) -> nx.Graph:
    g = nx.Graph(name=f"star{n}")
    g.add_node(("switch", "tor", 0), role="switch")
    for i in range(n):
        g.add_node(("gpu", i, 0), role="gpu", device="V100", server=i, index=0)
        add_link(g, ("gpu", i, 0), ("switch", "tor", 0), bandwidth_Bps=bandwidth,
                 latency_s=latency, kind="link")
    return g


def run_collective(graph, n, nbytes, algorithm, collective="allreduce"):
    tg = TaskGraph(ranks=n)
    tg.collective(collective, range(n), nbytes, algorithm=algorithm)
    nodes = [("gpu", i, 0) for i in range(n)]
    run, _ = execute(tg, network_factory=lambda env: Network(env, graph), rank_nodes=nodes)
    return run.end_s


@pytest.mark.parametrize("n", [3, 4, 8])  # with 2 nodes the two cables merge into one 2B link
@pytest.mark.parametrize("algorithm", ["ring", "ring_steps"])
def test_ring_allreduce_on_an_ideal_ring(n, algorithm):
    s = 64e6
    expected = 2 * (n - 1) / n * s / B + 2 * (n - 1) * ALPHA
    assert run_collective(ideal_ring(n), n, s, algorithm) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [2, 5, 8])
def test_tree_allreduce_on_a_star(n):
    s = 10e6
    expected = 2 * math.ceil(math.log2(n)) * (2 * ALPHA + s / B)
    assert run_collective(ideal_star(n), n, s, "tree") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_halving_doubling_on_a_star(n):
    s = 16e6
    expected = 2 * math.log2(n) * 2 * ALPHA + 2 * (n - 1) / n * s / B
    assert run_collective(ideal_star(n), n, s, "halving_doubling") == pytest.approx(
        expected, rel=1e-12)


def test_recursive_doubling_is_paleos_butterfly():
    n, s = 8, 4e6
    expected = math.log2(n) * (2 * ALPHA + s / B)
    assert run_collective(ideal_star(n), n, s, "recursive_doubling") == pytest.approx(
        expected, rel=1e-12)


@pytest.mark.parametrize("n", [2, 4, 7])
def test_one_to_all_bottleneck_emerges_from_the_roots_link(n):
    s = 8e6
    expected = 2 * (n - 1) * s / B + 4 * ALPHA
    assert run_collective(ideal_star(n), n, s, "one_to_all") == pytest.approx(expected, rel=1e-12)


def test_reducescatter_and_allgather_ring():
    n, s = 4, 40e6
    for coll in ("reducescatter", "allgather"):
        expected = (n - 1) / n * s / B + (n - 1) * ALPHA
        assert run_collective(ideal_ring(n), n, s, "ring", coll) == pytest.approx(expected,
                                                                                rel=1e-12)


@pytest.mark.parametrize("n", range(2, 65))
def test_double_binary_tree_moves_at_most_twice_the_buffer(n):
    """Two trees in which no rank is an inner node twice: a rank moves at most 2 S each way, so
    on a star the all-reduce takes (max load) S/B, 2 S/B from 5 ranks on, and at 2 to 4 ranks
    the trees reach the lower bound 2 (n-1)/n S/B or come within 1/8 of it (n = 3)."""
    from simulator.planner.trees import depth, double_binary_tree, max_load
    s = 8e6
    t = run_collective(ideal_star(n, latency=0.0), n, s, "double_binary_tree")
    expected = {2: 1.0, 3: 1.5, 4: 1.5}.get(n, 2.0)
    assert max_load(n) == expected
    assert t / (s / B) == pytest.approx(expected, abs=1e-9)
    with_latency = run_collective(ideal_star(n), n, s, "double_binary_tree")
    a, b = double_binary_tree(n)
    steps = 2 * max(depth(a), depth(b))
    assert with_latency == pytest.approx(expected * s / B + steps * 2 * ALPHA, rel=1e-12)


def test_streams_run_in_order_and_wait_for_dependencies():
    g = ideal_star(2)
    tg = TaskGraph(ranks=2)
    a = tg.compute(0, 1.0, name="a")
    b = tg.compute(0, 0.5, name="b")               # after a, same stream
    t = tg.transfer(0, 1, 1e9, deps=(a,), name="t")  # starts at 1.0, takes 1 s + 2 alpha
    tg.compute(1, 0.25, deps=(t,), name="c")
    d = tg.compute(1, 0.1, name="d")               # rank 1's stream: after c
    nodes = [("gpu", 0, 0), ("gpu", 1, 0)]
    run, _ = execute(tg, network_factory=lambda env: Network(env, g), rank_nodes=nodes)
    times = {row[4]: (row[8], row[9]) for row in run.rows}
    assert times["a"] == (0.0, 1.0)
    assert times["b"] == (1.0, 1.5)
    assert times["t"] == pytest.approx((1.0, 2.0 + 2 * ALPHA))
    assert times["c"] == pytest.approx((2.0 + 2 * ALPHA, 2.25 + 2 * ALPHA))
    assert times["d"] == pytest.approx((2.25 + 2 * ALPHA, 2.35 + 2 * ALPHA))
    del b, d


def test_a_collective_starts_when_every_member_arrived():
    g = ideal_star(2)
    tg = TaskGraph(ranks=2)
    slow = tg.compute(1, 3.0, name="slow")
    tg.collective("allreduce", (0, 1), 2e9, algorithm="ring", deps=(slow,), name="ar")
    run, _ = execute(tg, network_factory=lambda env: Network(env, g),
                     rank_nodes=[("gpu", 0, 0), ("gpu", 1, 0)])
    ar = [row for row in run.rows if row[4] == "ar"]
    assert len(ar) == 2 and all(row[8] == 3.0 for row in ar)
    # n=2: each rank sends its other half-sum and receives one: 2e9 bytes, 2 steps of 2 links
    assert all(row[9] == pytest.approx(3.0 + 2e9 / B + 2 * 2 * ALPHA) for row in ar)


def test_quorum_starts_after_the_first_k_dependencies():
    g = ideal_star(2)
    tg = TaskGraph(ranks=2)
    deps = [tg.compute(0, 1.0), tg.compute(1, 2.0), tg.compute(0, 3.0)]
    q = tg.compute(1, 0.5, deps=deps, stream="ps", name="q")
    tg.meta["quorum"] = {q: 2}
    run, _ = execute(tg, network_factory=lambda env: Network(env, g),
                     rank_nodes=[("gpu", 0, 0), ("gpu", 1, 0)])
    (row,) = [r for r in run.rows if r[4] == "q"]
    assert (row[8], row[9]) == (2.0, 2.5)


def test_unordered_stream_serves_operations_in_arrival_order():
    g = ideal_star(2)
    tg = TaskGraph(ranks=2, meta={"unordered_streams": ("ps",)})
    late = tg.compute(0, 2.0)
    early = tg.compute(1, 1.0)
    tg.compute(1, 0.5, deps=(late,), stream="ps", name="first-added")
    tg.compute(1, 0.5, deps=(early,), stream="ps", name="second-added")
    run, _ = execute(tg, network_factory=lambda env: Network(env, g),
                     rank_nodes=[("gpu", 0, 0), ("gpu", 1, 0)])
    times = {r[4]: (r[8], r[9]) for r in run.rows}
    assert times["second-added"] == (1.0, 1.5)
    assert times["first-added"] == (2.0, 2.5)


def test_jitter_is_seeded_and_deterministic():
    g = ideal_star(2)

    def once(seed):
        tg = TaskGraph(ranks=2)
        for r in range(2):
            for _ in range(5):
                tg.compute(r, 1.0)
        run, _ = execute(tg, network_factory=lambda env: Network(env, g),
                         rank_nodes=[("gpu", 0, 0), ("gpu", 1, 0)], seed=seed, jitter_cv=0.2)
        return run.rows

    assert once(1) == once(1)
    assert once(1) != once(2)
    assert all(r[9] - r[8] != 1.0 for r in once(1))


def test_fused_compute_runs_keep_per_operation_times_and_few_events():
    g = ideal_star(1)
    tg = TaskGraph(ranks=1)
    for i in range(100):
        tg.compute(0, 0.01, name=f"l{i}")
    import simpy
    env = simpy.Environment()
    engine = Engine(env, Network(env, g), tg, rank_nodes=[("gpu", 0, 0)])
    run = engine.run()
    assert len(run.rows) == 100
    assert run.rows[-1][9] == pytest.approx(1.0)
    assert run.events == 1


def two_servers(m: int, nic=B, local=10 * B, nics=True) -> nx.Graph:
    """Two servers of m GPUs: a fast local switch inside each, and one NIC per GPU (the GPU's
    ``nic``) into a fabric switch; with ``nics=False`` each GPU is cabled to the fabric itself
    and nothing says which port it uses."""
    g = nx.Graph(name=f"2x{m}")
    g.add_node(("switch", "fabric", 0), role="switch")
    for srv in range(2):
        g.add_node(("nvswitch", srv, 0), role="nvswitch", server=srv, index=0)
        for i in range(m):
            gpu = ("gpu", srv, i)
            g.add_node(gpu, role="gpu", device="V100", server=srv, index=i)
            add_link(g, gpu, ("nvswitch", srv, 0), bandwidth_Bps=local, latency_s=ALPHA,
                     kind="nvlink")
            if nics:
                card = ("nic", srv, i)
                g.add_node(card, role="nic", server=srv, index=i)
                g.nodes[gpu]["nic"] = card
                add_link(g, gpu, card, bandwidth_Bps=local, latency_s=0.0, kind="pcie")
                add_link(g, card, ("switch", "fabric", 0), bandwidth_Bps=nic, latency_s=ALPHA,
                         kind="infiniband")
            else:
                add_link(g, gpu, ("switch", "fabric", 0), bandwidth_Bps=nic, latency_s=ALPHA,
                         kind="infiniband")
    return g


def test_ring_uses_one_channel_per_nic_of_a_server_as_nccl_does():
    """One ring per NIC (rail), each carrying 1/m of the buffer, so the m NICs of a server share
    the inter-server traffic (NCCL channels); without NIC bindings there is one ring."""
    m, s = 4, 64e6
    n = 2 * m
    nodes = [("gpu", srv, i) for srv in range(2) for i in range(m)]
    tg = TaskGraph(ranks=n)
    tg.collective("allreduce", range(n), s, algorithm="ring")
    channels, _ = execute(tg, network_factory=lambda env: Network(env, two_servers(m)),
                          rank_nodes=nodes)
    per_flow = 2 * (n - 1) / n * s / m
    assert channels.end_s == pytest.approx(per_flow / B + 2 * (n - 1) * 2 * ALPHA, rel=1e-12)
    bare = two_servers(m, nics=False)
    single, _ = execute(tg, network_factory=lambda env: Network(env, bare), rank_nodes=nodes)
    assert single.end_s == pytest.approx(m * per_flow / B + 2 * (n - 1) * 2 * ALPHA, rel=1e-12)
