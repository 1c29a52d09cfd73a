"""The reasons of known misses, as claims the code checks.

A reference row that misses its tolerance says why in ``reason``; that reason must be a claim
the simulator can show, not a story. Each known-miss row has a claim here: a function that
re-derives the figures the reason rests on (with simulations or closed forms) and says whether
they still hold. ``paleosim validate --claims`` prints them; ``tests/test_claims.py`` runs them,
so a reason that stops being true fails, while a row that moves closer never does (a claim is
about the cause, not about the error staying large).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from simulator.catalog import get_device
from simulator.validation.cases import Simulations, build_case, predict
from simulator.validation.table import ReferenceTable, load_reference


@dataclass(frozen=True)
class Claim:
    """What a known miss's reason asserts, whether it holds now, and the figures behind it."""

    row: str
    holds: bool
    evidence: str


ClaimFn = Callable[["Context", str], Claim]
_CLAIMS: dict[str, ClaimFn] = {}
#: Claims that simulate rows too large for the default test run (tests mark them slow).
SLOW = {"ptdp-146b"}


def claim(*rows: str):
    def deco(fn: ClaimFn) -> ClaimFn:
        for row in rows:
            _CLAIMS[row] = fn
        return fn
    return deco


def claimed_rows() -> tuple[str, ...]:
    return tuple(sorted(_CLAIMS))


class Context:
    """Shared simulations and predictions for a set of claims."""

    def __init__(self, table: ReferenceTable | None = None) -> None:
        self.table = table or load_reference()
        self.sims = Simulations()
        self._values: dict[str, float] = {}

    def value(self, row_id: str, cost_model=None) -> float:
        if cost_model is not None:
            return predict(self.table.row(row_id), Simulations(cost_model)).value
        hit = self._values.get(row_id)
        if hit is None:
            hit = self._values[row_id] = predict(self.table.row(row_id), self.sims).value
        return hit

    def error(self, row_id: str, cost_model=None) -> float:
        return self.value(row_id, cost_model) / self.table.row(row_id).published - 1.0

    def tolerance(self, row_id: str) -> float:
        return self.table.tolerance(self.table.row(row_id))


def evaluate(row_id: str, context: Context | None = None) -> Claim:
    """The claim of ``row_id``'s reason, evaluated now."""
    fn = _CLAIMS.get(row_id)
    if fn is None:
        return Claim(row_id, False, "no claim is registered for this row's reason")
    return fn(context or Context(), row_id)


# ---------------------------------------------------------------------------------- claims
@claim("firecaffe-nin-128", "firecaffe-nin-32", "firecaffe-googlenet-128")
def _kepler_stack(ctx: Context, row_id: str) -> Claim:
    """Communication-bound at 32-128 GPUs, the speedup follows the single-GPU step: the K20X
    shares the GK110 efficiency measured under TF 1.10 and cuDNN 7 (K40), and at half of it
    (a 2015 Caffe stack twice as slow) the row is inside its tolerance."""
    from simulator.costmodels.override import EfficiencyOverride
    k20x = get_device("K20X")
    measured = k20x.efficiency("default")
    slower = EfficiencyOverride({"K20X": measured / 2})
    now, half = ctx.error(row_id), ctx.error(row_id, slower)
    tol = ctx.tolerance(row_id)
    holds = abs(now) > tol and abs(half) <= tol
    return Claim(row_id, holds,
                 f"K20X at its calibration {measured:g} ({k20x.calibration_label()}): "
                 f"{now:+.1%}; at half of it ({measured / 2:g}): {half:+.1%} (tolerance "
                 f"{tol:.0%})")


@claim("tf-inception-100")
def _ps_network(ctx: Context, row_id: str) -> Claim:
    """The unstated layout decides the row: under TensorFlow's default round-robin placement of
    the variables over the 17 assumed servers the busiest holds at least twice the mean bytes
    and the iteration is communication-bound (exposed communication at least 40% of it), while
    the same servers with every tensor sliced evenly (pushed in 25 MB buckets) predict a speedup
    above the published."""
    from dataclasses import replace

    from simulator.strategies.common import CostCache
    from simulator.strategies.ps_layout import split_loads
    row = ctx.table.row(row_id)
    case = build_case(row)
    m = ctx.sims.metrics(case.workload, case.system, case.strategy)
    share = m["exposed_comm_s"] / m["iteration_s"]
    k = case.strategy.shards
    loads = split_loads(CostCache(case.workload, "roofline").grad_bytes(), k,
                        case.strategy.split)
    skew = max(loads) / (sum(loads) / k)
    base_workload, base_strategy = case.baseline
    base = ctx.sims.metrics(base_workload, case.system, base_strategy)["samples_per_s"]
    # every tensor sliced over 17 servers would be 17 x 100 flows a tensor: 25 MB buckets
    even = ctx.sims.metrics(case.workload, case.system, replace(
        case.strategy, split="even", bucket_bytes=25e6))["samples_per_s"] / base
    return Claim(row_id, skew >= 2 and share >= 0.4 and even > row.published,
                 f"busiest of {k} servers holds {skew:.1f}x the mean bytes; exposed "
                 f"communication {share:.0%} of a {m['iteration_s']:.3f} s iteration; an even "
                 f"split in 25 MB buckets gives a speedup of {even:.0f} (published "
                 f"{row.published:g})")


@claim("tfbench-dgx1-alexnet-8")
def _alexnet_hidden(ctx: Context, row_id: str) -> Claim:
    """The simulated all-reduce hides behind the backward pass (8-GPU scaling efficiency at
    least 95%) while the published rows scale at 75%."""
    eight, one = ctx.value(row_id), ctx.value("tfbench-dgx1-alexnet-1")
    sim = eight / (8 * one)
    published = ctx.table.row(row_id).published / (8 * ctx.table.row(
        "tfbench-dgx1-alexnet-1").published)
    return Claim(row_id, sim >= 0.95 and published < 0.8,
                 f"simulated 8-GPU scaling efficiency {sim:.1%}, published {published:.1%}")


def _training_flops(row_id: str, ctx: Context) -> float:
    from simulator.strategies.common import CostCache
    case = build_case(ctx.table.row(row_id))
    graph = CostCache(case.workload, "roofline").graph(case.workload.batch)
    return sum(layer.work[p].flops for layer in graph.layers
               for p in ("forward", "backward_data", "backward_filter")) / case.workload.batch


@claim("tfbench-dgx1-vgg16-1")
def _vgg_above_peak(ctx: Context, row_id: str) -> Claim:
    """Counted as direct convolutions, the published rate needs more than the P100's fp32
    peak: only fast algorithms explain it, and one efficiency per device cannot price them."""
    row = ctx.table.row(row_id)
    rate = _training_flops(row_id, ctx) * row.published
    peak = get_device("P100").peak("fp32")
    return Claim(row_id, rate > peak,
                 f"{rate / 1e12:.1f} TFLOP/s of direct-convolution work at {row.published:g} "
                 f"img/s, above the P100's {peak / 1e12:.1f} TFLOP/s fp32 peak")


@claim("horovod-vgg16-128")
def _inherits_vgg(ctx: Context, row_id: str) -> Claim:
    """It inherits tfbench-dgx1-vgg16-1's miss: one-GPU VGG-16 on a P100 is predicted more
    than 15% too slow, so its gradients hide behind too long a backward pass."""
    one = ctx.error("tfbench-dgx1-vgg16-1")
    now = ctx.error(row_id)
    return Claim(row_id, one < -0.15 and now > 0,
                 f"one-GPU VGG-16 on a P100 {one:+.1%}; this row's efficiency {now:+.1%}")


@claim("ptdp-146b")
def _gemm_size(ctx: Context, row_id: str) -> Claim:
    """The source's per-GPU throughput rises with model size (larger GEMMs run closer to
    peak); one compute efficiency per device cannot: the simulated throughput at 146B is no
    higher than at 1.7B, where the A100 is calibrated."""
    big, small = ctx.value(row_id), ctx.value("ptdp-1.7b")
    published = ctx.table.row(row_id).published / ctx.table.row("ptdp-1.7b").published
    return Claim(row_id, big <= small and published > 1.05,
                 f"simulated {big:.1f} against {small:.1f} TFLOP/s per GPU at 1.7B "
                 f"(x{big / small:.3f}); published x{published:.3f}")


@claim("nccl-dgxa100-2n-8x100-ring")
def _below_the_rails(ctx: Context, row_id: str) -> Claim:
    """The prediction is the eight NICs' payload bound (NIC-bound ring), which the maintainer
    says the measurement should approach: 60 GB/s is 'a little low' for 8 x 100 Gbit/s."""
    from simulator.cluster import resolve_cluster
    case = build_case(ctx.table.row(row_id))
    graph = resolve_cluster(case.system, case.ranks).graph
    nic = graph.edges[("nic", 0, 0), ("switch", "tor", 0)]["bandwidth_Bps"]
    bound = 8 * nic / 1e9
    value = ctx.value(row_id)
    return Claim(row_id, abs(value / bound - 1) <= 0.01,
                 f"predicted {value:.1f} GB/s, the 8 NICs' bound {bound:.1f} GB/s")
