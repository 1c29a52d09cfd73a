"""Device and network catalogs: exact published values, Paleo's presets as Paleo defines them,
validation errors that name the field, lookups, user device files, and ``paleosim devices``."""
from __future__ import annotations

import copy
import csv
import io
import json
import pickle
from importlib import resources
from pathlib import Path

import pytest

from simulator import catalog
from simulator.catalog import (
    Device, NetworkPreset, PaleoDevicePreset, PaleoNetworkPreset, devices, get_device,
    get_network, get_paleo_device, get_paleo_network, load_device_file, networks,
    paleo_devices, paleo_networks,
)
from simulator.catalog.tables import device_table, network_table
from simulator.cli import main
from simulator.errors import SpecError, UnknownNameError

GiB = 2 ** 30
REPO = Path(__file__).resolve().parents[1]


def toy(**changes) -> dict:
    """Keyword arguments of a valid Device, with ``changes`` applied."""
    fields = dict(name="Toy", description="a toy GPU", kind="gpu",
                  peak_flops={"fp32": 1e13, "fp16": 1e14}, memory_bandwidth_Bps=1e12,
                  memory_bytes=16 * GiB, clock_hz=1.5e9,
                  compute_efficiency={"default": 0.6, "matmul": 0.7}, memory_efficiency=0.8,
                  idle_power_W=40.0, busy_power_W=300.0, source="made up for a test")
    fields.update(changes)
    return fields


# --- exact catalog values (vendor datasheets, as in shared/published/README.md) -----------------

@pytest.mark.parametrize("name, dtype, flops", [
    ("V100", "fp32", 15.7e12), ("V100", "fp16", 125e12),
    ("V100-32GB", "fp16", 125e12), ("V100-SXM3", "fp32", 16.4e12), ("V100-SXM3", "fp16", 130e12),
    ("P100", "fp32", 10.6e12), ("P100", "fp16", 21.2e12),
    ("A100-40GB", "fp32", 19.5e12), ("A100-80GB", "tf32", 156e12), ("A100-80GB", "bf16", 312e12),
    ("A100-40GB", "fp16", 312e12),
    ("H100", "fp32", 67e12), ("H100", "tf32", 494.5e12), ("H100", "bf16", 989e12),
    ("H100", "fp16", 989e12), ("H100", "fp8", 1979e12), ("H200", "bf16", 989e12),
    ("TPUv3", "bf16", 123e12), ("TPUv4", "bf16", 275e12),
    ("K20", "fp32", 3.52e12), ("K40", "fp32", 4.29e12), ("K80", "fp32", 2.8e12),
    ("K80-board", "fp32", 5.6e12), ("TitanX", "fp32", 6.144e12),
])
def test_peak_flops_are_the_published_dense_peaks(name, dtype, flops):
    assert get_device(name).peak(dtype) == flops


@pytest.mark.parametrize("name, bandwidth_Bps, memory_bytes, busy_W", [
    ("K20", 208e9, 5 * GiB, 225), ("K20X", 250e9, 6 * GiB, 235), ("K40", 288e9, 12 * GiB, 235),
    ("K80", 240e9, 12 * GiB, 150), ("K80-board", 480e9, 24 * GiB, 300),
    ("TitanX", 336.5e9, 12 * GiB, 250), ("P100", 732e9, 16 * GiB, 300),
    ("V100", 900e9, 16 * GiB, 300), ("V100-32GB", 900e9, 32 * GiB, 300),
    ("V100-SXM3", 900e9, 32 * GiB, 450), ("A100-40GB", 1555e9, 40 * GiB, 400),
    ("A100-80GB", 2039e9, 80 * GiB, 400), ("H100", 3350e9, 80 * GiB, 700),
    ("H200", 4800e9, 141 * GiB, 700), ("TPUv3", 900e9, 32 * GiB, 262),
    ("TPUv4", 1200e9, 32 * GiB, 192),
])
def test_memory_and_power_are_the_datasheet_values(name, bandwidth_Bps, memory_bytes, busy_W):
    device = get_device(name)
    assert device.memory_bandwidth_Bps == bandwidth_Bps
    assert device.memory_bytes == memory_bytes
    assert device.busy_power_W == busy_W


def test_unsupported_dtypes_are_absent_not_zero():
    assert set(get_device("V100").peak_flops) == {"fp32", "fp16"}
    assert set(get_device("A100-80GB").peak_flops) == {"fp32", "tf32", "fp16", "bf16"}
    assert set(get_device("H100").peak_flops) == {"fp32", "tf32", "fp16", "bf16", "fp8"}
    assert set(get_device("TPUv4").peak_flops) == {"bf16"}
    assert set(get_device("K80").peak_flops) == {"fp32"}


def test_catalog_holds_the_required_devices_in_order():
    names = [d.name for d in devices()]
    assert names == ["K20", "K20X", "K40", "K80", "K80-board", "TitanX", "P100", "V100",
                     "V100-32GB", "V100-SXM3", "A100-40GB", "A100-80GB", "H100", "H200",
                     "TPUv3", "TPUv4", "CPU"]
    assert {d.kind for d in devices()} == {"gpu", "tpu", "cpu"}


def test_k80_board_is_two_k80_dies():
    die, board = get_device("K80"), get_device("K80-board")
    assert board.peak("fp32") == 2 * die.peak("fp32")
    assert board.memory_bandwidth_Bps == 2 * die.memory_bandwidth_Bps
    assert board.memory_bytes == 2 * die.memory_bytes
    assert board.busy_power_W == 2 * die.busy_power_W
    assert board.clock_hz == die.clock_hz == 560e6


def test_h200_is_an_h100_with_more_and_faster_memory():
    h100, h200 = get_device("H100"), get_device("H200")
    assert h200.peak_flops == h100.peak_flops
    assert h200.memory_bandwidth_Bps > h100.memory_bandwidth_Bps
    assert h200.memory_bytes > h100.memory_bytes


def test_every_entry_cites_its_sources_and_flags_placeholders():
    for device in devices():
        assert device.source.strip(), device.name
        assert "uncalibrated" in device.source, device.name
        status = device.calibration["status"]
        assert (status == "placeholder") == ("efficiencies: uncalibrated paleosim defaults"
                                             in device.source), device.name
        if status == "shared":  # a sibling's fitted factors, exactly
            sibling = get_device(device.calibration["shares"])
            assert sibling.calibration["status"] == "fitted", device.name
            assert device.compute_efficiency == sibling.compute_efficiency
            assert device.memory_efficiency == sibling.memory_efficiency
        if "idle power: estimate, 15% of TDP" in device.source:
            assert device.idle_power_W == pytest.approx(0.15 * device.busy_power_W, rel=1e-12)
        else:  # the TPUs: Google's measured min/max power per chip
            assert device.kind == "tpu" and "measured" in device.source
        assert 0 < device.idle_power_W <= device.busy_power_W
    for net in networks():
        assert net.source.strip(), net.name
        assert "estimate" in net.source, net.name  # no latency here is a measurement


# --- Paleo's presets, exactly as PALEO_COST_MODEL.md section 3.3 gives them ---------------------

PALEO_DEVICES = {  # key: (description, clock MHz, peak GFLOPS, "GB/s" label, is_gpu)
    "TITAN_X": ("Titan X (Maxwell)", 1000, 6144, 336.5, True),
    "K20": ("K20", 1000, 3520, 208, True),
    "K20X": ("K20X", 1000, 3935, 250, True),
    "K40": ("K40", 745, 4290, 288, True),
    "K80": ("K80 (whole board)", 560, 5600, 480, True),
    "GEFORCE_780_TI": ("GeForce 780 Ti", 875, 5040, 336, True),
    "GEFORCE_750_M": ("GeForce 750M", 941, 722.7, 80, True),
    "CPU_I7": ("i7-5930K (CPU)", 210000, 289, 68, False),
}
PALEO_NETWORKS = {"aws": 2, "ethernet": 10, "ethernet20": 20, "infiniband": 70, "pcie2": 64,
                  "pcie3": 128}


def test_paleo_device_presets_are_exactly_paleos():
    assert [p.name for p in paleo_devices()] == list(PALEO_DEVICES)
    for preset in paleo_devices():
        description, clock, gflops, label, is_gpu = PALEO_DEVICES[preset.name]
        assert (preset.description, preset.clock_mhz, preset.peak_gflops,
                preset.mem_bandwidth_gbps_label, preset.is_gpu) == (description, clock, gflops,
                                                                     label, is_gpu)


def test_paleo_k20_preset():
    k20 = get_paleo_device("K20")
    assert (k20.peak_gflops, k20.mem_bandwidth_gbps_label, k20.clock_mhz) == (3520, 208, 1000)
    assert k20.peak_flops == 3.52e12
    assert k20.clock_hz == 1e9
    # Paleo divides bytes by 2^30 and by the label (bug B1): in effect GiB/s.
    assert k20.paleo_memory_bandwidth_Bps == 208 * GiB
    assert get_paleo_device("CPU_I7").clock_mhz == 210000  # Paleo's typo, kept on purpose


def test_paleo_network_presets_are_exactly_paleos():
    assert {p.name: p.bandwidth_gbit_per_s for p in paleo_networks()} == PALEO_NETWORKS
    assert get_paleo_network("pcie3").bandwidth_Bps == 16e9
    assert get_paleo_network("aws").bandwidth_Bps == 0.25e9


@pytest.mark.parametrize("ours, paleos", [("K20", "K20"), ("K20X", "K20X"), ("K40", "K40"),
                                          ("K80-board", "K80"), ("TitanX", "TITAN_X")])
def test_kepler_and_maxwell_entries_agree_with_paleos_presets(ours, paleos):
    device, preset = get_device(ours), get_paleo_device(paleos)
    assert device.peak("fp32") == pytest.approx(preset.peak_gflops * 1e9, rel=1e-12)
    # Same numbers, different meaning: ours is decimal GB/s, Paleo's is a label it treats as GiB/s.
    assert device.memory_bandwidth_Bps == pytest.approx(preset.mem_bandwidth_gbps_label * 1e9,
                                                        rel=1e-12)


def test_si_networks_named_like_paleos_have_paleos_bandwidths():
    for preset in paleo_networks():
        assert get_network(preset.name).bandwidth_Bps == preset.bandwidth_Bps


# --- network presets ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, bandwidth_Bps", [
    ("aws", 0.25e9), ("ethernet", 1.25e9), ("ethernet20", 2.5e9), ("infiniband", 8.75e9),
    ("pcie2", 8e9), ("pcie3", 16e9), ("pcie4", 32e9), ("pcie5", 64e9),
    ("nvlink1", 80e9), ("nvlink2", 150e9), ("nvlink3", 300e9), ("nvlink4", 450e9),
    ("nvswitch-dgx2", 150e9), ("fdr-ib", 7e9), ("edr-ib", 12.5e9), ("hdr-ib", 25e9),
    ("ndr-ib", 50e9), ("25gbe", 3.125e9), ("100gbe", 12.5e9), ("400gbe", 50e9),
])
def test_network_bandwidths_in_bytes_per_second(name, bandwidth_Bps):
    assert get_network(name).bandwidth_Bps == bandwidth_Bps


def test_network_latencies_are_microseconds_not_seconds():
    for net in networks():
        assert 1e-7 <= net.latency_s <= 1e-4, net.name
    assert get_network("nvlink2").latency_s < get_network("100gbe").latency_s


# --- lookups -----------------------------------------------------------------------------------

def test_lookup_is_case_insensitive():
    assert get_device("v100") is get_device("V100")
    assert get_device("k80-BOARD").name == "K80-board"
    assert get_network("NVLINK2").name == "nvlink2"
    assert get_paleo_device("titan_x").name == "TITAN_X"
    assert get_paleo_network("ETHERNET20").name == "ethernet20"


def test_a100_alias_is_the_80gb_part():
    assert get_device("A100") is get_device("a100-80gb")


def test_unknown_device_lists_the_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_device("V1000")
    error = info.value
    assert isinstance(error, SpecError) and isinstance(error, KeyError)
    assert error.kind == "device" and error.name == "V1000"
    assert error.valid == sorted([d.name for d in devices()] + ["A100"])
    assert str(error).startswith("unknown device 'V1000'; valid: A100, A100-40GB, A100-80GB, ")


@pytest.mark.parametrize("lookup, kind", [(get_network, "network"),
                                          (get_paleo_device, "Paleo device"),
                                          (get_paleo_network, "Paleo network")])
def test_unknown_names_in_other_catalogs(lookup, kind):
    with pytest.raises(UnknownNameError, match=f"unknown {kind} 'nope'; valid: "):
        lookup("nope")


def test_catalogs_are_read_once_per_process():
    assert devices() is devices()
    assert networks() is networks()
    assert paleo_devices() is paleo_devices()


def test_catalog_files_are_package_data():
    package = resources.files("simulator.catalog")
    for name in ("devices.json", "networks.json", "paleo_presets.json"):
        assert json.loads(package.joinpath(name).read_text(encoding="utf-8"))
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11 to read pyproject.toml")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "*.json" in config["tool"]["setuptools"]["package-data"]["*"]


# --- the Device spec ---------------------------------------------------------------------------

def test_peak_of_an_unsupported_dtype_names_device_dtype_and_valid_ones():
    with pytest.raises(SpecError) as info:
        get_device("V100").peak("bf16")
    message = str(info.value)
    assert "'V100'" in message and "'bf16'" in message and "supported: fp32, fp16" in message


def test_efficiency_falls_back_to_default():
    device = Device(**toy())
    assert device.efficiency("matmul") == 0.7
    assert device.efficiency("conv") == 0.6
    assert device.efficiency("default") == 0.6
    with pytest.raises(SpecError, match="unknown op class"):
        device.efficiency("matmull")


def test_with_overrides_validates_and_leaves_the_original_alone():
    v100 = get_device("V100")
    faster = v100.with_overrides(memory_efficiency=0.9, compute_efficiency={"default": 0.8})
    assert faster.memory_efficiency == 0.9 and faster.efficiency("matmul") == 0.8
    stored = next(d for d in json.loads((Path(catalog.__file__).parent
                                         / "devices.json").read_text())["devices"]
                  if d["name"] == "V100")  # the calibrated factors, as written by calibrate.py
    assert v100.memory_efficiency == stored["memory_efficiency"]
    assert v100.efficiency("matmul") == stored["compute_efficiency"]["matmul"]
    with pytest.raises(SpecError, match=r"V100\.memory_efficiency: must be in \(0, 1\]"):
        v100.with_overrides(memory_efficiency=1.5)
    with pytest.raises(SpecError, match=r"V100\.memory_bandwith_Bps: unknown device field"):
        v100.with_overrides(memory_bandwith_Bps=1e12)


@pytest.mark.parametrize("changes, field", [
    ({"memory_bandwidth_Bps": 0}, "memory_bandwidth_Bps"),
    ({"memory_bandwidth_Bps": -1e9}, "memory_bandwidth_Bps"),
    ({"memory_bytes": 0}, "memory_bytes"),
    ({"clock_hz": float("nan")}, "clock_hz"),
    ({"memory_bandwidth_Bps": True}, "memory_bandwidth_Bps"),
    ({"memory_bandwidth_Bps": "9e11"}, "memory_bandwidth_Bps"),
    ({"peak_flops": {"fp32": 0.0}}, "peak_flops.fp32"),
    ({"peak_flops": {"fp64": 1e13}}, "peak_flops"),
    ({"peak_flops": {}}, "peak_flops"),
    ({"compute_efficiency": {"default": 0.6, "matmul": 1.2}}, "compute_efficiency.matmul"),
    ({"compute_efficiency": {"default": 0.0}}, "compute_efficiency.default"),
    ({"compute_efficiency": {"matmul": 0.7}}, "compute_efficiency"),
    ({"memory_efficiency": 1.0001}, "memory_efficiency"),
    ({"idle_power_W": -1.0}, "idle_power_W"),
    ({"busy_power_W": 30.0}, "busy_power_W"),
    ({"kind": "fpga"}, "kind"),
    ({"source": " "}, "source"),
])
def test_invalid_device_fields_raise_spec_error_naming_entry_and_field(changes, field):
    with pytest.raises(SpecError) as info:
        Device(**toy(**changes))
    assert info.value.field == f"Toy.{field}"
    assert str(info.value).startswith(f"Toy.{field}: ")


def test_device_is_immutable_hashable_and_picklable():
    device = get_device("H100")
    with pytest.raises(TypeError):
        device.peak_flops["fp32"] = 1.0
    with pytest.raises(AttributeError):
        device.memory_bytes = 1.0
    assert hash(device) == hash(copy.deepcopy(device))
    assert pickle.loads(pickle.dumps(device)) == device
    assert Device(**toy()) == Device(**toy(peak_flops={"fp16": 1e14, "fp32": 1e13}))
    assert Device(**toy(memory_bytes=16 * GiB)).memory_bytes == float(16 * GiB)


@pytest.mark.parametrize("make, field", [
    (lambda: NetworkPreset(name="n", description="d", bandwidth_Bps=0, latency_s=1e-6,
                           source="s"), "n.bandwidth_Bps"),
    (lambda: NetworkPreset(name="n", description="d", bandwidth_Bps=1e9, latency_s=-1e-6,
                           source="s"), "n.latency_s"),
    (lambda: PaleoDevicePreset(name="P", description="d", clock_mhz=1000, peak_gflops=0,
                               mem_bandwidth_gbps_label=100, is_gpu=True), "P.peak_gflops"),
    (lambda: PaleoDevicePreset(name="P", description="d", clock_mhz=1000, peak_gflops=1000,
                               mem_bandwidth_gbps_label=100, is_gpu=1), "P.is_gpu"),
    (lambda: PaleoNetworkPreset(name="p", description="d", bandwidth_gbit_per_s=-10),
     "p.bandwidth_gbit_per_s"),
])
def test_invalid_presets_raise_spec_error_naming_the_field(make, field):
    with pytest.raises(SpecError) as info:
        make()
    assert info.value.field == field


# --- user device files -------------------------------------------------------------------------

def write_catalog(tmp_path, entries, **top) -> Path:
    path = tmp_path / "my_devices.json"
    path.write_text(json.dumps({"devices": entries, **top}), encoding="utf-8")
    return path


def test_builtin_catalog_round_trips_through_load_device_file():
    path = resources.files("simulator.catalog").joinpath("devices.json")
    with resources.as_file(path) as real:
        assert load_device_file(real) == devices()


def test_load_device_file_reads_a_users_catalog(tmp_path):
    entry = toy(name="MyGPU", source=["vendor sheet", "my own measurement"])
    path = write_catalog(tmp_path, [entry], aliases={"mine": "MyGPU"}, notes="whatever")
    (device,) = load_device_file(path)
    assert device.name == "MyGPU" and device.peak("fp16") == 1e14
    assert device.source == "vendor sheet; my own measurement"


@pytest.mark.parametrize("entries, top, expected", [
    ([toy(memory_bandwidth_Bps=0)], {}, "Toy.memory_bandwidth_Bps: must be > 0 (got 0)"),
    ([toy(compute_efficiency={"default": 1.5})], {},
     "Toy.compute_efficiency.default: must be in (0, 1] (got 1.5)"),
    ([{**toy(), "memory_bandwith_Bps": 1}], {}, "Toy.memory_bandwith_Bps: unknown field"),
    ([{k: v for k, v in toy().items() if k != "clock_hz"}], {}, "Toy.clock_hz: missing field"),
    ([toy(), toy(name="TOY")], {}, "devices.name: duplicate name"),
    ([], {}, "devices: must be a non-empty list"),
    ([toy()], {"aliases": {"x": "Nope"}}, "aliases.x: alias target is not an entry"),
    ([toy()], {"aliases": {"toy": "Toy"}}, "aliases.toy: alias is empty or clashes"),
    ([toy()], {"extra": 1}, "unknown top-level key"),
])
def test_bad_device_files_name_file_entry_and_field(tmp_path, entries, top, expected):
    path = write_catalog(tmp_path, entries, **top)
    with pytest.raises(SpecError) as info:
        load_device_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_unreadable_and_malformed_device_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read device file"):
        load_device_file(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"devices": [\n  {"name": "x",}\n]}', encoding="utf-8")
    with pytest.raises(SpecError, match=r"broken\.json: invalid JSON: .* line 2 column"):
        load_device_file(broken)


# --- tables and the CLI ------------------------------------------------------------------------

def test_device_table_units():
    si = device_table([get_device("V100")])
    assert si.loc[0, "peak_fp32_flops"] == 15.7e12 and si.loc[0, "peak_bf16_flops"] is None
    assert si.loc[0, "memory_bandwidth_Bps"] == 900e9
    assert si.loc[0, "compute_efficiency_conv"] == get_device("V100").efficiency("conv")
    assert si.loc[0, "calibration"] == "fitted"
    human = device_table([get_device("V100")], units="human")
    assert human.loc[0, "calibration"] == "fitted"
    assert device_table([get_device("K20X")], units="human").loc[0, "calibration"] == \
        "shared (K40)"
    assert human.loc[0, "fp32 TFLOP/s"] == "15.7" and human.loc[0, "bf16 TFLOP/s"] == "-"
    assert human.loc[0, "memory GiB"] == 16 and human.loc[0, "bandwidth GB/s"] == 900
    assert network_table([get_network("hdr-ib")], units="human").loc[0, "bandwidth Gbit/s"] == 200
    with pytest.raises(SpecError, match="units"):
        device_table(devices(), units="imperial")


def test_cli_devices_json_is_si(capsys):
    assert main(["devices", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == [d.name for d in devices()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["V100"]["peak_fp32_flops"] == 15.7e12
    assert by_name["V100"]["peak_bf16_flops"] is None
    assert by_name["H100"]["peak_bf16_flops"] == 989e12
    assert by_name["H200"]["memory_bytes"] == 141 * GiB
    assert by_name["A100-40GB"]["memory_bandwidth_Bps"] == 1555e9


def test_cli_devices_selects_names_and_aliases(capsys):
    assert main(["devices", "v100", "A100", "--format", "json"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["V100", "A100-80GB"]


def test_cli_devices_table_is_human(capsys):
    assert main(["devices", "H100"]) == 0
    out = capsys.readouterr().out
    assert "fp8 TFLOP/s" in out and "1979" in out and "3350" in out


def test_cli_networks_csv(capsys):
    assert main(["devices", "--networks", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["name"] for row in rows] == [n.name for n in networks()]
    nvlink3 = next(row for row in rows if row["name"] == "nvlink3")
    assert float(nvlink3["bandwidth_Bps"]) == 300e9 and float(nvlink3["latency_s"]) == 1e-6


def test_cli_paleo_presets(capsys):
    assert main(["devices", "--paleo", "--format", "json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert (rows["K20"]["peak_gflops"], rows["K20"]["mem_bandwidth_gbps_label"],
            rows["K20"]["clock_mhz"]) == (3520, 208, 1000)
    assert rows["CPU_I7"]["is_gpu"] is False
    assert main(["devices", "--paleo", "--networks", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"]: row["bandwidth_gbit_per_s"] for row in rows} == PALEO_NETWORKS


def test_cli_device_file(tmp_path, capsys):
    path = write_catalog(tmp_path, [toy(name="MyGPU")])
    assert main(["devices", "--device-file", str(path), "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "MyGPU" and row["peak_fp16_flops"] == 1e14


def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["devices", "V1000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown device 'V1000'; valid: A100," in err
    assert main(["devices", "--networks", "--device-file", "x.json"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    path = write_catalog(tmp_path, [toy(memory_bandwidth_Bps=0)])
    assert main(["devices", "--device-file", str(path)]) == 2
    assert "Toy.memory_bandwidth_Bps: must be > 0" in capsys.readouterr().err


def test_cli_help_mentions_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["devices", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--networks", "--paleo", "--device-file", "--format"):
        assert option in out
