"""Benchmark: simulations of the clusters LLMs are trained on (1,024 to 16,384 GPUs), wall time
and peak memory, at the default fidelity and, with ``--fidelity full``, every rank simulated.

Each case runs in its own process (peaks do not mix) and reports the wall seconds of
``simulate()`` (compile, engine and tables), the process's peak resident memory
(``ru_maxrss``), the fidelity that ran and why, the simulated ranks, operations and flows, and
what was simulated (iteration time, model TFLOP/s per GPU). Targets (issue 13) are printed
beside each case.

    python3 experiments/bench_scale.py                      # every case, default fidelity
    python3 experiments/bench_scale.py --cases gpt3-175b,resnet50-16k
    python3 experiments/bench_scale.py --fidelity full --cases gpt3-175b
    python3 experiments/bench_scale.py --json out.json      # also write the rows as JSON
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

#: name -> (workload, system, strategy, target wall s, target peak MiB, what it is)
CASES: dict[str, tuple[dict, dict, dict, float, float, str]] = {
    "gpt3-175b": (
        {"net": "gpt3-175b", "batch": 512, "dtype": "fp16", "optimizer": "adam"},
        {"topology": "selene"},
        {"kind": "parallel3d", "tp": 8, "pp": 16, "dp": 8, "microbatches": 64, "micro_batch": 1,
         "schedule": "1f1b", "recompute": "full"},
        5.0, 500.0, "GPT-3 175B, TP8 PP16 DP8, 1F1B, 64 microbatches, 1,024 A100 (selene)"),
    "ptdp-1t": (
        {"net": "ptdp-gpt-1t", "batch": 3072, "dtype": "fp16", "optimizer": "adam"},
        {"topology": "selene(k=24, servers=384)"},
        {"kind": "parallel3d", "tp": 8, "pp": 64, "dp": 6, "micro_batch": 1, "recompute": "full"},
        30.0, 2048.0, "GPT 1T, TP8 PP64 DP6, 3,072 A100 (the ptdp-1t reference row)"),
    "gpt-530b-dp8": (
        {"net": "ptdp-gpt-529.6b", "batch": 280, "dtype": "fp16", "optimizer": "adam"},
        {"topology": "selene(k=24, servers=280)", "device": "A100-40GB"},
        {"kind": "parallel3d", "tp": 8, "pp": 35, "dp": 8, "micro_batch": 1, "recompute": "full"},
        30.0, 2048.0, "GPT 530B, TP8 PP35 DP8, 2,240 A100 40 GB"),
    "gpt-530b-dp12": (
        {"net": "ptdp-gpt-529.6b", "batch": 420, "dtype": "fp16", "optimizer": "adam"},
        {"topology": "selene(k=24, servers=420)", "device": "A100-40GB"},
        {"kind": "parallel3d", "tp": 8, "pp": 35, "dp": 12, "micro_batch": 1, "recompute": "full"},
        30.0, 2048.0, "GPT 530B, TP8 PP35 DP12, 3,360 A100 40 GB"),
    "llama3-405b-16k": (
        {"net": "llama3-405b", "batch": 2048, "dtype": "bf16", "optimizer": "adam"},
        {"topology": "rail_optimized(servers=2048, server='dgx_h100', servers_per_leaf=32)"},
        {"kind": "parallel3d", "tp": 8, "pp": 16, "dp": 128, "micro_batch": 1,
         "recompute": "none"},
        120.0, 4096.0, "Llama-3-405B-shaped GPT, TP8 PP16 DP128, 16,384 H100, rail-optimised"),
    "resnet50-16k": (
        {"net": "resnet50", "batch": 32, "dtype": "fp16", "optimizer": "momentum"},
        {"topology": "rail_optimized(servers=2048, server='dgx_a100', servers_per_leaf=32)"},
        {"kind": "data_parallel", "workers": 16384, "bucket_bytes": 25e6, "iterations": 2},
        60.0, 4096.0, "ResNet-50 data parallel, 16,384 A100, 25 MB buckets, rail-optimised"),
}


def one(name: str, fidelity: str) -> dict:
    from simulator.config import config_from_dict
    from simulator.simulate import simulate

    workload, system, strategy, *_ = CASES[name]
    strategy = {"iterations": 1, **strategy}
    if strategy["kind"] == "parallel3d":  # as the reference rows run them (docs/PARALLELISM.md)
        strategy = {"tp_comm": "isolated", "granularity": "pass", **strategy}
    cfg = config_from_dict({"workload": workload,
                               "system": {**system, "fidelity": fidelity},
                               "strategy": strategy}, source=name)
    wall0 = time.perf_counter()
    result = simulate(cfg.workload, cfg.system, cfg.strategy)
    wall = time.perf_counter() - wall0
    m = result.metrics
    return {"case": name, "gpus": len(result.rank_nodes), "fidelity": m["fidelity"],
            "fidelity_reason": m["fidelity_reason"], "simulated_ranks": m["simulated_ranks"],
            "wall_s": wall, "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "operations": len(result.taskgraph.ops), "flows": len(result.flows),
            "engine_events": m["engine_events"], "iteration_s": m["iteration_s"],
            "model_tflops_per_gpu": m.get("model_tflops_per_gpu")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated cases (default: all): {', '.join(CASES)}")
    parser.add_argument("--fidelity", default="auto", choices=("auto", "replicas", "full"))
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.fidelity)))
        return 0
    rows = []
    for name in args.cases.split(","):
        if name not in CASES:
            parser.error(f"unknown case {name!r}; valid: {', '.join(CASES)}")
        done = subprocess.run([sys.executable, __file__, "--one", name, "--fidelity",
                               args.fidelity], capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: failed\n{done.stderr.strip()}", file=sys.stderr)
            return 1
        row = json.loads(done.stdout)
        _, _, _, wall_target, mem_target, what = CASES[name]
        row.update(target_wall_s=wall_target, target_peak_MiB=mem_target)
        rows.append(row)
        tflops = row["model_tflops_per_gpu"]
        print(f"{what}\n  {row['wall_s']:.1f} s (target {wall_target:g}), peak RSS "
              f"{row['peak_rss_MiB']:.0f} MiB (target {mem_target:g}); fidelity "
              f"{row['fidelity']} ({row['simulated_ranks']} of {row['gpus']} ranks): "
              f"{row['fidelity_reason']}\n  {row['operations']} operations, {row['flows']} "
              f"flows, {row['engine_events']} engine events; iteration {row['iteration_s']:.3f} s"
              + (f", {tflops:.1f} model TFLOP/s per GPU" if tflops else ""), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
