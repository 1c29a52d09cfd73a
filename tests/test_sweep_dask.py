"""The same sweep on a Dask distributed cluster (a LocalCluster here) gives the same table."""
from __future__ import annotations

import io

import pandas as pd
import pytest

from simulator.cli import main
from simulator.sweep import SweepSpec, run_sweep

distributed = pytest.importorskip("dask.distributed")

BASE = {"workload": {"net": "alexnet_owt", "batch": 8},
        "system": {"topology": "dgx2h"},
        "strategy": {"kind": "data_parallel"}}
SPEC = SweepSpec(base=BASE, grid={"strategy.workers": [1, 2, 4, 32],
                                  "strategy.algorithm": ["ring", "tree"]})
PALEO = SweepSpec(engine="paleo", base={"net": "nin", "device": "K20X", "network": "ethernet"},
                  grid={"workers": [1, 2, 4, 8]})


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as local:
        yield local


def without_wall(frame):
    return frame.drop(columns="wall_s")


@pytest.mark.parametrize("spec", [SPEC, PALEO], ids=["simulate", "paleo"])
def test_dask_gives_the_serial_table(cluster, spec, tmp_path):
    serial = run_sweep(spec, executor="serial")
    calls = []
    table = run_sweep(spec, executor="dask", scheduler=cluster.scheduler_address,
                      out_dir=tmp_path, progress=lambda d, t: calls.append(d))
    pd.testing.assert_frame_equal(without_wall(table), without_wall(serial))
    assert calls[0] == 0 and calls[-1] == len(serial)
    assert (tmp_path / "rows.jsonl").read_text().count("\n") == len(serial)
    # resumed on the cluster: nothing left to compute
    again = run_sweep(spec, executor="dask", scheduler=cluster.scheduler_address,
                      out_dir=tmp_path)
    assert again.attrs["sweep"]["computed"] == 0


def test_dask_from_the_command_line(cluster, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text("base:\n  net: nin\n  device: K20\n  network: aws\n"
                    "engine: paleo\ngrid:\n  workers: [1, 16]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--executor", "dask",
                 "--scheduler", cluster.scheduler_address, "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["workers"].tolist() == [1, 16] and (table["status"] == "ok").all()


def test_an_unreachable_scheduler_is_one_clear_error():
    import dask

    from simulator.errors import PaleosimError
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(PaleosimError, match="cannot reach the Dask scheduler at "
                                                "'tcp://127.0.0.1:9'"):
            run_sweep(PALEO, executor="dask", scheduler="tcp://127.0.0.1:9")
