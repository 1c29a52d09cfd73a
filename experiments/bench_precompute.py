"""Compare the Paleo-compatible estimator with every GEMM-only entry of Paleo's precompute.json.

Prints, for each memory term (Paleo code version), the number of values compared, the largest
relative errors of the iteration times and of the speedups (relative for speedups >= 0.5,
absolute for all: Paleo stored 3 decimals), the number of times that differ from Paleo's at the
3 decimals stored, and the wall time of the whole comparison (loading and profiling the nets
included), then the mean time of one more estimate() call on a warm PaleoNet.

    python3 experiments/bench_precompute.py [--data ../shared/data/paleo] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simulator.paleo import PaleoNet  # noqa: E402
from simulator.paleo.precompute import compare_precompute, read_precompute  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "paleo",
                        help="folder with precompute.json and nets/ (default: ../shared/data/paleo)")
    parser.add_argument("--csv", type=Path, default=None,
                        help="also write the per-value comparison (both memory terms) here")
    args = parser.parse_args(argv)
    frames = []
    for memory_term in ("dec2016", "2017"):
        start = time.perf_counter()
        precompute = read_precompute(args.data / "precompute.json")
        cache: dict[str, PaleoNet] = {}

        def nets(model: str) -> PaleoNet:
            if model not in cache:
                cache[model] = PaleoNet(args.data / "nets" / f"{model}.json")
            return cache[model]

        frame = compare_precompute(precompute, nets, memory_term=memory_term)
        wall = time.perf_counter() - start
        # a value rounds to Paleo's 3 stored decimals iff it lies within half a unit of them
        off = ((frame["estimated_ms"] - frame["published_ms"]).abs() > 5e-4 + 1e-9).sum()
        worst = frame.loc[frame["time_rel_err"].idxmax()]
        big = frame[frame["published_speedup"] >= 0.5]
        print(f"memory_term={memory_term}: {len(frame)} times and speedups from "
              f"{frame['key'].nunique()} configurations, compared in {wall:.2f} s\n"
              f"  time: max relative error {frame['time_rel_err'].max():.3e} "
              f"({worst['key']}, N={worst['workers']}, {worst['scheme']}); "
              f"{off} differ from Paleo's at the 3 decimals stored\n"
              f"  speedup: max absolute error {frame['speedup_abs_err'].max():.3e}; max "
              f"relative error {big['speedup_rel_err'].max():.3e} over the {len(big)} "
              f"published speedups >= 0.5 (3 decimals stored)")
        frames.append(frame.assign(memory_term=memory_term))
    # the cost of one more call once a PaleoNet's profiles are warm (what a sweep pays per row)
    from simulator.paleo import estimate
    pnet = cache["inception_v3"]
    kwargs = dict(device="K40", network="ethernet", software="tensorflow", batch=1024,
                  scaling="strong")
    estimate(pnet, **kwargs)
    calls = 200
    start = time.perf_counter()
    for _ in range(calls):
        estimate(pnet, **kwargs)
    per_call = (time.perf_counter() - start) / calls
    print(f"warm estimate() of inception_v3, strong scaling, 8 worker counts: "
          f"{per_call * 1e3:.2f} ms per call (mean of {calls})")
    if args.csv is not None:
        import pandas as pd
        pd.concat(frames).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
