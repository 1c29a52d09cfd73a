"""The spec of the ``parallel3d`` strategy: tensor x pipeline x data parallelism (Narayanan et
al., "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", SC21),
with ZeRO / FSDP sharding and activation recomputation (compiled by
:mod:`simulator.strategies.parallel3d`).

``workers = tp * pp * dp`` ranks. Rank ``stage * (dp * tp) + d * tp + t`` (Megatron-LM's
default order) is tensor-parallel rank ``t`` of data-parallel replica ``d`` of pipeline device
``stage``: a tensor-parallel group is ``tp`` consecutive GPUs, inside one server when ``tp``
fits; a data-parallel group is the ranks with the same stage and ``t``; pipeline neighbours are
``dp * tp`` ranks apart.

``workload.batch`` is the **global** batch in sequences (samples) of one iteration: each of the
``dp`` pipelines runs ``microbatches`` microbatches of ``micro_batch`` samples, and
``batch = dp * microbatches * micro_batch`` (give one of the two, or both).

What one iteration compiles to (see ``docs/PARALLELISM.md``):

1. Every pipeline device runs its schedule (:mod:`~simulator.strategies.schedules`), each action
   being a stage program (:mod:`~simulator.strategies.programs`) on each of its ranks:
   per-layer compute at the microbatch size with the rank's tensor-parallel share of the work,
   tensor-parallel collectives on the compute stream, recomputation before backward.
2. Between stages, each forward sends the boundary activations to the next stage and each
   backward their gradient to the previous one, as transfers (rank ``t`` to rank ``t``);
   with ``scatter_gather`` (SC21 section 4.1) each rank sends ``1/tp`` and the receiving group
   all-gathers it; with sequence parallelism the activation is already split.
3. Gradients are reduced over the data-parallel group: an all-reduce after the pipeline flush
   (Megatron-LM), or bucket by bucket during the last microbatch's backward (``overlap_dp``);
   ZeRO-1/2 reduce-scatter instead and all-gather the updated parameters after the optimizer
   step of each rank's shard; ZeRO-3 (FSDP full sharding) all-gathers each unit's parameters
   before its forward and again before its backward and reduce-scatters its gradients after
   (Rajbhandari et al., SC20; Zhao et al., PyTorch FSDP, VLDB 2023). Tied word embeddings are
   all-reduced between the first and the last stage (Megatron-LM's embedding group).
4. Every rank's optimizer step over the parameters it holds (its ZeRO shard).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.errors import SpecError, UnknownNameError
from simulator.strategies.partition import PARTITIONS
from simulator.strategies.programs import GRANULARITIES
from simulator.strategies.schedules import SCHEDULES

RECOMPUTE = ("full", "none", "selective")
TP_COMM = ("isolated", "network")


def _int(value: Any, name: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"must be an integer >= {minimum}", field=f"strategy.{name}", value=value)


def _bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise SpecError("must be true or false", field=f"strategy.{name}", value=value)


def _choice(value: Any, name: str, valid) -> None:
    if value not in valid:
        raise UnknownNameError(name, str(value), list(valid), field=f"strategy.{name}")


@dataclass(frozen=True, kw_only=True)
class Parallel3DSpec:
    """Tensor (``tp``) x pipeline (``pp``) x data (``dp``) parallelism.

    Parameters
    ----------
    workers : int, optional
        Total ranks; must equal ``tp * pp * dp``. Give it or ``dp`` (the other is derived).
    tp, pp, dp : int
        Degrees of tensor, pipeline and data parallelism.
    microbatches, micro_batch : int, optional
        Microbatches per iteration per pipeline (``m``) and samples per microbatch; with the
        global batch ``workload.batch`` one determines the other (default ``m = 1``).
    schedule : {"1f1b", "gpipe", "interleaved"}
        Pipeline schedule; ``interleaved`` needs ``chunks >= 2`` model chunks per device and
        ``m`` a multiple of ``pp``.
    partition : {"balanced", "uniform", "explicit"}
        How partition units (transformer layers, blocks) are cut into ``pp * chunks`` virtual
        stages; ``stage_layers`` lists the units per virtual stage for ``explicit``.
    recompute : {"none", "selective", "full"}
        Activation recomputation as extra forward compute before each backward.
    sequence_parallel : bool
        Megatron sequence parallelism (needs a net with ``tensor_parallel`` fields).
    scatter_gather : bool
        Send ``1/tp`` of a stage's output per rank and all-gather it on the receiving server.
    tp_inside_server : bool
        Require every tensor-parallel group to sit inside one server.
    tp_algorithm, dp_algorithm : str
        Collective algorithms of the tensor- and data-parallel groups.
    tp_comm : {"network", "isolated"}
        ``network``: every tensor-parallel collective is a collective of the task graph, its
        flows on the topology. ``isolated``: each distinct (group, collective, size) is timed
        once alone on the same network and every occurrence becomes a ``delay`` operation of
        that duration on each member's compute stream: exact when tensor-parallel traffic has
        its links to itself (a group inside an NVSwitch server, whose links no inter-server
        flow crosses), and much faster for large runs.
    zero_stage : int
        ZeRO stage 0-3 (3 = FSDP full sharding); stages 2 and 3 only with ``pp = 1``
        (gradient and parameter sharding across microbatches of a pipeline is not modelled,
        and DeepSpeed's pipeline engine refuses it too).
    overlap_dp : bool
        Reduce gradients bucket by bucket during the last microbatch's backward instead of
        after the pipeline flush.
    bucket_bytes : float
        Gradient bucket size for ``overlap_dp`` and ZeRO-2.
    granularity : {"layer", "fused", "pass"}
        Operations per pass (:mod:`~simulator.strategies.programs`): one per layer and phase;
        consecutive compute merged between collectives; or one compute operation per kind of
        work and one for its tensor-parallel collectives (needs ``tp_comm: isolated`` when
        ``tp > 1``, and no dependency inside a pass: no ``overlap_dp``, no ZeRO-3). Pass ends,
        and so every metric, are the same at every granularity.
    iterations : int
        Training iterations to simulate.
    grad_dtype : str
        The type gradients are reduced in (``auto``: see :meth:`resolved_grad_dtype`).
    """

    kind: str = "parallel3d"
    workers: int | None = None
    tp: int = 1
    pp: int = 1
    dp: int | None = None
    microbatches: int | None = None
    micro_batch: int | None = None
    schedule: str = "1f1b"
    chunks: int = 1
    partition: str = "balanced"
    stage_layers: tuple[int, ...] | None = None
    recompute: str = "none"
    sequence_parallel: bool = False
    scatter_gather: bool = True
    tp_inside_server: bool = True
    tp_algorithm: str = "ring"
    tp_comm: str = "network"
    zero_stage: int = 0
    dp_algorithm: str = "ring"
    overlap_dp: bool = False
    bucket_bytes: float = 25e6
    granularity: str = "layer"
    iterations: int = 2
    grad_dtype: str = "auto"

    def resolved_grad_dtype(self, dtype: str) -> str:
        """The type gradients are reduced in. ``auto`` follows Megatron-LM: gradients of fp16
        training are reduced in fp16 (``--accumulate-allreduce-grads-in-fp32`` is off by
        default), bf16 training reduces them in fp32 (Megatron turns that option on for bf16),
        other types in their own."""
        if self.grad_dtype != "auto":
            return self.grad_dtype
        return "fp32" if dtype == "bf16" else dtype

    def with_workers(self, workers: int) -> "Parallel3DSpec":
        """The same tensor and pipeline degrees with ``workers / (tp * pp)`` data-parallel
        replicas (a SpecError if that does not divide)."""
        import dataclasses
        return dataclasses.replace(self, workers=workers, dp=None)

    def __post_init__(self) -> None:
        from simulator.collectives import algorithms
        for name in ("tp", "pp", "chunks", "iterations"):
            _int(getattr(self, name), name)
        for name in ("workers", "dp", "microbatches", "micro_batch"):
            if getattr(self, name) is not None:
                _int(getattr(self, name), name)
        model = self.tp * self.pp
        if self.dp is None:
            workers = self.workers if self.workers is not None else model
            if workers % model:
                raise SpecError(f"must be a multiple of tp x pp = {model}",
                                field="strategy.workers", value=workers)
            object.__setattr__(self, "dp", workers // model)
        if self.workers is None:
            object.__setattr__(self, "workers", model * self.dp)
        if self.workers != model * self.dp:
            raise SpecError(f"must equal tp x pp x dp = {self.tp} x {self.pp} x {self.dp} = "
                            f"{model * self.dp}", field="strategy.workers", value=self.workers)
        _choice(self.schedule, "schedule", SCHEDULES)
        if self.schedule == "interleaved":
            if self.chunks < 2:
                raise SpecError("the interleaved schedule needs chunks >= 2 model chunks per "
                                "device", field="strategy.chunks", value=self.chunks)
            if self.microbatches is not None and self.microbatches % self.pp:
                raise SpecError(f"the interleaved schedule takes microbatches in groups of "
                                f"pp={self.pp}", field="strategy.microbatches",
                                value=self.microbatches)
        elif self.chunks != 1:
            raise SpecError(f"only the interleaved schedule has model chunks ({self.schedule!r} "
                            "given)", field="strategy.chunks", value=self.chunks)
        _choice(self.partition, "partition", PARTITIONS)
        if self.partition == "explicit":
            layers = self.stage_layers
            if (not isinstance(layers, (list, tuple)) or len(layers) != self.pp * self.chunks
                    or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                           for c in layers)):
                raise SpecError(f"partition 'explicit' needs stage_layers: {self.pp * self.chunks}"
                                " positive unit counts, one per virtual stage (pp x chunks)",
                                field="strategy.stage_layers", value=layers)
            object.__setattr__(self, "stage_layers", tuple(layers))
        elif self.stage_layers is not None:
            raise SpecError("stage_layers is only for partition 'explicit'",
                            field="strategy.stage_layers", value=self.stage_layers)
        _choice(self.recompute, "recompute", RECOMPUTE)
        for name in ("sequence_parallel", "scatter_gather", "tp_inside_server", "overlap_dp"):
            _bool(getattr(self, name), name)
        _choice(self.tp_comm, "tp_comm", TP_COMM)
        _choice(self.granularity, "granularity", GRANULARITIES)
        from simulator.specs import GRAD_DTYPES
        _choice(self.grad_dtype, "grad_dtype", GRAD_DTYPES)
        if self.granularity == "pass":
            if self.tp > 1 and self.tp_comm != "isolated":
                raise SpecError("granularity 'pass' merges tensor-parallel collectives, which "
                                "needs tp_comm: isolated", field="strategy.granularity",
                                value=self.granularity)
            if self.overlap_dp or self.zero_stage == 3:
                raise SpecError("granularity 'pass' hides the points inside a pass that "
                                "overlap_dp and ZeRO-3 depend on; use 'fused'",
                                field="strategy.granularity", value=self.granularity)
        if isinstance(self.zero_stage, bool) or self.zero_stage not in (0, 1, 2, 3):
            raise SpecError("must be 0, 1, 2 or 3", field="strategy.zero_stage",
                            value=self.zero_stage)
        if self.zero_stage >= 2 and self.pp > 1:
            raise SpecError(f"ZeRO stage {self.zero_stage} with pipeline parallelism (pp="
                            f"{self.pp}) is not modelled; use zero_stage 0 or 1 with pp > 1",
                            field="strategy.zero_stage", value=self.zero_stage)
        if not (isinstance(self.bucket_bytes, (int, float)) and not isinstance(
                self.bucket_bytes, bool) and self.bucket_bytes > 0):
            raise SpecError("must be a number of bytes > 0", field="strategy.bucket_bytes",
                            value=self.bucket_bytes)
        tp_needs = ("reducescatter", "allgather") if self.sequence_parallel else ("allreduce",)
        if self.scatter_gather and self.pp > 1:
            tp_needs += ("allgather",)
        dp_needs = ("reducescatter", "allgather") if self.zero_stage else ("allreduce",)
        for name, needs in (("tp_algorithm", tp_needs), ("dp_algorithm", dp_needs)):
            for collective in needs:
                valid = algorithms(collective)
                if getattr(self, name) not in valid:
                    raise UnknownNameError(f"{collective} algorithm", str(getattr(self, name)),
                                           list(valid), field=f"strategy.{name}")

    @property
    def scaling(self) -> str:
        """Always ``strong``: ``workload.batch`` is the global batch, whatever the worker count."""
        return "strong"

    @property
    def virtual_stages(self) -> int:
        """``pp * chunks``: the pieces the model is cut into."""
        return self.pp * self.chunks

    def rank(self, stage: int, d: int, t: int) -> int:
        """Global rank of tensor-parallel rank ``t`` of replica ``d`` on pipeline device
        ``stage`` (Megatron-LM's order)."""
        return (stage * self.dp + d) * self.tp + t

