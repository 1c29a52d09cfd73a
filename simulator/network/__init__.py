"""The flow-level network model: routes, max-min fair sharing, and a simpy-facing ``Network``.

See ``docs/NETWORK.md`` for the model, its algorithm and its cost.
"""
from simulator.network.maxmin import maxmin_rates
from simulator.network.network import EPS_REL, LATE, Flow, Network
from simulator.network.routing import ROUTINGS, Router, flow_hash

__all__ = ["EPS_REL", "Flow", "LATE", "Network", "ROUTINGS", "Router", "flow_hash",
           "maxmin_rates"]
