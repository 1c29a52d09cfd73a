"""Benchmark: ResNet-50 data parallel on 64..1,024 GPUs (DGX A100 servers: 8 GPUs on NVSwitch, 8
HDR NICs each, on a k=16 fat-tree), ring all-reduce of 25 MB buckets overlapped with backward.

Reports, per GPU count: wall seconds to simulate (compile + engine + tables) divided by the
simulated iterations, simulation events per second, task-graph operations, and the peak resident
memory of the process. Each size runs in its own process so peaks do not mix.

    python3 experiments/bench_simulate.py [--gpus 64,128,256,512,1024] [--iterations 2]
        [--grad-dtype fp16]

Gradients are reduced in the strategy's default ``grad_dtype`` (fp32 under fp16 training, as
PyTorch AMP); ``--grad-dtype fp16`` reduces them in fp16, the traffic before issue 12 (for
comparing the simulator's speed on the same bytes).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(gpus: int, iterations: int, grad_dtype: str = "auto") -> dict:
    from simulator.simulate import simulate
    from simulator.specs import DataParallelSpec, SystemSpec, WorkloadSpec
    workload = WorkloadSpec(net="resnet50", batch=32, dtype="fp16", optimizer="momentum")
    system = SystemSpec(topology="fat_tree(k=16, server='dgx_a100', servers={servers})",
                        gpus_per_server=8)
    strategy = DataParallelSpec(workers=gpus, algorithm="ring", bucket_bytes=25e6,
                                overlap=True, iterations=iterations, grad_dtype=grad_dtype)
    start = time.perf_counter()
    result = simulate(workload, system, strategy)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    events = result.metrics["engine_events"]
    return {"gpus": gpus, "iterations": iterations, "wall_s": wall,
            "wall_s_per_iteration": wall / iterations, "operations": len(result.ops),
            "flows": len(result.flows), "engine_events": result.metrics["engine_events"],
            "events_per_s": events / wall, "ops_per_s": len(result.ops) / wall,
            "peak_rss_MiB": peak_mib, "simulated_iteration_s": result.metrics["iteration_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="64,128,256,512,1024")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--grad-dtype", default="auto",
                        help="type gradients are reduced in (default: the strategy's, fp32)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.iterations, args.grad_dtype)))
        return 0
    rows = []
    for gpus in [int(g) for g in args.gpus.split(",")]:
        out = subprocess.run([sys.executable, __file__, "--one", str(gpus), "--iterations",
                              str(args.iterations), "--grad-dtype", args.grad_dtype],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout))
    print(f"{'GPUs':>6} {'wall s/iter':>11} {'ops':>9} {'flows':>7} {'ops/s':>9} "
          f"{'events/s':>9} {'peak MiB':>9} {'sim iter ms':>11}")
    for r in rows:
        print(f"{r['gpus']:>6} {r['wall_s_per_iteration']:>11.2f} {r['operations']:>9} "
              f"{r['flows']:>7} {r['ops_per_s']:>9.0f} {r['events_per_s']:>9.0f} "
              f"{r['peak_rss_MiB']:>9.0f} {r['simulated_iteration_s'] * 1e3:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
