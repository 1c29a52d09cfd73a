"""Benchmark: one training iteration of GPT-3 175B on 1,024 A100s, TP 8 x PP 16 x DP 8, 1F1B with
64 microbatches of 1 sequence (global batch 512), full recomputation, fp16 with Adam, on the
``selene`` preset (128 DGX A100 servers: 8 GPUs on NVSwitch and 8 HDR NICs each, k=16 fat-tree).

Reports the wall seconds and CPU seconds of ``simulate()`` (compile + engine + tables), the peak
resident memory of the process (``ru_maxrss``), the task graph's size, and what was simulated
(iteration time, bubble fraction, Megatron model TFLOP/s per GPU). Each configuration runs in its
own process so that peaks do not mix. Target (issue 5, section 7): at most 60 s on a 2-core
machine, for the default configuration.

The default prices tensor-parallel collectives once each, alone on the network, and replays them
as fixed-duration operations (``tp_comm: isolated``), one operation per kind of work per pass
(``granularity: pass``); ``--tp-comm network --granularity fused`` (or ``layer``) runs every
tensor-parallel collective through the network, the reference the default must agree with.

    python3 experiments/bench_gpt3.py                       # the benchmark configuration
    python3 experiments/bench_gpt3.py --tp-comm network --granularity fused
    python3 experiments/bench_gpt3.py --dp 1                # one pipeline (128 GPUs), quicker
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(args: argparse.Namespace) -> dict:
    from simulator.simulate import simulate
    from simulator.specs import SystemSpec, WorkloadSpec
    from simulator.strategies.parallel3d_metrics import parallel_metrics
    from simulator.strategies.parallel3d_spec import Parallel3DSpec

    workload = WorkloadSpec(net="gpt3-175b", batch=args.microbatches * args.dp, dtype="fp16",
                            optimizer="adam")
    system = SystemSpec(topology=args.topology)
    strategy = Parallel3DSpec(tp=8, pp=16, dp=args.dp, microbatches=args.microbatches,
                              micro_batch=1, schedule="1f1b", recompute="full",
                              tp_comm=args.tp_comm, granularity=args.granularity,
                              iterations=args.iterations)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = simulate(workload, system, strategy)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    extra = parallel_metrics(result)
    return {"gpus": strategy.workers, "tp_comm": args.tp_comm, "granularity": args.granularity,
            "iterations": args.iterations, "wall_s": wall, "cpu_s": cpu,
            "wall_s_per_iteration": wall / args.iterations,
            "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "operations": len(result.taskgraph.ops), "timeline_rows": len(result.ops),
            "flows": len(result.flows), "engine_events": result.metrics["engine_events"],
            "simulated_iteration_s": result.metrics["iteration_s"],
            "bubble_fraction": extra["bubble_fraction"], "pipeline_s": extra["pipeline_s"],
            "model_tflops_per_gpu": extra["model_tflops_per_gpu"],
            "peak_memory_GiB": result.metrics["peak_memory_bytes"] / 2 ** 30}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dp", type=int, default=8, help="data-parallel degree (default 8)")
    parser.add_argument("--microbatches", type=int, default=64)
    parser.add_argument("--tp-comm", default="isolated", choices=["isolated", "network"])
    parser.add_argument("--granularity", default="pass", choices=["pass", "fused", "layer"])
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--topology", default="selene")
    parser.add_argument("--json", action="store_true", help="print the raw JSON row")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return 0
    command = [sys.executable, __file__, "--one"] + sys.argv[1:]
    row = json.loads(subprocess.run(command, capture_output=True, text=True,
                                    check=True).stdout)
    if args.json:
        print(json.dumps(row))
        return 0
    print(f"GPT-3 175B, {row['gpus']} GPUs (TP 8 x PP 16 x DP {args.dp}), 1F1B, "
          f"{args.microbatches} microbatches, tp_comm={row['tp_comm']}, "
          f"granularity={row['granularity']}")
    print(f"  wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s for {row['iterations']} "
          f"iteration(s); peak RSS {row['peak_rss_MiB']:.0f} MiB")
    print(f"  {row['operations']} operations, {row['flows']} flows, "
          f"{row['engine_events']} engine events")
    print(f"  simulated: iteration {row['simulated_iteration_s']:.3f} s (pipeline "
          f"{row['pipeline_s']:.3f} s), bubble "
          f"{row['bubble_fraction']:.3f}, {row['model_tflops_per_gpu']:.1f} model TFLOP/s per "
          f"GPU, peak device memory {row['peak_memory_GiB']:.1f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
