"""Unit constants. Everything inside paleosim is SI: seconds, bytes, bytes/s, FLOP/s, watts.

Convert once, at the boundary where a file or a flag gives GB/s or Gbit/s.
"""
KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KiB = 2.0 ** 10
MiB = 2.0 ** 20
GiB = 2.0 ** 30

GFLOPS = 1e9
TFLOPS = 1e12

MS = 1e-3
US = 1e-6
NS = 1e-9


def gbit_per_s_to_Bps(gbit_per_s: float) -> float:
    """Decimal Gbit/s (network convention) to bytes/s."""
    return gbit_per_s * 1e9 / 8.0


def gb_per_s_to_Bps(gb_per_s: float) -> float:
    """Decimal GB/s to bytes/s."""
    return gb_per_s * 1e9
