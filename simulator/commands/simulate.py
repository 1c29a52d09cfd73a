"""`paleosim simulate`: run a config's training simulation for one or more worker counts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from simulator.commands._output import add_format_option, render, write_atomic
from simulator.config import load_config
from simulator.errors import SpecError
from simulator.simulate import BASELINES, result_tables, scaling_table
from simulator.trace import chrome_trace


def worker_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpecError("must be a comma-separated list of positive integers",
                        field="--workers", value=text) from None
    if not values or any(v < 1 for v in values):
        raise SpecError("must be a comma-separated list of positive integers",
                        field="--workers", value=text)
    return values


def register(sub) -> None:
    p = sub.add_parser(
        "simulate", help="discrete-event simulation of training iterations",
        description="Simulate training as described by CONFIG, a JSON or YAML file with three "
                    "sections: workload (net, batch, dtype, optimizer), system (topology, device, "
                    "cost_model) and strategy (kind: data_parallel | parameter_server | "
                    "model_parallel | hybrid | parallel3d, workers, ...). See docs/CONFIG.md, "
                    "docs/PARALLELISM.md and experiments/configs/. Prints one row per worker "
                    "count: iteration time, throughput, speedup and scaling efficiency against one "
                    "worker, compute and exposed communication time.")
    p.add_argument("config", metavar="CONFIG", help="simulation config (.json, .yaml)")
    p.add_argument("--workers", type=str, default=None,
                   help="comma-separated worker counts (default: the config's strategy.workers)")
    p.add_argument("--trace", metavar="PATH", default=None,
                   help="write a Chrome trace (chrome://tracing, Perfetto) of the largest worker "
                        "count; '{workers}' in PATH writes one trace per worker count")
    p.add_argument("--tables", metavar="DIR", default=None,
                   help="write the largest run's tables as CSV into DIR: ops (timeline), "
                        "iterations, devices, links (bytes and utilisation per directed link), "
                        "flows, and strategy-specific ones (staleness)")
    p.add_argument("--seed", type=int, default=0, help="seed for ECMP hashing and jitter")
    p.add_argument("--baseline", choices=BASELINES, default="1",
                   help="what speedup and scaling efficiency are measured against: one worker "
                        "(1, default), the GPUs of one server of the topology (server), or the "
                        "smallest of --workers (smallest); the table's baseline_workers says "
                        "which ran")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    config = load_config(args.config)
    workers = (worker_list(args.workers) if args.workers is not None
               else [config.strategy.workers])
    table, results = scaling_table(config.workload, config.system, config.strategy, workers,
                                   seed=args.seed, baseline=args.baseline)
    traces = {}
    if args.trace:
        wanted = workers if "{workers}" in args.trace else [max(workers)]
        for n in wanted:
            traces[args.trace.format(workers=n)] = chrome_trace(results[n])
    for path, trace in traces.items():
        write_atomic(path, json.dumps(trace))
    if args.tables:
        for name, frame in result_tables(results[max(workers)]).items():
            write_atomic(Path(args.tables) / f"{name}.csv", frame.to_csv(index=False))
    if args.format == "table":
        print(f"# {config.source}: {config.workload.net}, batch {config.workload.batch} "
              f"({config.strategy.scaling}), {config.strategy.kind}, {config.system.topology}")
    print(render(table, args.format), end="")
    warn_placeholders(table)
    return 0


def warn_placeholders(table) -> None:
    """One stderr line per result that used devices whose efficiencies are placeholders."""
    if "placeholder_devices" not in table:
        return
    names = sorted({n for cell in table["placeholder_devices"].dropna() for n in str(cell).split(",")
                    if n})
    if names:
        print(f"paleosim: warning: {', '.join(names)}: placeholder efficiencies (no measurement "
              "behind them; see `paleosim devices`); treat compute times as rough",
              file=sys.stderr)
