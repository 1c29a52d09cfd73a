"""Property-based tests of the network model on random topologies and flow sets."""
from __future__ import annotations

import random

import networkx as nx
import numpy as np
import pytest
import simpy
from hypothesis import given, settings, strategies as st

import simulator.network.incidence as incidence_module
from simulator.network import Network, maxmin_rates
from topologies import add_link

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def scenarios(draw):
    """A random connected topology of forwarding nodes and a random set of flows on it."""
    n = draw(st.integers(3, 9))
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    g = nx.Graph(name="random")
    for i in range(n):
        g.add_node(("cpu", i) if i % 2 else ("switch", "x", i),
                   role="cpu" if i % 2 else "switch", device="CPU")
    edges = {(rng.randrange(i), i) for i in range(1, n)}  # a spanning tree: connected
    edges |= {tuple(sorted(rng.sample(range(n), 2))) for _ in range(draw(st.integers(0, n)))}
    nodes = list(g.nodes)
    for a, b in sorted(edges):
        add_link(g, nodes[a], nodes[b], bandwidth_Bps=rng.choice([1e9, 2e9, 3e9, 5e9, 10e9]),
                 latency_s=rng.choice([0.0, 1e-6, 3e-6]), kind="ethernet")
    flows = []
    for tag in range(draw(st.integers(1, 24))):
        src, dst = rng.sample(nodes, 2)
        start = rng.choice([0.0, 0.0, 1e-4, 2.5e-4, 1e-3])
        flows.append((start, src, dst, float(rng.randrange(1, 200) * 1e4), tag))
    return g, flows, draw(st.integers(0, 3))


def simulate(graph, flows, seed):
    env = simpy.Environment()
    net = Network(env, graph, seed=seed)

    def submit(start, src, dst, nbytes, tag):
        yield env.timeout(start)
        yield net.transfer(src, dst, nbytes, tag=tag)

    for flow in flows:
        env.process(submit(*flow))
    env.run()
    return net


def end_times(net) -> dict:
    return {f.tag: f.end_s for f in net.flows}


@SETTINGS
@given(scenarios())
def test_no_link_carries_more_than_its_capacity(case):
    graph, flows, seed = case
    series = simulate(graph, flows, seed).utilisation_table()
    assert (series["rate_Bps"] <= series["bandwidth_Bps"] * (1 + 1e-12)).all()
    assert (series["rate_Bps"] >= 0).all()


@SETTINGS
@given(scenarios())
def test_every_byte_sent_arrives_and_links_carry_exactly_the_bytes_routed_over_them(case):
    graph, flows, seed = case
    net = simulate(graph, flows, seed)
    table = net.flows_table()
    assert table["end_s"].notna().all()
    assert (table["end_s"] >= table["tx_end_s"]).all()
    assert (table["tx_end_s"] >= table["start_s"]).all()
    expected = np.zeros(2 * graph.number_of_edges())
    for f in net.flows:
        expected[f.links] += f.nbytes
    assert net.links_table()["bytes"].to_numpy() == pytest.approx(expected, rel=1e-9, abs=1e-3)


@SETTINGS
@given(scenarios(), st.randoms(use_true_random=False))
def test_finish_times_do_not_depend_on_submission_order(case, rnd):
    graph, flows, seed = case
    shuffled = list(flows)
    rnd.shuffle(shuffled)
    assert end_times(simulate(graph, flows, seed)) == end_times(simulate(graph, shuffled, seed))


@SETTINGS
@given(scenarios())
def test_runs_are_deterministic(case):
    graph, flows, seed = case
    a, b = simulate(graph, flows, seed), simulate(graph, flows, seed)
    assert a.flows_table().equals(b.flows_table())
    assert a.utilisation_table().equals(b.utilisation_table())
    assert a.recomputations == b.recomputations


@SETTINGS
@given(scenarios())
def test_local_updates_match_recomputing_everything(case):
    graph, flows, seed = case
    local = simulate(graph, flows, seed)
    saved = incidence_module._MAX_ROUNDS
    incidence_module._MAX_ROUNDS = 0  # every update recomputes every active flow
    try:
        full = simulate(graph, flows, seed)
    finally:
        incidence_module._MAX_ROUNDS = saved
    assert end_times(local) == end_times(full)
    assert full.rates_computed >= local.rates_computed


@SETTINGS
@given(scenarios())
def test_index_rebuilds_and_compactions_change_nothing(case):
    graph, flows, seed = case
    reference = end_times(simulate(graph, flows, seed))
    saved = incidence_module._REINDEX_TAIL, incidence_module._COMPACT_DEAD
    incidence_module._REINDEX_TAIL = incidence_module._COMPACT_DEAD = 0  # at every chance
    try:
        assert end_times(simulate(graph, flows, seed)) == reference
    finally:
        incidence_module._REINDEX_TAIL, incidence_module._COMPACT_DEAD = saved


@st.composite
def incidences(draw):
    n_links = draw(st.integers(1, 8))
    n_flows = draw(st.integers(1, 12))
    capacity = np.array(draw(st.lists(st.sampled_from([1.0, 2.0, 3.0, 7.5, 10.0]),
                                      min_size=n_links, max_size=n_links)))
    pairs = []
    for f in range(n_flows):
        links = draw(st.sets(st.integers(0, n_links - 1), min_size=1, max_size=n_links))
        pairs += [(f, l) for l in sorted(links)]
    pf, pl = (np.array(x) for x in zip(*pairs))
    return pf, pl, capacity, n_flows


@settings(max_examples=200, deadline=None, derandomize=True)
@given(incidences())
def test_maxmin_rates_are_feasible_and_every_flow_has_a_bottleneck(case):
    pf, pl, capacity, n_flows = case
    rates = maxmin_rates(pf, pl, capacity, n_flows)
    assert (rates > 0).all()
    load = np.bincount(pl, weights=rates[pf], minlength=len(capacity))
    assert (load <= capacity * (1 + 1e-12)).all()
    # Max-min characterisation (Bertsekas & Gallager): each flow crosses a saturated link on
    # which no other flow has a larger rate.
    for f in range(n_flows):
        mine = pl[pf == f]
        assert any(load[l] >= capacity[l] * (1 - 1e-12)
                   and rates[f] >= rates[pf[pl == l]].max() * (1 - 1e-12) for l in mine)
