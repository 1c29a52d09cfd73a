"""Paleo's four case studies: simulated, Paleo-analytical, published and ideal speedups.

Qi, Sparks and Talwalkar, "Paleo: A Performance Model for Deep Neural Networks" (ICLR 2017),
checked their model against four published scaling results. Their setups (Paleo's experiment
scripts; ../shared/docs/PALEO_COST_MODEL.md section 4):

1. FireCaffe (Iandola et al., CVPR 2016): NiN on up to 128 K20X nodes of Cray Titan, reduction-
   tree all-reduce, strong scaling at global batch 256 and 1,024 (Paleo: infiniband, Caffe PPP).
2. TensorFlow (Murray, TF 0.8 blog, 2016): Inception v3 with parameter servers on up to 100 K40
   workers, weak scaling (Paleo: ethernet 10 Gbit/s, TensorFlow PPP, batch 256 per worker).
3. One weird trick (Krizhevsky, arXiv:1404.5997, Table 1): one-tower AlexNet, conv layers
   data-parallel and FC layers model-parallel, on 1, 2, 4, 8 K20s in one PCIe 2.0 server
   (Paleo: hybrid mode, pcie2, cuda-convnet2 PPP, 128 images per GPU).
4. MXNet (Vogels, AWS, 2016): Inception v3 on up to 128 K80 dies (8 p2.16xlarge instances,
   20 Gbit/s), KVStore dist_sync, 32 images per die (Paleo: ethernet20, MXNet PPP).

Sources of each curve:

- simulated: paleosim's discrete-event simulator with the shipped nets, the device catalog, the
  cluster presets and the default roofline cost model with the catalog's calibrated
  efficiencies, each case configured as its row of the reference table
  (simulator/validation/reference.json), so that a point here and `paleosim validate`'s
  simulation of the same row agree. FireCaffe = reduction-tree all-reduce after the backward
  pass; TensorFlow = 17 dedicated parameter-server hosts, variables dealt round-robin,
  gradients sent as computed, synchronous; one weird trick = the hybrid strategy, FC layers on
  all K x 128 images at once (Krizhevsky's main rows) and on the K batches one after another;
  MXNet = KVStore dist_device_sync as the reference table lays it out (a server on every
  instance's CPU, the dies' gradients reduced on the GPUs before one push per instance), and
  Goyal's three-phase all-reduce, which moves the same bytes per instance.
- Paleo: the Paleo-compatible estimator (simulator.paleo.estimate) with Paleo's device, network
  and PPP presets, each of its schemes OneToAll, TreeAllReduce and ButterflyAllReduce; on the
  shipped nets by default, on Paleo's own net files with --paleo-nets DIR.
- published: the project's reference table (simulator/validation/reference.json).
- ideal: speedup = workers.

Speedup is throughput over one GPU training alone (no parameter server, no all-reduce): for
FireCaffe over one K20X at batch 256 (the paper's baseline; batch 1,024 does not fit one K20X's
6 GB), for the others over one GPU at the per-GPU batch.

    python3 experiments/paleo_case_studies.py [--out DIR] [--jobs N] [--paleo-nets DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import _common  # noqa: E402
from simulator.sweep import SweepSpec  # noqa: E402

NAME = "paleo_case_studies"
FIRECAFFE_WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)
TF_WORKERS = (1, 2, 4, 8, 16, 50, 100)
OWT_WORKERS = (1, 2, 4, 8)
MXNET_WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)
FIRECAFFE_BATCHES = (256, 1024)
#: Paleo's own net files (../shared/data/paleo/nets) for the shipped nets, for --paleo-nets.
PALEO_FILES = {"nin": "nin.json", "inception_v3": "inception_v3.json",
               **{f"alexnet_owt_{k}gpu": f"alex_v2_{k}gpu.json" for k in (1, 2, 4, 8)}}
#: One K40 per worker host on PCIe 3.0, a 10 GbE switch and 17 parameter-server hosts (the
#: reference row tf-inception-100's case).
TF_TOPOLOGY = ("single_switch(servers=100, server={{'gpu': 'K40', 'gpus': 1, "
               "'pcie': 'pcie3_x16', 'nics': 1, 'nic': 'eth10', 'gpudirect_rdma': False}}, "
               "cpu_hosts=17)")
SERIES = {"firecaffe": "FireCaffe: NiN, K20X, global batch {batch}",
          "tf": "TensorFlow: Inception v3, K40, PS",
          "owt": "One weird trick: AlexNet, K20, hybrid",
          "mxnet": "MXNet: Inception v3, K80 (p2.16xlarge)"}
OWT_VARIANTS = {"all": "FC batch K·128", "sequential": "FC batch 128"}
MXNET_VARIANTS = {"parameter_server": "KVStore dist_device_sync",
                  "data_parallel": "three-phase all-reduce"}
#: The Paleo scheme the summary prints (the sweep engine's default; the CSV and the plot have
#: every scheme).
SUMMARY_SCHEME = "TreeAllReduce"


def _net(name: str, paleo_nets: str | Path | None) -> str:
    return name if paleo_nets is None else str(Path(paleo_nets) / PALEO_FILES[name])


def _workers(default, limit):
    return tuple(w for w in default if limit is None or w <= limit)


def specs(*, max_workers: int | None = None, iterations: int | None = None,
          paleo_nets: str | Path | None = None) -> dict[str, SweepSpec]:
    """The sweeps of the four case studies, by name (``<case>_<source>``).

    ``max_workers`` drops larger worker counts (for quick checks); ``iterations`` is the number
    of simulated iterations per point (default: each strategy's; the last one is measured)."""
    fc_w, tf_w = _workers(FIRECAFFE_WORKERS, max_workers), _workers(TF_WORKERS, max_workers)
    owt_w, mx_w = _workers(OWT_WORKERS, max_workers), _workers(MXNET_WORKERS, max_workers)
    one = {"kind": "data_parallel", "workers": 1}
    out = {}
    # 1. FireCaffe
    fc_base = {"workload": {"net": "nin", "batch": 1024, "dtype": "fp32", "optimizer": "sgd"},
               "system": {"topology": "titan_firecaffe"},
               "strategy": {"kind": "data_parallel", "scaling": "strong", "overlap": False,
                            "algorithm": "tree", **_common.iterations(iterations)}}
    out["firecaffe_sim"] = SweepSpec(name="firecaffe_sim", base=fc_base, grid={
        "workload.batch": list(FIRECAFFE_BATCHES), "strategy.workers": list(fc_w)})
    out["firecaffe_baseline"] = SweepSpec(name="firecaffe_baseline", base={
        **fc_base, "workload": {**fc_base["workload"], "batch": 256},
        "strategy": {**one, **_common.iterations(iterations)}})
    out["firecaffe_paleo"] = SweepSpec(name="firecaffe_paleo", engine="paleo", base={
        "net": _net("nin", paleo_nets), "device": "K20X", "network": "infiniband",
        "software": "caffe", "scaling": "strong", "batch": 1024},
        grid={"batch": list(FIRECAFFE_BATCHES), "workers": list(fc_w)})
    # 2. TensorFlow Inception v3
    tf_base = {"workload": {"net": "inception_v3", "batch": 32, "optimizer": "momentum"},
               "system": {"topology": TF_TOPOLOGY},
               "strategy": {"kind": "parameter_server", "shards": 17, "placement": "dedicated",
                            "split": "round_robin", "overlap": True, "mode": "sync",
                            **_common.iterations(iterations)}}
    out["tf_sim"] = SweepSpec(name="tf_sim", base=tf_base, grid={"strategy.workers": list(tf_w)})
    out["tf_baseline"] = SweepSpec(name="tf_baseline", base={
        **tf_base, "strategy": {**one, **_common.iterations(iterations)}})
    out["tf_paleo"] = SweepSpec(name="tf_paleo", engine="paleo", base={
        "net": _net("inception_v3", paleo_nets), "device": "K40", "network": "ethernet",
        "software": "tensorflow", "scaling": "weak", "batch": 256},
        grid={"workers": list(tf_w)})
    # 3. One weird trick (the Paleo side is its hybrid mode: see owt_paleo)
    out["owt_sim"] = SweepSpec(name="owt_sim", base={
        "workload": {"net": "alexnet_owt_8gpu", "batch": 128},
        "system": {"topology": "k20_server"},
        "strategy": {"kind": "hybrid", "algorithm": "ring", "overlap": True, "bucket_bytes": 0,
                     **_common.iterations(iterations)}},
        grid={"strategy.fc_batch": list(OWT_VARIANTS), "strategy.workers": list(owt_w)})
    # 4. MXNet Inception v3: KVStore dist_device_sync as the reference row lays it out (a
    # server on every instance's CPU, the dies' gradients reduced on the GPUs before one push
    # per instance), and Goyal's three-phase all-reduce, which moves the same bytes
    mx_system = {"topology": "aws_p2_16xlarge"}
    mx_workload = {"net": "inception_v3", "batch": 32, "optimizer": "momentum"}
    out["mxnet_ps_sim"] = SweepSpec(name="mxnet_ps_sim", base={
        "workload": mx_workload, "system": mx_system, "strategy": {}},
        grid={"strategy": [{"kind": "parameter_server", "workers": n,
                            "shards": max(1, -(-n // 16)), "placement": "worker_hosts",
                            "aggregation": "gpu", "split": "even", "overlap": True,
                            "mode": "sync", **_common.iterations(iterations)} for n in mx_w]})
    out["mxnet_hier_sim"] = SweepSpec(name="mxnet_hier_sim", base={
        "workload": mx_workload, "system": mx_system,
        "strategy": {"kind": "data_parallel", "algorithm": "three_phase", "overlap": True,
                     **_common.iterations(iterations)}},
        grid={"strategy.workers": list(mx_w)})
    out["mxnet_baseline"] = SweepSpec(name="mxnet_baseline", base={
        "workload": mx_workload, "system": mx_system,
        "strategy": {**one, **_common.iterations(iterations)}})
    out["mxnet_paleo"] = SweepSpec(name="mxnet_paleo", engine="paleo", base={
        "net": _net("inception_v3", paleo_nets), "device": "K80", "network": "ethernet20",
        "software": "mxnet", "scaling": "weak", "batch": 32},
        grid={"workers": list(mx_w)})
    return out


def owt_paleo(workers=OWT_WORKERS, *, paleo_nets: str | Path | None = None) -> list[dict]:
    """Paleo's hybrid-mode speedups of the one weird trick (the sweep's Paleo engine runs only
    Paleo's data-parallel mode): ``K t_1 / t_K`` of the ``total`` rows, the K-GPU net against
    the 1-GPU net, as the reference table's Paleo cases compute it."""
    from simulator.paleo import PaleoNet, estimate
    common = dict(device="K20", network="pcie2", software="cuda-convnet2", batch=128,
                  parallel="hybrid")

    def total_s(k: int) -> float:
        net = PaleoNet(_net(f"alexnet_owt_{k}gpu", paleo_nets))
        frame = estimate(net, hybrid_workers=k, **common)
        return float(frame.loc[frame["part"] == "total", "time_ms"].iloc[0]) / 1e3

    t1 = total_s(1)
    out = []
    for k in workers:
        t = total_s(k)
        speedup = k * t1 / t
        out.append({"experiment": NAME, "series": SERIES["owt"], "workers": k,
                    "source": "paleo", "variant": "hybrid", "status": "ok", "iteration_s": t,
                    "samples_per_s": 128 * k / t, "speedup": speedup,
                    "scaling_efficiency": speedup / k, "reference": "hybrid", "reason": ""})
    return out


def table(*, executor: str = "process", jobs: int | None = None,
          max_workers: int | None = None, iterations: int | None = None,
          paleo_nets: str | Path | None = None) -> pd.DataFrame:
    """The tidy table of the four case studies (columns: :data:`_common.COLUMNS`)."""
    tables = _common.run_specs(specs(max_workers=max_workers, iterations=iterations,
                                     paleo_nets=paleo_nets), executor=executor, jobs=jobs)
    rec: list[dict] = []
    exp = NAME

    def fc_series(row):
        return SERIES["firecaffe"].format(batch=int(row.get("workload.batch", row.get("batch"))))

    fc_base = _common.rate(tables["firecaffe_baseline"])
    rec += _common.simulated(tables["firecaffe_sim"], experiment=exp, series=fc_series,
                             baseline=fc_base)
    fc_paleo = tables["firecaffe_paleo"]
    at_256 = fc_paleo[(fc_paleo["batch"] == 256) & (fc_paleo["workers"] == 1)]
    rec += _common.paleo(fc_paleo, experiment=exp, series=fc_series, baseline={
        s: float(at_256["batch_size"].iloc[0]) / (float(at_256["time_comp_s"].iloc[0])
                                                  + float(at_256[f"{s}_s"].iloc[0]))
        for s in _common.PALEO_SCHEMES} if len(at_256) else None)
    rec += _common.simulated(tables["tf_sim"], experiment=exp, series=SERIES["tf"],
                             baseline=_common.rate(tables["tf_baseline"]))
    rec += _common.paleo(tables["tf_paleo"], experiment=exp, series=SERIES["tf"])
    rec += _common.simulated(tables["owt_sim"], experiment=exp, series=SERIES["owt"],
                             variant=lambda r: OWT_VARIANTS[r["strategy.fc_batch"]])
    owt_w = sorted(set(int(w) for w in tables["owt_sim"]["strategy.workers"]))
    rec += owt_paleo(owt_w, paleo_nets=paleo_nets)
    mx_base = _common.rate(tables["mxnet_baseline"])
    for key, kind in (("mxnet_ps_sim", "parameter_server"), ("mxnet_hier_sim", "data_parallel")):
        rec += _common.simulated(tables[key], experiment=exp, series=SERIES["mxnet"],
                                 variant=MXNET_VARIANTS[kind], baseline=mx_base)
    rec += _common.paleo(tables["mxnet_paleo"], experiment=exp, series=SERIES["mxnet"])
    rec += _published()
    frame = _common.tidy(rec)
    ideal = []
    for series, part in frame.groupby("series", sort=False):
        ideal += _common.ideal(part["workers"], experiment=exp, series=series)
    return _common.tidy(rec + ideal)


def _published() -> list[dict]:
    """The reference rows of the four case studies, placed in their series."""
    out = []
    rows = _common.reference_rows("firecaffe-nin-*")
    out += _common.published([r for r in rows if r.case["workload"]["batch"] in
                              FIRECAFFE_BATCHES], experiment=NAME,
                             series=lambda r: SERIES["firecaffe"].format(
                                 batch=r.case["workload"]["batch"]))
    out += _common.published(_common.reference_rows("tf-inception-100"), experiment=NAME,
                             series=SERIES["tf"])
    out += _common.published(
        [r for r in _common.reference_rows("krizhevsky-*") if r.metric == "speedup_vs_1gpu"],
        experiment=NAME, series=SERIES["owt"],
        variant=lambda r: OWT_VARIANTS[r.case["strategy"].get("fc_batch", "all")])
    out += _common.published(_common.reference_rows("mxnet-inception-*"), experiment=NAME,
                             series=SERIES["mxnet"])
    return out


def figure(frame: pd.DataFrame):
    """Speedup against workers, one panel per case study."""
    from simulator.plots import scaling_figure
    return scaling_figure(frame, metric="speedup", ncols=3,
                          title="Paleo's case studies: speedup over one GPU "
                                "(simulated, Paleo's three schemes, published, ideal)")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per series, the published points and the largest worker count: simulated (each variant),
    Paleo (TreeAllReduce, or its hybrid mode; the CSV has every scheme) and published
    speedups."""
    out = []
    for series, part in frame.groupby("series", sort=False):
        pub = part[part["source"] == "published"]
        for n in sorted(set(pub["workers"]) | {int(part["workers"].max())}):
            at = part[part["workers"] == n]
            sims = at[at["source"] == "simulated"]
            pal = at[(at["source"] == "paleo") & (at["variant"].isin([SUMMARY_SCHEME, "hybrid"]))]
            for _, sim in sims.iterrows():
                pubs = pub[(pub["workers"] == n) & pub["variant"].isin(["", sim["variant"]])]
                out.append({"series": series, "workers": n, "simulated": sim["variant"] or "-",
                            "speedup_sim": sim["speedup"],
                            "paleo_scheme": pal["variant"].iloc[0] if len(pal) else "-",
                            "speedup_paleo": pal["speedup"].iloc[0] if len(pal) else None,
                            "published": pubs["speedup"].iloc[0] if len(pubs) else None,
                            "status": sim["status"]})
    return pd.DataFrame(out)


def _add_options(p) -> None:
    p.add_argument("--paleo-nets", metavar="DIR", default=None,
                   help="Paleo's own net files (nin.json, inception_v3.json, alex_v2_Kgpu.json; "
                        "e.g. ../shared/data/paleo/nets) for the Paleo curves, instead of the "
                        "shipped nets")


main = _common.main_of(NAME, __doc__, table, figure, summary, add_options=_add_options,
                       options=lambda a: {"paleo_nets": a.paleo_nets})

if __name__ == "__main__":
    sys.exit(main())
