"""`paleosim paleo`: Paleo's own analytical estimate, reproduced (GEMM-only convolutions)."""
from __future__ import annotations

import argparse

from simulator.commands._output import add_format_option, render
from simulator.paleo import (DEFAULT_WORKERS, MEMORY_TERMS, PARALLEL_MODES, SCALINGS,
                             SOFTWARE_PPP, PaleoNet, estimate)

DESCRIPTION = """\
Paleo's analytical estimate of a training iteration (Qi, Sparks and Talwalkar, ICLR 2017),
reproduced with Paleo's formulas and quirks so that it matches Paleo's published predictions
(every GEMM-only entry of Paleo's web-demo precompute.json, to the stored 3 decimals).

Data parallelism (default): for each worker count, the forward, backward, update ("apply") and
compute time, the four communication schemes (OneToAll, TreeAllReduce, ButterflyAllReduce,
ButterflyMixing), all in ms, and each scheme's speedup over one worker (weak: N*t1/tN, strong:
t1/tN, with t = compute + scheme). --parallel model prints Paleo's lower and upper bounds;
--parallel hybrid prints the data- and model-parallel parts of Krizhevsky's "one weird trick"
and their total.

Convolutions are always costed with Paleo's GEMM model (Paleo's --use_only_gemm). Paleo's
default instead asks cuDNN v4's heuristics which algorithm (GEMM, FFT, Winograd) each
convolution would use; that needs the cuDNN v4/v5 GPU library and the authors' GPU, so it is
not reproduced. Device and network names are Paleo's presets (see `paleosim devices`).
See docs/PALEO_COMPAT.md for the Paleo bugs this mode reproduces on purpose."""


def _workers(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; the library checks the values themselves."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of positive integers (got {text!r})") from None


def register(sub) -> None:
    p = sub.add_parser("paleo", help="Paleo's analytical estimate (data, model, hybrid), "
                                     "reproduced", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("net", metavar="NET",
                   help="a shipped net name (see `paleosim nets`) or a path to a Paleo-format "
                        ".json or Caffe .prototxt file")
    p.add_argument("--allow-unknown-layers", action="store_true",
                   help="treat unknown layer types as Paleo does (output = input shape, no cost) "
                        "instead of failing")
    p.add_argument("--device", required=True,
                   help="Paleo device preset, e.g. K20, K20X, K40, K80 (whole board), TITAN_X")
    p.add_argument("--network", default=None,
                   help="Paleo network preset: aws, ethernet, ethernet20, infiniband, pcie2, "
                        "pcie3 (required except with --parallel model)")
    p.add_argument("--software", default=None, choices=sorted(SOFTWARE_PPP),
                   help="use this software stack's PPP pair: "
                        + ", ".join(f"{k} {v.comp}/{v.comm}" for k, v in
                                    sorted(SOFTWARE_PPP.items())))
    p.add_argument("--ppp-comp", type=float, default=None,
                   help="platform percent of peak for compute and device memory, in (0, 1] "
                        "(default 1)")
    p.add_argument("--ppp-comm", type=float, default=None,
                   help="platform percent of peak for the network and remote fetches, in (0, 1] "
                        "(default 1)")
    p.add_argument("--batch", type=int, default=None,
                   help="batch per worker (weak scaling, model, hybrid) or global batch (strong "
                        "scaling); default: the batch in the net's Input tensor")
    p.add_argument("--scaling", choices=SCALINGS, default=None,
                   help="data parallelism: weak (each worker keeps the batch) or strong (each "
                        "worker gets ceil(batch/N)); default weak")
    p.add_argument("--workers", type=_workers, default=None,
                   help="data parallelism: comma-separated worker counts (default "
                        + ",".join(map(str, DEFAULT_WORKERS)) + ")")
    p.add_argument("--parallel", choices=PARALLEL_MODES, default="data",
                   help="data (default), model (lower/upper bounds, no update) or hybrid")
    p.add_argument("--hybrid-workers", type=int, default=1, metavar="K",
                   help="hybrid parallelism: K workers (default 1)")
    p.add_argument("--memory-term", choices=MEMORY_TERMS, default="dec2016",
                   help="Paleo code version: dec2016 (unpadded conv input in the memory term; "
                        "Paleo's published predictions) or 2017 (padded input); default dec2016")
    p.add_argument("--use-pipeline", action="store_true",
                   help="Paleo's --use_pipeline: each layer costs max(compute, memory) instead "
                        "of their sum")
    add_format_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    net = PaleoNet(args.net, unknown_layers="free" if args.allow_unknown_layers else "error")
    table = estimate(net, device=args.device, network=args.network, ppp_comp=args.ppp_comp,
                     ppp_comm=args.ppp_comm, software=args.software, batch=args.batch,
                     scaling=args.scaling, workers=args.workers, memory_term=args.memory_term,
                     use_pipeline=args.use_pipeline, parallel=args.parallel,
                     hybrid_workers=args.hybrid_workers)
    if args.format == "table":
        print(f"# {net.name} on {args.device}, {args.parallel} parallelism, times in ms")
    print(render(table, args.format), end="")
    return 0
