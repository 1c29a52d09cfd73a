"""Paleo's software stacks: each is a pair of "platform percent of peak" (PPP) factors.

``ppp_comp`` divides every compute term and every on-device memory term; ``ppp_comm`` divides
network transfers and remote fetches. Paleo fitted one pair per framework; the values below are
the ones Paleo's experiment scripts and web demo use (``PALEO_COST_MODEL.md`` section 2.8;
Qi, Sparks and Talwalkar, ICLR 2017, section 4). The caffe, mxnet and tensorflow pairs are
exactly the ones behind ``precompute.json``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from simulator.errors import SpecError, UnknownNameError


@dataclass(frozen=True, kw_only=True)
class PPP:
    """Paleo's platform-percent-of-peak pair, each a fraction in (0, 1]."""

    comp: float
    comm: float

    def __post_init__(self) -> None:
        for field in ("comp", "comm"):
            value = getattr(self, field)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not 0 < value <= 1):
                raise SpecError("a platform percent of peak must be a number in (0, 1]",
                                field=f"ppp_{field}", value=value)
            object.__setattr__(self, field, float(value))


SOFTWARE_PPP = {
    "caffe": PPP(comp=0.21, comm=0.56),          # FireCaffe case study
    "cuda-convnet2": PPP(comp=0.46, comm=0.75),  # "one weird trick" case study
    "mxnet": PPP(comp=0.49, comm=0.72),          # MXNet Inception v3 case study
    "tensorflow": PPP(comp=0.62, comm=0.72),     # TensorFlow Inception v3 case study
}


def software_ppp(name: str) -> PPP:
    """The PPP pair of a software stack; an unknown name lists the valid ones."""
    try:
        return SOFTWARE_PPP[name]
    except (KeyError, TypeError):
        raise UnknownNameError("software", name, list(SOFTWARE_PPP)) from None


def resolve_ppp(*, software: str | None = None, ppp_comp: float | None = None,
                ppp_comm: float | None = None) -> PPP:
    """The PPP pair from a software name, or from explicit factors (missing ones default to 1,
    as in Paleo's ``simulate``). Giving both a software and a factor is ambiguous: an error."""
    if software is not None:
        if ppp_comp is not None or ppp_comm is not None:
            raise SpecError("give either a software stack or explicit PPP factors, not both",
                            field="software", value=software)
        return software_ppp(software)
    return PPP(comp=1.0 if ppp_comp is None else ppp_comp,
               comm=1.0 if ppp_comm is None else ppp_comm)
