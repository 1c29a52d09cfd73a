"""Fit the NVSwitch's NVLS (NVLink SHARP) efficiency once, on its measurement, and check it.

NVLS all-reduce (simulator/planner/algorithms.py, ``allreduce_nvls``): every GPU sends and
receives S (n+1)/n through the switch, at a fraction ``e`` of its NVLink payload rate B, so the
bus bandwidth is ``2 e B (n-1)/(n+1)``. ``e`` is the one unknown; it is solved from one
measurement of that very thing: the reference row ``nccl-h100-1n-nvls`` (8 H100 SXM, NVIDIA's
maintainer in nccl-tests issue 212: 480 GB/s). The same report's 5-7 GPU figures and the H200
row (same NVSwitch generation) are then predictions, not fits (``paleosim validate --rows
'nccl-h1*,nccl-h2*'``).

    python3 experiments/fit_nvls.py           # print the fit and what servers.json holds
    python3 experiments/fit_nvls.py --check   # exit 1 unless servers.json holds this fit
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from simulator.validation import load_reference  # noqa: E402
from topologies.catalog import servers  # noqa: E402

ROW = "nccl-h100-1n-nvls"
SERVER = "dgx_h100"
#: Presets with the same NVSwitch generation, which share the fitted efficiency.
SHARED = ("dgx_h100", "dgx_h200")
DECIMALS = 4


def fit() -> dict:
    row = load_reference().row(ROW)
    n = row.case["collective"]["ranks"]
    spec = servers()[SERVER]
    link_Bps = spec.nvlinks_per_gpu * spec.link(spec.nvlink).payload_Bps
    efficiency = row.published * 1e9 / (2 * link_Bps * (n - 1) / (n + 1))
    return {"row": ROW, "published_GBps": row.published, "gpus": n,
            "nvlink_payload_GBps": link_Bps / 1e9, "efficiency": round(efficiency, DECIMALS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless servers.json holds this fit")
    args = parser.parse_args()
    result = fit()
    stored = {name: servers()[name].nvls_efficiency for name in SHARED}
    print(json.dumps({**result, "servers.json": stored}, indent=2))
    if args.check and any(v != result["efficiency"] for v in stored.values()):
        print(f"servers.json holds {stored}, the fit gives {result['efficiency']}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
