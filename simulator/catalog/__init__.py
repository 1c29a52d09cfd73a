"""Device and network catalogs: data, not classes.

Adding a GPU is adding an entry to ``devices.json`` (or to a file of your own, read with
:func:`load_device_file`); no code changes. The files are package data of ``simulator.catalog``,
read with :mod:`importlib.resources` once per process, so they are found from an installed wheel.

Files and schema
----------------
Each file is one JSON object with free-text ``notes`` (and ``source``) at the top and one or two
lists of entries. An entry's keys are exactly its spec's fields: a missing or unknown key is an
error, as are duplicate names (compared case-insensitively). ``source`` may be a list of strings,
joined with ``"; "`` on load.

``devices.json`` -> :class:`Device`, list ``devices`` plus ``aliases`` (``{"A100": "A100-80GB"}``)
    ``name``, ``description``, ``kind`` (``gpu`` | ``tpu`` | ``cpu``),
    ``peak_flops`` (``{dtype: FLOP/s}``, dtypes among ``fp32 tf32 fp16 bf16 fp8``, dense peaks,
    only the dtypes the device supports; tensor-core peaks filed under the input dtype),
    ``memory_bandwidth_Bps`` (bytes/s), ``memory_bytes`` (bytes), ``clock_hz`` (Hz),
    ``compute_efficiency`` (``{op_class: fraction}``, ``default`` required, optional ``conv``,
    ``matmul``, ``elementwise``, ``reduction``), ``memory_efficiency`` (fraction),
    ``idle_power_W`` and ``busy_power_W`` (W, busy = TDP), ``source``.
``networks.json`` -> :class:`NetworkPreset`, list ``networks``
    ``name``, ``description``, ``bandwidth_Bps`` (bytes/s per direction), ``latency_s`` (s),
    ``source``.
``paleo_presets.json`` -> :class:`PaleoDevicePreset` (``devices``) and :class:`PaleoNetworkPreset`
    (``networks``): Paleo's own presets in Paleo's own units (MHz, GFLOP/s, its "GB/s" label,
    Gbit/s), for the Paleo-compatible estimator only; see :mod:`simulator.catalog.paleo`.

Units
-----
SI everywhere, named by suffix (``_Bps``, ``_s``, ``_hz``, ``_W``, ``_bytes``, ``peak_flops`` in
FLOP/s). Link and memory bandwidths use decimal prefixes (900 GB/s = 9e11 B/s; 100 Gbit/s =
1.25e10 B/s). Memory *capacities* use the binary meaning vendors give DRAM and HBM sizes:
"80 GB" is 80 GiB = 85 899 345 920 bytes (CUDA exposes slightly less after driver reservations).
Only the Paleo presets keep Paleo's units, on purpose.

Sources and choices
-------------------
Every entry carries ``source``: vendor datasheets and whitepapers (NVIDIA Tesla K20/K20X, K40,
K80, Titan X, P100, V100, DGX-2H, A100, H100, H200; AMD EPYC 7742 and the DGX A100 datasheet for
the ``CPU`` entry), the Google Cloud TPU v3/v4 documentation, the device table of the project's
published reference set (``shared/published/README.md``), PCI-SIG, IBTA and IEEE 802.3 link
rates, and for Paleo, ``paleo/device.py`` (commit 984bbf5) via ``shared/docs/PALEO_COST_MODEL.md``
section 3.3. Choices worth knowing:

- ``K80`` is one GK210 die at its *base* clock (2.8 TFLOP/s fp32, 12 GB, 240 GB/s, 150 W = half
  the board's 300 W), not the 4.37 TFLOP/s boost: the base clock is what the board guarantees with
  both dies busy, and it matches the K40 entry and Paleo's K80 preset. ``K80-board`` is the whole
  dual-die board (5.6 TFLOP/s, 24 GB, 480 GB/s) as Paleo's ``K80`` preset models it.
- ``A100`` is an alias of ``A100-80GB`` (the A100 of the published reference set);
  ``A100-40GB`` and ``V100-32GB`` are entries of their own.
- The Kepler and Maxwell entries' fp32 peaks equal Paleo's presets (K20 3520, K20X 3935, K40 4290,
  K80 board 5600, Titan X 6144 GFLOP/s), which a test checks.
- Efficiencies: the devices of the published reference set (K20, K20X, K40, K80 die, P100,
  V100-SXM3, A100) are **calibrated once per device** by ``experiments/calibrate.py`` (each entry's
  ``source`` names the rows or targets it was fitted to; see docs/VALIDATION.md); the others keep
  **uncalibrated defaults** (compute 0.6, conv 0.6, matmul 0.7, elementwise 0.5, reduction 0.5;
  memory 0.8), as their ``source`` says.
- Idle power is an **estimate** (15 % of TDP) except for the TPUs, whose idle and busy powers are
  Google's measured minimum and maximum per chip. Network latencies are **estimates**
  (NVLink/PCIe/InfiniBand ~1 us, RoCE ~5 us, TCP 10 us, Paleo's AWS network 50 us).

Examples
--------
>>> from simulator.catalog import get_device, get_network, get_paleo_device
>>> get_device("h100").peak("bf16")
989000000000000.0
>>> get_network("nvlink2").bandwidth_Bps
150000000000.0
>>> get_paleo_device("K20").peak_gflops
3520.0
"""
from simulator.catalog.device import DTYPES, KINDS, OP_CLASSES, Device
from simulator.catalog.loader import (
    devices, get_device, get_network, get_paleo_device, get_paleo_network, load_device_file,
    networks, paleo_devices, paleo_networks, select,
)
from simulator.catalog.network import NetworkPreset
from simulator.catalog.paleo import PaleoDevicePreset, PaleoNetworkPreset

__all__ = [
    "DTYPES", "KINDS", "OP_CLASSES",
    "Device", "NetworkPreset", "PaleoDevicePreset", "PaleoNetworkPreset",
    "devices", "get_device", "networks", "get_network",
    "paleo_devices", "get_paleo_device", "paleo_networks", "get_paleo_network",
    "load_device_file", "select",
]
