"""Megatron-LM's weak scaling: model TFLOP/s per GPU as the model grows with the GPU count.

Two published weak-scaling series, each simulated with the ``parallel3d`` strategy (tensor x
pipeline x data parallelism), fp16 with Adam and full activation recomputation, and the shipped
transformer presets:

1. The Megatron-LM README (September 2020): GPT 1.2B on 1 V100 to 8.3B on 8, tensor parallelism
   of degree 1, 2, 4, 8 inside one DGX-2H (NVSwitch), 8 sequences of 1,024 tokens per iteration
   (presets megatron-gpt-1.16b ... megatron-gpt-8.67b); published as iteration times.
2. Narayanan et al., "Efficient Large-Scale Language Model Training on GPU Clusters Using
   Megatron-LM" (SC21), Table 1: GPT 1.7B on 32 A100s to 145.6B on 1,536 of Selene (DGX A100
   on an HDR fat tree), published as model TFLOP/s per GPU. By default the points up to 512 GPUs
   run (1.7B, 7.5B, 39.1B: seconds); ``--max-workers 1536`` adds 145.6B on 1,536 GPUs (about
   4.5 minutes and 4 GB on a 2-core machine). The table's 1T row on 3,072 GPUs is ``pending``
   there (about 40 GB of memory to simulate), so it is left out here too.

The configurations follow the reference table's cases (simulator/validation/reference.json, rows
megatron-v100-* and ptdp-*): degrees, micro-batches, schedule and topology per row; the tensor-
parallel collectives timed alone on the NVSwitch (``tp_comm: isolated``, exact there) and one
operation per pass (``granularity: pass``) to keep the large runs fast.

Model TFLOP/s per GPU is Megatron-LM's count (Narayanan et al., section 5.1): ``96 B s l h^2
(1 + s/(6h) + V/(16 l h))`` FLOPs per iteration of B sequences with full recomputation, over
the iteration time and the GPU count; the README's iteration times are converted the same way.
Ideal (perfect weak scaling): the per-GPU rate of the series' smallest point, published where
there is one, else simulated. Paleo has no tensor or pipeline parallelism and no V100/A100
presets: no Paleo curve.

    python3 experiments/megatron_weak_scaling.py [--out DIR] [--jobs N] [--max-workers N]
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402

import _common  # noqa: E402
from simulator.sweep import SweepSpec  # noqa: E402

NAME = "megatron_weak_scaling"
README = "Megatron-LM README: GPT 1.2B-8.3B, DGX-2H (V100)"
PTDP = "SC21 Table 1: GPT 1.7B-146B, Selene (A100)"
#: GPUs -> transformer preset (workloads/presets/transformers.json), 8 sequences per iteration
README_MODELS = {1: "megatron-gpt-1.16b", 2: "megatron-gpt-2.03b", 4: "megatron-gpt-4.24b",
                 8: "megatron-gpt-8.67b"}
README_BATCH = 8
#: (preset, global batch, degrees and schedule, Selene fat tree k) per SC21 Table 1 row
PTDP_CASES = (
    ("ptdp-gpt-1.7b", 512, {"tp": 1, "pp": 1, "dp": 32, "micro_batch": 16}, 16),
    ("ptdp-gpt-7.5b", 512, {"tp": 4, "pp": 1, "dp": 32, "micro_batch": 16}, 16),
    ("ptdp-gpt-39.1b", 1536, {"tp": 8, "pp": 2, "dp": 32, "micro_batch": 1}, 16),
    ("ptdp-gpt-145.6b", 2304, {"tp": 8, "pp": 8, "dp": 24, "micro_batch": 1,
                               "schedule": "interleaved", "chunks": 2}, 24),
)
DEFAULT_MAX_WORKERS = 512
COMMON = {"kind": "parallel3d", "recompute": "full", "tp_comm": "isolated",
          "granularity": "pass"}
WORKLOAD = {"dtype": "fp16", "optimizer": "adam"}
EXTRA = ("model", "tflops_per_gpu")


def strategy_available() -> bool:
    """Whether the ``parallel3d`` strategy is registered in this checkout."""
    from simulator.strategies.registry import spec_classes
    return "parallel3d" in spec_classes()


def model_flops(preset: str, batch: int) -> float:
    """Megatron-LM's FLOPs of one iteration of ``batch`` sequences of ``preset`` with full
    recomputation (:func:`workloads.transformer.gpt_flops_formula`)."""
    from workloads.transformer import gpt_flops_formula, preset_config
    cfg = preset_config(preset)
    return gpt_flops_formula(batch=batch, layers=cfg.layers, hidden=cfg.hidden,
                             seq_len=cfg.seq_len, vocab=cfg.vocab, recompute=True)


def write_nets(folder: str | Path, presets) -> dict[str, str]:
    """Write transformer presets as net files into ``folder``; ``{preset: path}``.

    A sweep validates ``workload.net`` among shipped nets and files only (presets load by name
    in ``paleosim simulate`` and the validation, not yet in a sweep), so the presets go
    through files; a file holds exactly the preset's net."""
    from workloads.transformer import preset_spec
    from workloads.zoo import to_json
    paths = {}
    for preset in presets:
        path = Path(folder) / f"{preset}.json"
        path.write_text(to_json(preset_spec(preset, batch=1)), encoding="utf-8")
        paths[preset] = str(path)
    return paths


def cases(max_workers: int | None = DEFAULT_MAX_WORKERS) -> list[dict]:
    """Every point as ``{series, preset, batch, gpus, strategy, topology}``, up to
    ``max_workers`` GPUs."""
    out = [{"series": README, "preset": p, "batch": README_BATCH, "gpus": g,
            "strategy": {**COMMON, "tp": g, "pp": 1, "dp": 1, "microbatches": 1,
                         "iterations": 2},
            "topology": "dgx2h"} for g, p in README_MODELS.items()]
    for preset, batch, degrees, k in PTDP_CASES:
        gpus = degrees["tp"] * degrees["pp"] * degrees["dp"]
        topology = "selene(servers={servers})" if k == 16 else f"selene(k={k}, servers={{servers}})"
        out.append({"series": PTDP, "preset": preset, "batch": batch, "gpus": gpus,
                    "strategy": {**COMMON, **degrees, "iterations": 1}, "topology": topology})
    return [c for c in out if max_workers is None or c["gpus"] <= max_workers]


def specs(points: list[dict], nets: dict[str, str]) -> dict[str, SweepSpec]:
    """One sweep per topology, workload and strategy zipped (``nets``: preset -> file):
    ``readme`` (the DGX-2H), ``ptdp_<i>`` (Selene's fat trees)."""
    by_topology: dict[str, list[dict]] = {}
    for c in points:
        by_topology.setdefault(c["topology"], []).append(c)
    out = {}
    for topology, group in by_topology.items():
        name = "readme" if group[0]["series"] == README else f"ptdp_{len(out)}"
        system = {"topology": topology} if topology == "dgx2h" else {
            "topology": topology, "gpus_per_server": 8}
        workloads = [{"net": nets[c["preset"]], "batch": c["batch"], **WORKLOAD} for c in group]
        strategies = [c["strategy"] for c in group]
        out[name] = SweepSpec(
            name=f"megatron_{name}", baseline=False,
            base={"workload": workloads[0], "system": system, "strategy": strategies[0]},
            grid={"workload": workloads, "strategy": strategies},
            zip=[["workload", "strategy"]] if len(group) > 1 else ())
    return out


def table(*, executor: str = "process", jobs: int | None = None,
          max_workers: int | None = DEFAULT_MAX_WORKERS) -> pd.DataFrame:
    """The tidy table with ``model`` and ``tflops_per_gpu``. Without the ``parallel3d``
    strategy the simulated rows are flagged ``error``: "strategy not available"."""
    points = cases(max_workers)
    every = cases(None)  # published points are shown whatever max_workers leaves out
    by_key = {(c["series"], c["gpus"]): c for c in every}
    records: list[dict] = []
    if strategy_available():
        with tempfile.TemporaryDirectory(prefix="paleosim-megatron-") as folder:
            nets = write_nets(folder, [c["preset"] for c in points])
            tables = _common.run_specs(specs(points, nets), executor=executor, jobs=jobs)
        for key, frame in tables.items():
            records += _common.simulated(frame, experiment=NAME, variant="parallel3d",
                                         series=README if key == "readme" else PTDP)
    else:
        for c in points:
            records.append({"experiment": NAME, "series": c["series"], "workers": c["gpus"],
                            "source": "simulated", "variant": "parallel3d", "status": "error",
                            "reason": "strategy not available: parallel3d is not registered"})
    rows = [r for r in _common.reference_rows("megatron-v100-*,ptdp-*")
            if (README if r.id.startswith("megatron") else PTDP,
                _common.case_workers(r.case)) in by_key]
    records += _common.published(
        rows, experiment=NAME, series=lambda r: README if r.id.startswith("megatron") else PTDP)
    for rec in records:
        c = by_key[(rec["series"], rec["workers"])]
        rec["model"] = c["preset"]
        flops = model_flops(c["preset"], c["batch"])
        t = rec.get("iteration_s", math.nan)
        if math.isnan(rec.get("tflops_per_gpu", math.nan)):
            rec["tflops_per_gpu"] = flops / (t * rec["workers"]) / 1e12
        if math.isnan(t) and not math.isnan(rec["tflops_per_gpu"]):
            rec["iteration_s"] = flops / (rec["tflops_per_gpu"] * 1e12 * rec["workers"])
            rec["samples_per_s"] = c["batch"] / rec["iteration_s"]
    shown = {(r["series"], r["workers"]) for r in records}
    for series in dict.fromkeys(c["series"] for c in points):
        start = _smallest_rate(records, series)
        for c in every:
            if c["series"] == series and (series, c["gpus"]) in shown:
                t = model_flops(c["preset"], c["batch"]) / (start * 1e12 * c["gpus"])
                records.append({"experiment": NAME, "series": series, "workers": c["gpus"],
                                "source": "ideal", "status": "ok", "iteration_s": t,
                                "samples_per_s": c["batch"] / t, "model": c["preset"],
                                "tflops_per_gpu": start})
    return _common.tidy(records, extra=EXTRA)


def _smallest_rate(records: list[dict], series: str) -> float:
    """Model TFLOP/s per GPU at the series' smallest GPU count: published, else simulated."""
    mine = [r for r in records if r["series"] == series]
    smallest = min(r["workers"] for r in mine)
    for source in ("published", "simulated"):
        for r in mine:
            v = r.get("tflops_per_gpu", math.nan)
            if r["source"] == source and r["workers"] == smallest and not math.isnan(v):
                return v
    return math.nan


def figure(frame: pd.DataFrame):
    from simulator.plots import scaling_figure
    return scaling_figure(frame, metric="tflops_per_gpu", logy=False, ncols=2,
                          ylim=(0, None),
                          xlabel="GPUs (the model grows with them)",
                          labels={"ideal": "ideal (the smallest point's rate per GPU)"},
                          title="Megatron-LM weak scaling: model TFLOP/s per GPU")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    out = []
    for (series, n), part in frame.groupby(["series", "workers"], sort=False):
        get = {s: part[part["source"] == s] for s in ("simulated", "published", "ideal")}
        sim = get["simulated"]
        out.append({"series": series.split(":")[0], "gpus": n, "model": part["model"].iloc[0],
                    "tflops_sim": sim["tflops_per_gpu"].iloc[0] if len(sim) else None,
                    "tflops_published": (get["published"]["tflops_per_gpu"].iloc[0]
                                         if len(get["published"]) else None),
                    "iteration_s_sim": sim["iteration_s"].iloc[0] if len(sim) else None,
                    "status": sim["status"].iloc[0] if len(sim) else "-",
                    "reason": sim["reason"].iloc[0][:60] if len(sim) else ""})
    return pd.DataFrame(out)


main = _common.main_of(NAME, __doc__, table, figure, summary,
                       max_workers=DEFAULT_MAX_WORKERS)

if __name__ == "__main__":
    sys.exit(main())
