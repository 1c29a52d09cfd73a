"""Pipeline parallelism on its own: the ``pipeline`` strategy kind.

A smaller spec for the common case without tensor parallelism: ``pp`` stages, optionally
replicated ``dp`` times, ``microbatches`` per iteration, a schedule (``gpipe``, ``1f1b``,
``interleaved`` with ``chunks`` model chunks per device) and a partition. It compiles through
the ``parallel3d`` compiler with ``tp = 1`` (:mod:`simulator.strategies.parallel3d`), so the
two kinds give identical task graphs for the same settings. ``workload.batch`` is the global
batch per iteration, as for ``parallel3d``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from simulator.strategies.parallel3d import compile_parallel3d
from simulator.strategies.parallel3d_spec import Parallel3DSpec
from simulator.strategies.registry import register


@dataclass(frozen=True, kw_only=True)
class PipelineSpec:
    """Pipeline (x data) parallelism; the fields mean what they mean in
    :class:`~simulator.strategies.parallel3d_spec.Parallel3DSpec`."""

    kind: str = "pipeline"
    workers: int | None = None
    pp: int = 2
    dp: int | None = None
    microbatches: int | None = None
    micro_batch: int | None = None
    schedule: str = "1f1b"
    chunks: int = 1
    partition: str = "balanced"
    stage_layers: tuple[int, ...] | None = None
    recompute: str = "none"
    zero_stage: int = 0
    dp_algorithm: str = "ring"
    overlap_dp: bool = False
    bucket_bytes: float = 25e6
    granularity: str = "layer"
    iterations: int = 2

    def __post_init__(self) -> None:
        full = self.as_parallel3d()  # validates every field
        object.__setattr__(self, "workers", full.workers)
        object.__setattr__(self, "dp", full.dp)
        object.__setattr__(self, "stage_layers", full.stage_layers)

    @property
    def scaling(self) -> str:
        """Always ``strong``: ``workload.batch`` is the global batch."""
        return "strong"

    def as_parallel3d(self) -> Parallel3DSpec:
        """The same strategy as a ``parallel3d`` spec with ``tp = 1``."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["kind"] = "parallel3d"
        return Parallel3DSpec(tp=1, **values)


@register("pipeline", PipelineSpec)
def compile_pipeline(workload, cluster, strategy: PipelineSpec, cache):
    return compile_parallel3d(workload, cluster, strategy.as_parallel3d(), cache)
