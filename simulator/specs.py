"""The three inputs of a simulation, as plain frozen data: workload, system, strategy.

Each can be written in a config file (JSON or YAML, sections ``workload``, ``system``,
``strategy``) and is saved beside the results it produced. Validation happens here, once; errors
name the config field and the bad value.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from simulator.costmodel import DTYPE_BYTES, OPTIMIZERS
from simulator.errors import SpecError, UnknownNameError

SCALINGS = ("weak", "strong")


def _check_int(value: Any, fieldname: str, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpecError(f"must be an integer >= {minimum}", field=fieldname, value=value)


def _check_number(value: Any, fieldname: str, minimum: float = 0.0) -> None:
    if (not isinstance(value, (int, float)) or isinstance(value, bool) or value != value
            or value < minimum):
        raise SpecError(f"must be a number >= {minimum}", field=fieldname, value=value)


def _choice(value: Any, fieldname: str, valid) -> None:
    if value not in valid:
        raise UnknownNameError(fieldname.split(".")[-1], str(value), list(valid), field=fieldname)


@dataclass(frozen=True, kw_only=True)
class WorkloadSpec:
    """What to train. ``batch`` is per worker (weak scaling) or global (strong scaling), as the
    strategy's ``scaling`` says."""

    net: str
    batch: int
    dtype: str = "fp32"
    optimizer: str = "sgd"
    unknown_layers: str = "error"

    def __post_init__(self) -> None:
        if not isinstance(self.net, str) or not self.net:
            raise SpecError("must name a shipped net or a net file", field="workload.net",
                            value=self.net)
        _check_int(self.batch, "workload.batch")
        _choice(self.dtype, "workload.dtype", sorted(DTYPE_BYTES))
        _choice(self.optimizer, "workload.optimizer", sorted(OPTIMIZERS))
        _choice(self.unknown_layers, "workload.unknown_layers", ("error", "free"))


#: ``system.records`` levels (see :class:`SystemSpec`).
RECORDS = ("auto", "full", "summary")


@dataclass(frozen=True, kw_only=True)
class SystemSpec:
    """Where it runs: a topology (preset, builder call or file; ``{servers}`` and ``{workers}``
    in the string are filled in per run), an optional device override for every GPU, and the
    cost model turning layer work into seconds.

    ``routing`` overrides the fabric's routing policy (``dmodk``, ``ecmp``, ``shortest``;
    ``None``: the topology's own, see :mod:`simulator.network.routing`). ``cross_nic`` is
    NCCL_CROSS_NIC for the collective planner: ``auto`` keeps each ring on its rail where a
    server's members allow it (NCCL's default, 2), ``never`` refuses otherwise (0), ``always``
    lets channels leave through the next rail's NIC (1).

    ``fidelity`` (:mod:`simulator.replicas`): ``auto`` simulates one representative per
    symmetric role where the strategy proposes it, the task graph proves it and the network
    certifies it, for runs of 256 ranks or more, else every rank; ``replicas`` does so or
    refuses; ``full`` simulates every rank. Results say which ran (``fidelity``,
    ``fidelity_reason``, ``simulated_ranks``).

    ``records``: ``full`` keeps every link-rate change (the ``utilisation`` table and the
    trace's link counters); ``summary`` keeps per-link and per-flow totals only; ``auto``
    (default) is ``full`` below 256 ranks and ``summary`` from there on."""

    topology: str
    device: str | None = None
    cost_model: str = "roofline"
    gpus_per_server: int | None = None
    routing: str | None = None
    cross_nic: str = "auto"
    fidelity: str = "auto"
    records: str = "auto"

    def __post_init__(self) -> None:
        from simulator.planner import CROSS_NIC
        from topologies.schema import ROUTINGS
        if not isinstance(self.topology, str) or not self.topology:
            raise SpecError("must name a topology", field="system.topology", value=self.topology)
        if self.gpus_per_server is not None:
            _check_int(self.gpus_per_server, "system.gpus_per_server")
        if self.routing is not None:
            _choice(self.routing, "system.routing", ROUTINGS)
        _choice(self.cross_nic, "system.cross_nic", CROSS_NIC)
        from simulator.replicas import FIDELITIES
        _choice(self.fidelity, "system.fidelity", FIDELITIES)
        _choice(self.records, "system.records", RECORDS)

    def topology_for(self, workers: int) -> str:
        """The topology string with ``{workers}`` and ``{servers}`` filled in."""
        per = self.gpus_per_server or 1
        servers = -(-workers // per)
        try:
            return self.topology.format(workers=workers, servers=servers)
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(f"bad placeholder in topology: {exc}", field="system.topology",
                            value=self.topology) from None


@dataclass(frozen=True, kw_only=True)
class DataParallelSpec:
    """Synchronous data parallelism with all-reduce.

    Gradients are grouped into buckets of ``bucket_bytes`` in backward order and all-reduced as
    soon as a bucket is complete (``overlap=True``, as PyTorch DDP and Horovod do), or all at once
    after the backward pass (``overlap=False``, as Paleo assumes). ``accumulation`` microbatches
    per iteration divide each worker's batch; only the last one's gradients are reduced.
    ``zero_stage`` (0-3) partitions optimizer state, then gradients, then weights over the
    workers (ZeRO, Rajbhandari et al. SC20; 3 is FSDP): the memory per worker
    (``simulator.memory``) and the traffic change as the ZeRO paper says (section 7: stages 1
    and 2 move 2 x the parameters per step as reduce-scatter then parameter all-gather, like an
    all-reduce; stage 2 reduce-scatters every microbatch; stage 3 adds an all-gather before the
    forward and the backward of each unit, 1.5 x). With a stage above 0 the strategy compiles
    exactly as ``parallel3d`` with ``tp = pp = 1`` (one data-parallel path), so the global
    batch must split evenly into ``workers x accumulation`` microbatches.

    ``grad_dtype``: the type gradients are reduced in. ``auto`` is fp32 for fp16/bf16 training,
    as PyTorch AMP keeps fp32 parameters and gradients (DDP all-reduces them in fp32), else the
    workload's type.
    """

    kind: str = "data_parallel"
    workers: int = 1
    scaling: str = "weak"
    overlap: bool = True
    bucket_bytes: float = 25e6
    algorithm: str = "ring"
    accumulation: int = 1
    iterations: int = 2
    zero_stage: int = 0
    grad_dtype: str = "auto"

    def __post_init__(self) -> None:
        from simulator.collectives import algorithms
        _check_int(self.workers, "strategy.workers")
        _choice(self.scaling, "strategy.scaling", SCALINGS)
        if not isinstance(self.overlap, bool):
            raise SpecError("must be true or false", field="strategy.overlap", value=self.overlap)
        _check_number(self.bucket_bytes, "strategy.bucket_bytes", 1.0)
        _choice(self.algorithm, "strategy.algorithm", algorithms("allreduce"))
        _check_int(self.accumulation, "strategy.accumulation")
        _check_int(self.iterations, "strategy.iterations")
        if isinstance(self.zero_stage, bool) or self.zero_stage not in (0, 1, 2, 3):
            raise SpecError("must be 0, 1, 2 or 3", field="strategy.zero_stage",
                            value=self.zero_stage)
        if self.zero_stage:
            valid = sorted(set(algorithms("reducescatter")) & set(algorithms("allgather")))
            if self.algorithm not in valid:
                raise UnknownNameError("ZeRO reduce-scatter/all-gather algorithm",
                                       str(self.algorithm), valid, field="strategy.algorithm")
        _choice(self.grad_dtype, "strategy.grad_dtype", GRAD_DTYPES)

    def resolved_grad_dtype(self, dtype: str) -> str:
        """The gradient type for a workload computing in ``dtype`` (PyTorch AMP: fp32)."""
        if self.grad_dtype != "auto":
            return self.grad_dtype
        return "fp32" if dtype in ("fp16", "bf16", "fp8") else dtype


#: Gradient types a strategy may reduce in (``auto``: the strategy's stack's default).
GRAD_DTYPES = ("auto", *sorted(DTYPE_BYTES))


@dataclass(frozen=True, kw_only=True)
class ParameterServerSpec:
    """Parameter servers: ``shards`` shards of the parameters and where they live
    (``placement``), how the parameters are split over them (``split``), and what each worker
    server does before it pushes (``aggregation``). See ``docs/PARALLELISM.md`` (parameter
    servers) for the published stack each layout models.

    ``placement``: ``dedicated`` (the topology's CPU-only hosts, ``cpu_hosts=`` in the
    builders), ``worker_hosts`` (the workers' own host CPUs: shard j on the CPU of the j-th
    worker server mod their number, a PS task on every worker instance), or ``colocated``
    (on the worker GPUs: shard j on worker j mod workers).

    ``split``: ``even`` (every tensor sliced evenly over the shards), ``round_robin`` (whole
    tensors dealt to the shards in order: TensorFlow's ``replica_device_setter`` default) or
    ``by_size`` (each tensor to the least-loaded shard so far: its
    ``GreedyLoadBalancingStrategy`` with ``byte_size_load_fn``). A layer's parameters count as
    one tensor.

    ``aggregation``: ``none`` (every GPU pushes its own gradient), ``cpu`` (the GPUs of a server
    copy their gradients to its host, which sums them and pushes once: TensorFlow's
    parameter-server variables on the local CPU), ``gpu`` (reduced onto the server's first GPU,
    which pushes once: MXNet's ``dist_device_sync``), or ``reduce_scatter`` (a reduce-scatter
    over the server's GPUs, each pushing its slice). Pulls mirror the push: one pull per server,
    then a copy, broadcast or all-gather to its GPUs.

    ``mode``: ``sync`` (push, apply once every gradient is in, pull), ``async`` (each push is
    applied on arrival, no barrier; staleness is recorded), or ``backup`` (sync, but each step
    uses the first ``workers`` of ``workers + backup_workers`` gradients; Chen et al. 2016);
    ``async`` and ``backup`` need ``aggregation: none``.

    ``overlap``: push gradients as the backward pass produces them, in buckets of at least
    ``bucket_bytes`` in backward order (0: every tensor on its own, as TensorFlow sends each
    variable's gradient when it is computed), each shard applying a bucket once all its pushes
    are in, and each layer's forward waiting only for its own parameters' pull; without it,
    every gradient is pushed after the backward pass and the forward waits for every pull.
    """

    kind: str = "parameter_server"
    workers: int = 1
    scaling: str = "weak"
    shards: int = 1
    placement: str = "dedicated"
    split: str = "even"
    aggregation: str = "none"
    mode: str = "sync"
    backup_workers: int = 0
    overlap: bool = False
    bucket_bytes: float = 0.0
    iterations: int = 3
    jitter_cv: float = 0.0

    def __post_init__(self) -> None:
        _check_int(self.workers, "strategy.workers")
        _choice(self.scaling, "strategy.scaling", SCALINGS)
        _check_int(self.shards, "strategy.shards")
        if not isinstance(self.overlap, bool):
            raise SpecError("must be true or false", field="strategy.overlap", value=self.overlap)
        _check_number(self.bucket_bytes, "strategy.bucket_bytes", 0.0)
        if self.overlap and self.mode == "async":
            raise SpecError("overlapped pushes need mode 'sync' or 'backup'",
                            field="strategy.overlap", value=self.overlap)
        _choice(self.placement, "strategy.placement", PS_PLACEMENTS)
        _choice(self.split, "strategy.split", PS_SPLITS)
        _choice(self.aggregation, "strategy.aggregation", PS_AGGREGATIONS)
        _choice(self.mode, "strategy.mode", ("sync", "async", "backup"))
        _check_int(self.backup_workers, "strategy.backup_workers", 0)
        if self.mode == "backup" and self.backup_workers < 1:
            raise SpecError("mode 'backup' needs backup_workers >= 1",
                            field="strategy.backup_workers", value=self.backup_workers)
        if self.mode != "sync" and self.aggregation != "none":
            raise SpecError(f"mode {self.mode!r} applies each worker's push on its own; local "
                            "aggregation needs mode 'sync'", field="strategy.aggregation",
                            value=self.aggregation)
        _check_int(self.iterations, "strategy.iterations")
        _check_number(self.jitter_cv, "strategy.jitter_cv")

    @property
    def total_workers(self) -> int:
        return self.workers + self.backup_workers


PS_PLACEMENTS = ("dedicated", "worker_hosts", "colocated")
PS_SPLITS = ("even", "round_robin", "by_size")
PS_AGGREGATIONS = ("none", "cpu", "gpu", "reduce_scatter")


def strategy_from_dict(data: Mapping[str, Any], *, source: str | None = None):
    """A strategy spec from its config section (``kind`` picks the registered class)."""
    from simulator.strategies.registry import spec_classes
    if not isinstance(data, Mapping):
        raise SpecError("must be a mapping", source=source, field="strategy", value=data)
    kind = data.get("kind", "data_parallel")
    classes = spec_classes()
    cls = classes.get(kind)
    if cls is None:
        raise UnknownNameError("strategy kind", str(kind), list(classes), source=source,
                               field="strategy.kind")
    return _from_dict(cls, data, "strategy", source)


def _from_dict(cls, data: Mapping[str, Any], section: str, source: str | None):
    if not isinstance(data, Mapping):
        raise SpecError("must be a mapping", source=source, field=section, value=data)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SpecError(f"unknown field; valid: {', '.join(sorted(names))}", source=source,
                        field=f"{section}.{unknown[0]}", value=data[unknown[0]])
    try:
        return cls(**data)
    except SpecError as exc:
        raise exc.with_source(source) if source else exc
    except TypeError as exc:
        raise SpecError(f"bad fields: {exc}", source=source, field=section) from None


def workload_from_dict(data, *, source=None) -> WorkloadSpec:
    return _from_dict(WorkloadSpec, data, "workload", source)


def system_from_dict(data, *, source=None) -> SystemSpec:
    return _from_dict(SystemSpec, data, "system", source)


def with_workers(strategy, workers: int):
    """The strategy with another worker count (a spec may define how: ``with_workers``)."""
    own = getattr(strategy, "with_workers", None)
    if own is not None:
        return own(workers)
    return dataclasses.replace(strategy, workers=workers)


__all__ = ["WorkloadSpec", "SystemSpec", "DataParallelSpec", "ParameterServerSpec",
           "strategy_from_dict", "workload_from_dict", "system_from_dict", "with_workers"]
