"""The data a collective plan is made of: hops, coupled groups of hops, and phases.

A plan says how the bytes of one collective travel: in *phases* that run one after another;
inside a phase, *groups* that run at once; inside a group, *hops* (point-to-point transfers
between two nodes, optionally through waypoints) that move the same bytes in lock step. A group
of several hops is one coupled flow on the network (:meth:`Network.transfer_group`): it runs at
the rate of its slowest hop, which is what a pipelined ring or tree does, its chunks never
running ahead of the slowest neighbour. A phase pays ``steps`` latencies of its slowest hop:
the pipeline's steps (a ring all-reduce of n ranks has 2(n-1)).

Sizes are fractions of the collective's size ``S`` (see :mod:`simulator.collectives` for what
``S`` is per collective), so one plan serves every message size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable

#: How a phase's transfers from or to a GPU without GPUDirect RDMA cross host memory:
#: ``pipelined`` (through the host CPUs as waypoints of one flow, in chunks, as NCCL's proxy
#: does with its host bounce buffers) or ``whole`` (the whole message copied to the host, sent,
#: and copied to the GPU, one after another, as frameworks that copy tensors to the host before
#: sending them do: MPI without CUDA support, gRPC, ps-lite).
STAGINGS = ("pipelined", "whole")


@dataclass(frozen=True)
class Hop:
    """One transfer from node ``src`` to node ``dst``; ``via``: waypoints its route passes
    through in order (``None``: the NICs the two ends are bound to, across servers)."""

    src: Hashable
    dst: Hashable
    via: tuple | None = None


@dataclass(frozen=True)
class Group:
    """Hops that move ``fraction`` x S bytes each, in lock step (one coupled flow).

    ``channel`` numbers the group's connection within its phase (ECMP keys on it).
    """

    hops: tuple[Hop, ...]
    fraction: float
    channel: int = 0


@dataclass(frozen=True)
class Phase:
    """Groups that run at once; the phase ends when all have, plus ``steps - 1`` more latencies
    of its slowest hop."""

    groups: tuple[Group, ...]
    steps: int = 1
    staging: str = "pipelined"

    def __post_init__(self) -> None:
        if self.staging not in STAGINGS:
            raise ValueError(f"staging must be one of {STAGINGS}")
        if self.staging == "whole" and any(len(g.hops) != 1 for g in self.groups):
            raise ValueError("whole-message staging moves single hops, not coupled groups")


@dataclass(frozen=True)
class Plan:
    """How one collective runs: its phases, the algorithm that made them and how many channels
    (rings or tree pairs) it uses; ``notes`` says what the planner decided and why."""

    collective: str
    algorithm: str
    phases: tuple[Phase, ...]
    channels: int = 1
    notes: tuple[str, ...] = field(default=())
