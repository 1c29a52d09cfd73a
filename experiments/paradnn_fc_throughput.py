"""How well does simulated V100 throughput track ParaDnn's measured FC throughput?

For every finished GPU row of ParaDnn's ``gpu_fc.json`` (176 FC workloads), generate the net,
simulate one training step on a catalog device with the default roofline cost model (every layer's
forward, backward-data and backward-filter phases, plus one optimizer update over all parameters),
and compare the simulated examples/s with the measured ``example_per_sec``:

- Spearman rank correlation over all rows;
- against batch at fixed width: one rank correlation per (layers, nodes) group over its batch
  sizes, summarised by median and mean over groups of 3 or more rows;
- against width at fixed batch: the same per (layers, batch) group over its node counts;
- the median (and quartiles) of simulated / measured examples/s.

ParaDnn trains with RMSProp with momentum (``paradnn/fc.py``): per parameter it reads the weight,
its gradient, the mean square and the momentum and writes three of them back, the same memory
traffic as Adam's (4 reads, 3 writes), which is what bounds an update on a GPU; paleosim has no
``rmsprop`` entry, so ``--optimizer adam`` is the default stand-in.

The files do not record the precision: 30 rows exceed the V100's fp32 peak, so the script runs at
every ``--dtype`` given (default fp32 and fp16) and reports each. Prints a small table and writes
``paradnn_fc_throughput.csv`` (one row per workload and dtype) and
``paradnn_fc_throughput_summary.csv`` and ``paradnn_fc_throughput_by_width.csv`` (the same
statistics per width) under ``--out``.

    python3 experiments/paradnn_fc_throughput.py [--data ../shared/data/paradnn/gpu_fc.json]
        [--device V100] [--dtype fp32 fp16] [--optimizer adam] [--out results/paradnn]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.catalog import get_device  # noqa: E402
from simulator.commands._output import render, write_atomic  # noqa: E402
from simulator.costmodel import DTYPE_BYTES, OPTIMIZERS, RooflineCostModel  # noqa: E402
from workloads.ops import PHASES  # noqa: E402
from workloads.paradnn import FCConfig, fc_net  # noqa: E402
from workloads import build_graph  # noqa: E402

MIN_GROUP = 3  # rows needed for a per-group rank correlation


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span (as Spearman's rho needs)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def grouped_spearman(frame: pd.DataFrame, by: list[str]) -> np.ndarray:
    rhos = [spearman(g["sim_example_per_sec"], g["example_per_sec"])
            for _, g in frame.groupby(by) if len(g) >= MIN_GROUP]
    return np.array([r for r in rhos if not np.isnan(r)])


def simulate(rows: pd.DataFrame, device, *, dtype: str, optimizer: str) -> pd.DataFrame:
    model = RooflineCostModel()
    out = []
    for row in rows.itertuples():
        cfg = FCConfig.from_label(row.label)
        graph = build_graph(fc_net(cfg), source=row.label)
        compute_s = sum(model.phase_time_s(layer, phase, device, dtype=dtype)
                        for layer in graph.layers for phase in PHASES)
        update_s = model.update_time_s(graph.total_params, device, dtype=dtype,
                                       optimizer=optimizer)
        step_s = compute_s + update_s
        out.append({"label": row.label, "layers": cfg.layers, "nodes": cfg.nodes,
                    "batch": cfg.batch, "params": graph.total_params, "dtype": dtype,
                    "compute_s": compute_s, "update_s": update_s, "step_s": step_s,
                    "sim_example_per_sec": cfg.batch / step_s,
                    "example_per_sec": row.example_per_sec,
                    "measured_tflops": row.flops / 1e3})
    frame = pd.DataFrame(out)
    frame["ratio"] = frame["sim_example_per_sec"] / frame["example_per_sec"]
    return frame


def summarize(frame: pd.DataFrame, fp32_peak_tflops: float) -> dict:
    by_batch = grouped_spearman(frame, ["layers", "nodes"])
    by_width = grouped_spearman(frame, ["layers", "batch"])
    above = frame["measured_tflops"] > fp32_peak_tflops
    q1, med, q3 = np.percentile(frame["ratio"], [25, 50, 75])
    return {"dtype": frame["dtype"].iloc[0], "rows": len(frame),
            "rho_all": spearman(frame["sim_example_per_sec"], frame["example_per_sec"]),
            "rho_batch_median": float(np.median(by_batch)), "rho_batch_mean": by_batch.mean(),
            "batch_groups": len(by_batch),
            "rho_width_median": float(np.median(by_width)), "rho_width_mean": by_width.mean(),
            "width_groups": len(by_width),
            "ratio_median": med, "ratio_q1": q1, "ratio_q3": q3,
            "ratio_median_above_fp32_peak": float(frame.loc[above, "ratio"].median()),
            "rows_above_fp32_peak": int(above.sum())}


def _cell(value) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) > 1.5 else f"{value:.3f}"


def by_width(frame: pd.DataFrame) -> pd.DataFrame:
    """Per width (nodes): rows, rank correlation over all its rows, median simulated/measured."""
    rows = []
    for (dtype, nodes), g in frame.groupby(["dtype", "nodes"], sort=True):
        rows.append({"dtype": dtype, "nodes": nodes, "rows": len(g),
                     "rho": spearman(g["sim_example_per_sec"], g["example_per_sec"]),
                     "ratio_median": float(g["ratio"].median()),
                     "measured_eps_max": float(g["example_per_sec"].max())})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=REPO.parent / "shared" / "data" / "paradnn" / "gpu_fc.json",
                        help="ParaDnn's gpu_fc.json (default: ../shared/data/paradnn/gpu_fc.json)")
    parser.add_argument("--device", default="V100", help="device catalog name (default V100)")
    parser.add_argument("--dtype", nargs="+", default=["fp32", "fp16"], choices=sorted(DTYPE_BYTES),
                        help="training dtypes to simulate (default: fp32 fp16)")
    parser.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS),
                        help="update cost; adam has RMSProp-with-momentum's memory traffic "
                             "(default adam)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "paradnn",
                        help="folder for the CSV files (default results/paradnn)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"ParaDnn results not found: {args.data}", file=sys.stderr)
        return 2
    data = json.loads(args.data.read_text())
    rows = pd.DataFrame({k: data[k] for k in ("labels", "example_per_sec", "flops")}).rename(
        columns={"labels": "label"})
    device = get_device(args.device)
    frames, summaries = [], []
    for dtype in args.dtype:
        frame = simulate(rows, device, dtype=dtype, optimizer=args.optimizer)
        frames.append(frame)
        summaries.append(summarize(frame, device.peak("fp32") / 1e12))
    per_row = pd.concat(frames, ignore_index=True)
    summary = pd.DataFrame(summaries)
    write_atomic(args.out / "paradnn_fc_throughput.csv", per_row.to_csv(index=False))
    write_atomic(args.out / "paradnn_fc_throughput_summary.csv", summary.to_csv(index=False))
    print(f"# ParaDnn FC on {device.name} (roofline cost model, optimizer {args.optimizer}): "
          f"simulated vs measured examples/s, {len(rows)} workloads")
    shown = summary[["dtype", "rows", "rho_all", "rho_batch_median", "rho_batch_mean",
                     "batch_groups", "rho_width_median", "rho_width_mean", "width_groups",
                     "ratio_median", "ratio_q1", "ratio_q3", "rows_above_fp32_peak",
                     "ratio_median_above_fp32_peak"]]
    table = shown.set_index("dtype").T.apply(lambda col: col.map(_cell))
    print(render(table.reset_index(names="metric").rename_axis(columns=None), "table"), end="")
    widths = by_width(per_row)
    write_atomic(args.out / "paradnn_fc_throughput_by_width.csv", widths.to_csv(index=False))
    print("# per width: rank correlation over the width's rows, median simulated/measured")
    print(render(widths, "table", float_format="{:.3f}"), end="")
    ceiling = rows["example_per_sec"].max()
    near = int((rows["example_per_sec"] > 0.9 * ceiling).sum())
    print(f"# measured ceiling: {ceiling:.0f} examples/s; {near} rows within 10% of it")
    print(f"# wrote paradnn_fc_throughput.csv, _summary.csv and _by_width.csv under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
