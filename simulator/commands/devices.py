"""``paleosim devices``: list the device catalog, the network presets, or Paleo's presets."""
from __future__ import annotations

import argparse
import sys

from simulator import catalog
from simulator.catalog import tables
from simulator.commands._output import add_format_option, render
from simulator.errors import SpecError

_EPILOG = """\
The table shows TFLOP/s (dense peaks per dtype), GiB of memory, GB/s of memory bandwidth and
watts; csv and json give SI units with unit-suffixed column names (peak_fp32_flops,
memory_bandwidth_Bps, memory_bytes, busy_power_W, ...), plus efficiencies and sources.

examples:
  paleosim devices                      all catalog devices
  paleosim devices V100 h100            two of them (names are case-insensitive)
  paleosim devices --networks           network presets (bandwidth per direction, latency)
  paleosim devices --paleo              Paleo's device presets, in Paleo's own units
  paleosim devices --paleo --networks   Paleo's network presets
  paleosim devices --device-file my.json --format json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "devices", help="list devices and network presets",
        description="List the device catalog (peak FLOP/s per dtype, memory, bandwidth, power), "
                    "the network presets, or Paleo's own presets.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="only these entries (case-insensitive; default: all)")
    parser.add_argument("--networks", action="store_true",
                        help="list network presets instead of devices")
    parser.add_argument("--paleo", action="store_true",
                        help="list Paleo's presets (exactly as Paleo defines them, in its units)")
    parser.add_argument("--device-file", metavar="PATH",
                        help="list the devices of your own JSON catalog (same schema as the "
                             "built-in devices.json) instead of the built-in one")
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    units = "human" if args.format == "table" else "si"
    if args.device_file and (args.networks or args.paleo):
        raise SpecError("--device-file lists devices; it cannot be combined with --networks "
                        "or --paleo", field="--device-file", value=args.device_file)
    if args.paleo and args.networks:
        entries = _pick(catalog.paleo_networks(), catalog.get_paleo_network, args.names)
        frame = tables.paleo_network_table(entries)
    elif args.paleo:
        entries = _pick(catalog.paleo_devices(), catalog.get_paleo_device, args.names)
        frame = tables.paleo_device_table(entries)
    elif args.networks:
        entries = _pick(catalog.networks(), catalog.get_network, args.names)
        frame = tables.network_table(entries, units=units)
    elif args.device_file:
        own = catalog.load_device_file(args.device_file)
        entries = catalog.select(own, args.names, kind="device") if args.names else own
        frame = tables.device_table(entries, units=units)
    else:
        entries = _pick(catalog.devices(), catalog.get_device, args.names)
        frame = tables.device_table(entries, units=units)
    sys.stdout.write(render(frame, args.format))
    return 0


def _pick(everything, get, names):
    return tuple(get(name) for name in names) if names else everything
