"""The wheel carries the shipped nets and catalogs, and they are found by name once installed."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from conftest import REPO


@pytest.mark.slow
def test_installed_wheel_finds_shipped_nets_by_name(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(wheels)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("paleosim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("nets/") and n.endswith(".json") for n in names)
    assert any(n.startswith("simulator/catalog/") and n.endswith(".json") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    probe = ("import workloads, simulator.catalog as c; "
             "assert workloads.__file__.startswith(%r), workloads.__file__; "
             "names = workloads.shipped_nets(); assert 'vgg16' in names, names; "
             "assert workloads.load_net('gpt3-175b').total_params == 174604259328; "
             "print(workloads.load_net('vgg16', batch=1).total_params, c.get_device('V100').name)"
             % str(site))
    # run from an empty folder with only the installed copy on the path (not the clone)
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["138357544", "V100"]
