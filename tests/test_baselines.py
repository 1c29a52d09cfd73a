"""Scaling baselines (issue 16): one GPU, one server, or the smallest run, stated in results."""
from __future__ import annotations

import pytest

from simulator.errors import SpecError
from simulator.simulate import scaling_table
from simulator.specs import DataParallelSpec, SystemSpec, WorkloadSpec
from simulator.validation.cases import build_case, predict
from simulator.validation.table import ReferenceRow

WORKLOAD = WorkloadSpec(net="resnet50", batch=32)
SYSTEM = SystemSpec(topology="single_switch(servers=4, server='dgx1_v100')")


@pytest.mark.parametrize("baseline,expected", [("1", 1), ("server", 8), ("smallest", 16)])
def test_scaling_table_measures_against_the_chosen_baseline(baseline, expected):
    table, results = scaling_table(WORKLOAD, SYSTEM, DataParallelSpec(workers=16), [16, 32],
                                   baseline=baseline)
    assert set(table["baseline_workers"]) == {expected}
    base = results[expected].metrics["samples_per_s"]
    for row in table.itertuples():
        assert row.speedup == pytest.approx(row.samples_per_s / base, rel=1e-12)
        assert row.scaling_efficiency == pytest.approx(row.speedup * expected / row.workers,
                                                       rel=1e-12)
    with pytest.raises(SpecError, match="baseline"):
        scaling_table(WORKLOAD, SYSTEM, DataParallelSpec(workers=16), [16], baseline="node")


def _row(baseline):
    case = {"workload": {"net": "resnet50", "batch": 32},
            "system": {"topology": "single_switch(servers=4, server='dgx1_v100')"},
            "strategy": {"kind": "data_parallel", "workers": 32}, "baseline": baseline}
    return ReferenceRow(id="t", source="s", reference="r", description="d",
                        metric="scaling_efficiency", published=0.9, unit="fraction",
                        confidence="high", device="V100", case=case)


def test_a_reference_row_can_be_measured_against_one_server():
    """Efficiency against one 8-GPU server: throughput / (8-GPU throughput / 8) / 32."""
    one = predict(_row({}))
    server = predict(_row({"workers": "server"}))
    assert one.details["baseline_workers"] == 1
    assert server.details["baseline_workers"] == 8
    expected = server.details["samples_per_s"] / (
        server.details["baseline_samples_per_s"] / 8) / 32
    assert server.value == pytest.approx(expected, rel=1e-12)
    with pytest.raises(SpecError, match="baseline.workers"):
        build_case(_row({"workers": 32}))
