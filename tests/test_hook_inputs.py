"""Bad inputs that once ended in a traceback or a hang: one line, a non-zero exit, nothing
replaced (the before-stop hook's three; issue 17 has the rest)."""
from __future__ import annotations

import os

import pytest

from simulator.atomic import write_text_atomic
from simulator.cli import main
from simulator.errors import SpecError


def test_a_non_utf8_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "b.yaml"
    bad.write_bytes(b"\xff\xfe\x00w")
    assert main(["simulate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8 text: byte 0xff at offset 0" in err
    assert str(bad) in err


def test_output_onto_a_folder_is_refused_and_the_folder_kept(tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    code = main(["generate", "fc", "--layers", "2", "--nodes", "8", "--input", "8",
                 "--output", "2", "--out", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "it is a folder" in err
    assert folder.is_dir() and not any(folder.iterdir())


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null on this system")
def test_a_device_node_is_never_replaced():
    with pytest.raises(SpecError, match="not a regular file"):
        write_text_atomic("/dev/null", "x")
    assert not os.path.isfile("/dev/null")


def test_a_huge_topology_is_refused_before_any_work(capsys):
    assert main(["topology", "describe", "single_switch(servers=100000000)"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at most 65536" in err
