"""Benchmark the flow-level network: ring-neighbour and all-to-all steps on DGX A100 fat-trees.

Clusters of 8-GPU DGX A100 servers (NVSwitch inside, 8 HDR NICs each) on a k=16 fat-tree (1,024
host ports; smaller clusters fill its first ports), from 128 to 1,024 GPUs. Patterns, all flows submitted at one instant
(one step of a collective as the engine would issue it):

- ``ring``: GPU r sends 64 MB to GPU r+1 (mod N): N flows.
- ``a2a``: all-to-all inside groups of 32 consecutive GPUs (4 servers, e.g. expert parallelism),
  1 MB per pair: 31 N flows.
- ``a2a_rail`` (opt-in with --patterns): GPU i of every server to GPU i of every other server,
  1 MB per pair: 8 S (S - 1) flows.

Each pattern runs twice on one Network: ``cold`` includes computing routes for new destinations,
``warm`` reuses them (the steady state of a training run, where every step repeats its pairs).
Reported: wall seconds of the step, rate recomputations, flow rates computed, flows per second.

Usage: python3 experiments/bench_network.py [--gpus 128 256 512 1024] [--patterns ring a2a]
       [--k 16|fit] [--out table.csv]
"""
from __future__ import annotations

import argparse
import platform
import time

import pandas as pd
import simpy

import topologies
from simulator.network import Network

GROUP = 32


def cluster(gpus: int, k: int | None = 16):
    """``gpus / 8`` DGX A100 servers on a k-ary fat-tree (``k=None``: the smallest that fits)."""
    servers = gpus // 8
    if k is None:
        k = 2
        while k ** 3 // 4 < 8 * servers:
            k += 2
    return topologies.get(f"fat_tree(k={k}, server='dgx_a100', servers={servers})"), k


def pattern(name: str, ranks: list) -> list:
    n = len(ranks)
    if name == "ring":
        return [(ranks[r], ranks[(r + 1) % n], 64e6) for r in range(n)]
    if name == "a2a":
        return [(ranks[g + i], ranks[g + j], 1e6) for g in range(0, n, GROUP)
                for i in range(GROUP) for j in range(GROUP) if i != j]
    if name == "a2a_rail":
        per = 8
        servers = n // per
        return [(ranks[a * per + i], ranks[b * per + i], 1e6) for i in range(per)
                for a in range(servers) for b in range(servers) if a != b]
    raise SystemExit(f"unknown pattern {name!r}")


def step(env, net, flows, tag):
    """Submit every flow at the current instant; run until the last one arrives."""
    start = env.now
    events = [net.transfer(s, d, b, tag=(tag, i)) for i, (s, d, b) in enumerate(flows)]
    done = simpy.AllOf(env, events)
    before = net.recomputations, net.rates_computed
    t0 = time.perf_counter()
    env.run(done)
    wall = time.perf_counter() - t0
    return wall, env.now - start, net.recomputations - before[0], net.rates_computed - before[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--patterns", nargs="+", default=["ring", "a2a"])
    parser.add_argument("--k", default="16",
                        help="fat-tree radix, or 'fit' for the smallest that holds the NICs "
                             "(default: 16, the 1,024-GPU fabric, partly filled below 1,024)")
    parser.add_argument("--out", help="also write the table as CSV here")
    args = parser.parse_args()
    rows = []
    for gpus in args.gpus:
        t0 = time.perf_counter()
        graph, k = cluster(gpus, None if args.k == "fit" else int(args.k))
        build_s = time.perf_counter() - t0
        ranks = topologies.gpus(graph)
        for name in args.patterns:
            flows = pattern(name, ranks)
            env = simpy.Environment()
            t0 = time.perf_counter()
            net = Network(env, graph, seed=0)
            init_s = time.perf_counter() - t0
            for phase in ("cold", "warm"):
                wall, sim, recomp, rates = step(env, net, flows, tag=0)
                rows.append({"gpus": gpus, "k": k, "nodes": graph.number_of_nodes(),
                             "links": 2 * graph.number_of_edges(), "pattern": name,
                             "phase": phase, "flows": len(flows), "wall_s": wall,
                             "simulated_s": sim, "recomputations": recomp,
                             "rates_computed": rates, "flows_per_s": len(flows) / wall,
                             "build_s": build_s, "network_init_s": init_s})
                print(f"{gpus:5d} GPUs {name:8s} {phase}: {len(flows):7d} flows "
                      f"{wall:8.3f} s wall, {recomp:5d} recomputations, "
                      f"{len(flows) / wall:10.0f} flows/s", flush=True)
    table = pd.DataFrame(rows)
    print()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(table.to_string(index=False, float_format="{:.4g}".format))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
