"""TensorFlow's DGX-1 benchmark table: training throughput on 1 to 8 P100s, simulated and published.

The TensorFlow performance page (tf_cnn_benchmarks, May 2017) lists images/s of synthetic-data
training on one DGX-1 (8 P100 SXM2 on the NVLink hybrid cube-mesh) at batch 64 per GPU (512 for
AlexNet). Its configuration per model, which the simulation follows (the reference table's
cases): Inception v3, ResNet-50 and ResNet-152 with parameter servers on the GPUs (one shard per
GPU, ``variable_update=parameter_server``); AlexNet and VGG-16 with replicated variables and
NCCL all-reduce (a ring, overlapped with the backward pass).

Sources of each curve: simulated (paleosim, the ``dgx1_p100`` preset, the default roofline cost
model with the catalog's calibrated P100); published (the project's reference table,
simulator/validation/reference.json; the rows tfbench-dgx1-*); ideal (the published single-GPU
throughput times the GPU count). Paleo has no P100 preset and no NVLink network, so there is no
Paleo curve.

    python3 experiments/tf_dgx1.py [--out DIR] [--jobs N]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import _common  # noqa: E402
from simulator.sweep import SweepSpec  # noqa: E402

NAME = "tf_dgx1"
WORKERS = (1, 2, 4, 8)
#: net -> per-GPU batch, as published
PS_NETS = {"inception_v3": 64, "resnet50": 64, "resnet152": 64}
NCCL_NETS = {"alexnet_v2": 512, "vgg16": 64}
TITLES = {"inception_v3": "Inception v3", "resnet50": "ResNet-50", "resnet152": "ResNet-152",
          "alexnet_v2": "AlexNet", "vgg16": "VGG-16"}
VARIANTS = {"parameter_server": "parameter server on the host CPU",
            "data_parallel": "replicated, NCCL ring"}


def series_name(net: str, batch: int) -> str:
    return f"{TITLES.get(net, net)}, batch {batch} per GPU"


def specs(*, nets: tuple[str, ...] | None = None, max_workers: int | None = None,
          iterations: int | None = None) -> dict[str, SweepSpec]:
    """One sweep per way of synchronising (and per batch size): ``ps_<batch>``, ``nccl_<batch>``."""
    workers = [w for w in WORKERS if max_workers is None or w <= max_workers]
    out = {}
    for kind, table in (("ps", PS_NETS), ("nccl", NCCL_NETS)):
        by_batch: dict[int, list[str]] = {}
        for net, batch in table.items():
            if nets is None or net in nets:
                by_batch.setdefault(batch, []).append(net)
        for batch, names in by_batch.items():
            if kind == "ps":
                strategy = {"kind": "parameter_server", "placement": "worker_hosts",
                            "shards": 1, "overlap": True, "mode": "sync",
                            **_common.iterations(iterations)}
                grid = {"workload.net": names, "strategy.workers": workers}
                zip_ = []
            else:
                strategy = {"kind": "data_parallel", "algorithm": "ring", "overlap": True,
                            **_common.iterations(iterations)}
                grid = {"workload.net": names, "strategy.workers": workers}
                zip_ = []
            out[f"{kind}_{batch}"] = SweepSpec(name=f"tf_dgx1_{kind}_{batch}", base={
                "workload": {"net": names[0], "batch": batch},
                "system": {"topology": "dgx1_p100"}, "strategy": strategy},
                grid=grid, zip=zip_)
    return out


def table(*, executor: str = "process", jobs: int | None = None,
          nets: tuple[str, ...] | None = None, max_workers: int | None = None,
          iterations: int | None = None) -> pd.DataFrame:
    """The tidy table: simulated, published and ideal images/s per net and GPU count."""
    tables = _common.run_specs(specs(nets=nets, max_workers=max_workers,
                                     iterations=iterations), executor=executor, jobs=jobs)
    records = []
    batch_of = {**PS_NETS, **NCCL_NETS}
    for key, frame in tables.items():
        kind = "parameter_server" if key.startswith("ps") else "data_parallel"
        records += _common.simulated(
            frame, experiment=NAME, variant=VARIANTS[kind],
            series=lambda r: series_name(r["workload.net"], batch_of[r["workload.net"]]))
    rows = [r for r in _common.reference_rows("tfbench-dgx1-*")
            if r.metric == "images_per_s" and (nets is None or r.case["workload"]["net"] in nets)]
    single = {series_name(r.case["workload"]["net"], r.case["workload"]["batch"]): r.published
              for r in rows if r.case["strategy"]["workers"] == 1}
    records += _common.published(
        rows, experiment=NAME, single_gpu=single,
        series=lambda r: series_name(r.case["workload"]["net"], r.case["workload"]["batch"]))
    frame = _common.tidy(records)
    for series, part in frame.groupby("series", sort=False):
        base = single.get(series)
        if base is None:  # no published single-GPU row: start from the simulated one
            sim = part[(part["source"] == "simulated") & (part["workers"] == 1)]
            base = float(sim["samples_per_s"].iloc[0]) if len(sim) else None
        records += _common.ideal(part["workers"], experiment=NAME, series=series,
                                 samples_per_s=base)
    return _common.tidy(records)


def figure(frame: pd.DataFrame):
    from simulator.plots import scaling_figure
    return scaling_figure(frame, metric="samples_per_s", ncols=3, logx=False, logy=False,
                          title="TensorFlow benchmarks on one DGX-1 (8 P100): images/s")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per net and GPU count with a published value: simulated and published images/s."""
    out = []
    for series, part in frame.groupby("series", sort=False):
        pub = part[part["source"] == "published"]
        for _, p in pub.iterrows():
            sim = part[(part["source"] == "simulated") & (part["workers"] == p["workers"])]
            value = sim["samples_per_s"].iloc[0] if len(sim) else float("nan")
            out.append({"series": series, "workers": p["workers"], "simulated": value,
                        "published": p["samples_per_s"], "error": value / p["samples_per_s"] - 1,
                        "row": p["reference"], "note": p["reason"][:60]})
    return pd.DataFrame(out)


main = _common.main_of(NAME, __doc__, table, figure, summary)

if __name__ == "__main__":
    sys.exit(main())
