"""Collective planning: how the bytes of a collective travel over the topology.

The planner sees the topology graph and the members' nodes and decides what a collective
library decides: channels, ring orders that follow NVLink, which GPU enters and leaves each
server, through which NIC (rails), trees across servers with chains inside, NVLink SHARP,
PXN all-to-all. A strategy only names the collective, its group and its bytes; the engine asks
the planner for a :class:`Plan` and puts its hops on the network. See ``docs/NETWORK.md``.
"""
from simulator.planner.algorithms import AUTO, names
from simulator.planner import hierarchy  # noqa: F401  (registers the two-level schemes)
from simulator.planner.layout import Layout, Topology
from simulator.planner.plan import STAGINGS, Group, Hop, Phase, Plan
from simulator.planner.planner import CollectivePlanner, estimate
from simulator.planner.rings import CROSS_NIC, ring_orders
from simulator.planner.trees import double_binary_tree

__all__ = ["AUTO", "CROSS_NIC", "CollectivePlanner", "Group", "Hop", "Layout", "Phase", "Plan",
           "STAGINGS", "Topology", "double_binary_tree", "estimate", "names", "ring_orders"]
