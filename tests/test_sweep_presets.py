"""Sweeps accept every net name `paleosim simulate` accepts, transformer presets included."""
from simulator.sweep import SweepSpec, run_sweep


def test_a_sweep_runs_a_transformer_preset_by_name():
    spec = SweepSpec(
        base={"workload": {"net": "megatron-gpt-2.03b", "batch": 1, "dtype": "fp16",
                           "optimizer": "sgd"},
              "system": {"topology": "dgx2h"},
              "strategy": {"kind": "parallel3d", "tp": 2, "pp": 1, "dp": 1, "workers": 2,
                           "microbatches": 1, "iterations": 1}},
        grid={"strategy.recompute": ["none", "full"]}, engine="simulate", baseline=False)
    table = run_sweep(spec, executor="serial")
    assert list(table["status"]) == ["ok", "ok"], list(table["reason"])
    none, full = table["iteration_s"]
    assert full > none  # full recomputation repeats the forward pass
