"""Horovod's 128-GPU scaling efficiencies: Inception v3, ResNet-101 and VGG-16, 1 to 128 GPUs.

Horovod's README benchmark (October 2017; Sergeev and Del Balso, arXiv:1802.05799) reports the
scaling efficiency of synthetic-data training with 64 images per GPU on up to 128 Pascal GPUs
(32 servers of 4, 25 Gbit/s RoCE): 90% for Inception v3 and ResNet-101, 79% for VGG-16 at 128
GPUs. Horovod's ring all-reduce runs on tensors fused into 64 MiB buffers while the backward
pass goes on (tensor fusion), which the simulation follows: data parallel, ring all-reduce,
overlapped, 64 MiB buckets, on the ``horovod_roce`` preset.

Sources of each curve: simulated (paleosim, default roofline cost model); published (the
project's reference table, rows horovod-*); ideal (efficiency 1). Paleo has no preset for these
GPUs or RoCE, so there is no Paleo curve.

    python3 experiments/horovod.py [--out DIR] [--jobs N]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import _common  # noqa: E402
from simulator.sweep import SweepSpec  # noqa: E402

NAME = "horovod"
NETS = ("inception_v3", "resnet101", "vgg16")
WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)
TITLES = {"inception_v3": "Inception v3", "resnet101": "ResNet-101", "vgg16": "VGG-16"}
BUCKET_BYTES = 64 * 2**20  # Horovod's default fusion buffer, 64 MiB


def series_name(net: str) -> str:
    return f"{TITLES.get(net, net)}, 64 per GPU"


def specs(*, nets: tuple[str, ...] = NETS, max_workers: int | None = None,
          iterations: int | None = None) -> dict[str, SweepSpec]:
    """The sweep: nets x worker counts."""
    workers = [w for w in WORKERS if max_workers is None or w <= max_workers]
    return {"horovod": SweepSpec(name="horovod", base={
        "workload": {"net": nets[0], "batch": 64},
        "system": {"topology": "horovod_roce"},
        "strategy": {"kind": "data_parallel", "algorithm": "ring", "overlap": True,
                     "bucket_bytes": BUCKET_BYTES, **_common.iterations(iterations)}},
        grid={"workload.net": list(nets), "strategy.workers": workers})}


def table(*, executor: str = "process", jobs: int | None = None,
          nets: tuple[str, ...] = NETS, max_workers: int | None = None,
          iterations: int | None = None) -> pd.DataFrame:
    """The tidy table: simulated, published and ideal efficiencies per net and GPU count."""
    tables = _common.run_specs(specs(nets=nets, max_workers=max_workers,
                                     iterations=iterations), executor=executor, jobs=jobs)
    records = _common.simulated(tables["horovod"], experiment=NAME,
                                series=lambda r: series_name(r["workload.net"]))
    rows = [r for r in _common.reference_rows("horovod-*")
            if r.case["workload"]["net"] in nets]
    records += _common.published(rows, experiment=NAME,
                                 series=lambda r: series_name(r.case["workload"]["net"]))
    frame = _common.tidy(records)
    for series, part in frame.groupby("series", sort=False):
        records += _common.ideal(part["workers"], experiment=NAME, series=series)
    return _common.tidy(records)


def figure(frame: pd.DataFrame):
    from simulator.plots import scaling_figure
    return scaling_figure(frame, metric="scaling_efficiency", ncols=3, ylim=(0, 1.05),
                          title="Horovod on 25 Gbit/s RoCE (4 Pascal GPUs per server): "
                                "scaling efficiency")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    out = []
    for series, part in frame.groupby("series", sort=False):
        n = int(part["workers"].max())
        sim = part[(part["source"] == "simulated") & (part["workers"] == n)]
        pub = part[(part["source"] == "published") & (part["workers"] == n)]
        out.append({"series": series, "workers": n,
                    "simulated": sim["scaling_efficiency"].iloc[0] if len(sim) else None,
                    "published": pub["scaling_efficiency"].iloc[0] if len(pub) else None,
                    "status": sim["status"].iloc[0] if len(sim) else "-"})
    return pd.DataFrame(out)


main = _common.main_of(NAME, __doc__, table, figure, summary)

if __name__ == "__main__":
    sys.exit(main())
