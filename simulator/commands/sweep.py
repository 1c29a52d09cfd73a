"""`paleosim sweep`: run a grid of configurations; one row per point, resumable."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulator.commands._output import FORMATS, render, write_atomic
from simulator.errors import SpecError
from simulator.sweep import EXECUTORS, JOURNAL, load_sweep, plan_sweep, run_sweep
from simulator.trace import chrome_trace

DESCRIPTION = """\
Run every point of a sweep: a base configuration plus a grid of axes (YAML or JSON; see
docs/SWEEPS.md and experiments/sweeps/). Each point becomes one row with its inputs (the grid
axes and a point_id), its outputs (the simulation's metrics, or Paleo's estimate with engine:
paleo), status (ok | infeasible | error), reason, speedup and scaling efficiency against the
1-worker point with the same other inputs, and wall_s.

Points run in parallel local processes (--jobs, default: every CPU), in this process
(--executor serial), or on a Dask cluster (--executor dask --scheduler ADDRESS; needs
`pip install 'paleosim[dask]'` here and on the workers).

Results go to DIR: rows.jsonl (the journal, one line per finished point, flushed as points
finish), results.csv and results.parquet (if pyarrow or fastparquet is installed), and the spec.
After Ctrl-C (exit code 130) or a kill, run the same command again: it computes only the missing
points. An infeasible configuration (out of memory, more workers than GPUs...) is a flagged row,
not a failure of the sweep. Exit codes: 0 done, 2 bad spec, 130 interrupted.

--plot PATH draws the table (throughput and scaling efficiency against workers, one line per
combination of the other axes; needs `pip install 'paleosim[plot]'`); --trace PATH writes the
timeline of the point with the most workers (the first such in grid order that ran ok), run
again, as a Chrome trace for https://ui.perfetto.dev or chrome://tracing."""

SUMMARY_COLUMNS = ("status", "iteration_s", "samples_per_s", "speedup", "scaling_efficiency",
                   "reason")


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of configurations (resumable, parallel)",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC", help="sweep spec (.yaml or .json)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: results/<SPEC's stem>/); rerunning with the "
                        "same folder resumes")
    p.add_argument("--jobs", "-j", type=_positive, default=None, metavar="N",
                   help="parallel local processes (default: the number of CPUs)")
    p.add_argument("--executor", choices=EXECUTORS, default="process",
                   help="process (default): local processes; serial: this process; dask: the "
                        "Dask cluster at --scheduler")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask scheduler address, e.g. tcp://10.0.0.1:8786 (--executor dask)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default): a summary of every point; csv or json: the whole "
                        "results table")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: only when stderr is a terminal)")
    p.add_argument("--retry-errors", action="store_true",
                   help="run again the journal's points whose status is error")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the spec and list its points without running them")
    p.add_argument("--plot", metavar="PATH", default=None,
                   help="also draw the table into PATH (.png, .svg or .pdf): throughput and "
                        "scaling efficiency against workers, a line per combination of the "
                        "other axes (needs matplotlib: pip install 'paleosim[plot]')")
    p.add_argument("--trace", metavar="PATH", default=None,
                   help="also write a Chrome trace (Perfetto, chrome://tracing) of the point "
                        "with the most workers (engine simulate; it is simulated again)")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})")
    return value


def run(args) -> int:
    spec = load_sweep(args.spec)
    if args.dry_run:
        plan = plan_sweep(spec)
        import pandas as pd
        frame = pd.DataFrame([{"point_id": p.point_id, **p.inputs, "workers": p.workers}
                              for p in plan.points])
        if args.format == "table":
            print(f"# {spec.name}: {len(plan.points)} points, engine {spec.engine}"
                  + (" (worker count 1 added for speedups)" if plan.added_baseline else ""))
        print(render(frame, args.format), end="")
        return 0
    if args.trace and spec.engine != "simulate":
        raise SpecError("a timeline needs engine: simulate (Paleo's estimate has none)",
                        field="--trace", value=args.trace)
    if args.plot:  # before the sweep runs, not after
        from simulator.plots import import_matplotlib
        import_matplotlib()
    out = Path(args.out) if args.out else Path("results") / Path(args.spec).stem
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    tally = Tally(ProgressBar(sys.stderr) if show else None)
    try:
        frame = run_sweep(spec, out_dir=out, executor=args.executor, jobs=args.jobs,
                          scheduler=args.scheduler, progress=tally,
                          retry_errors=args.retry_errors)
    except KeyboardInterrupt:
        tally.close()
        print(f"paleosim: sweep interrupted: {tally.done} of {tally.total} points finished, "
              f"saved in {out / JOURNAL}; run the same command again to compute only the "
              "missing ones", file=sys.stderr)
        return 130
    tally.close()
    info = frame.attrs["sweep"]
    if args.format == "table":
        counts = frame["status"].value_counts()
        print(f"# {info['name']}: {info['points']} points ("
              + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "infeasible", "error"))
              + f"); {info['computed']} computed, {info['reused']} from the journal; "
              f"results in {out / 'results.csv'}")
        inputs = [c for c in frame.columns if c in spec.grid]
        columns = inputs + [c for c in SUMMARY_COLUMNS if c in frame.columns]
        print(render(frame[columns], "table"), end="")
    else:
        print(render(frame, args.format), end="")
    notes = []
    if args.plot:
        from simulator.plots import save_figure, sweep_figure
        save_figure(sweep_figure(frame, list(spec.grid), title=info["name"]), args.plot)
        notes.append(f"# plot: {args.plot}")
    if args.trace:
        point = largest_point(spec, frame)
        write_atomic(args.trace, json.dumps(chrome_trace(simulate_point(spec, point))))
        where = ", ".join(f"{k}={v}" for k, v in point.inputs.items())
        notes.append(f"# trace: {args.trace} (point {point.point_id}: {where})")
    for note in notes:  # csv and json keep stdout to the table
        print(note, file=sys.stdout if args.format == "table" else sys.stderr)
    from simulator.commands.simulate import warn_placeholders
    warn_placeholders(frame)
    return 0


def largest_point(spec, frame):
    """The sweep point with the most workers that ran ok (the first in grid order)."""
    ok = set(frame.loc[frame["status"] == "ok", "point_id"])
    points = [p for p in plan_sweep(spec).points if p.point_id in ok]
    if not points:
        raise SpecError("no point ran ok, so there is no timeline to write", field="--trace")
    most = max(p.workers for p in points)
    return next(p for p in points if p.workers == most)


def simulate_point(spec, point):
    """The :class:`~simulator.simulate.SimResult` of one point of a ``simulate`` sweep."""
    from simulator.config import config_from_dict
    from simulator.simulate import simulate
    cfg = config_from_dict(point.config, source=None)
    return simulate(cfg.workload, cfg.system, cfg.strategy, seed=spec.seed)


class Tally:
    """The progress callback: remembers the counts and forwards them to a bar, if any."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.done = self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.bar is not None:
            self.bar(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ProgressBar:
    """``progress(done, total)`` drawn on a stream: tqdm if installed, else a plain bar."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.done = 0
        self.total = 0
        self._tqdm = None
        try:
            import tqdm
            self._tqdm_module = tqdm
        except ImportError:
            self._tqdm_module = None

    def __call__(self, done: int, total: int) -> None:
        if self._tqdm_module is not None:
            if self._tqdm is None:
                self._tqdm = self._tqdm_module.tqdm(total=total, initial=done, unit="point",
                                                   file=self.stream, desc="sweep")
            else:
                self._tqdm.update(done - self.done)
        else:
            width = 30
            filled = width * done // total if total else width
            self.stream.write(f"\rsweep [{'#' * filled}{'.' * (width - filled)}] "
                              f"{done}/{total} points")
            self.stream.flush()
        self.done, self.total = done, total

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.total:
            self.stream.write("\n")
            self.stream.flush()
