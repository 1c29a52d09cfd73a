"""Pipeline schedules: the order in which each pipeline device runs its forward and backward passes.

A schedule is pure data: for each of the ``p`` devices of a pipeline, the list of
:class:`Action` it runs in one iteration, in order. ``Action("F", mb, chunk)`` is the forward pass
of microbatch ``mb`` through the device's model chunk ``chunk``; ``"B"`` its backward pass. The
model is cut into ``p * v`` *virtual stages*; chunk ``c`` of device ``k`` is virtual stage
``c * p + k`` (chunks placed round-robin, Narayanan et al., SC21, section 2.2.2), so with ``v = 1``
virtual stage and device coincide.

- ``gpipe`` (Huang et al., "GPipe", NeurIPS 2019): every forward pass, then every backward pass,
  microbatches in increasing order (as drawn in Narayanan et al. 2021, Figure 3).
- ``1f1b`` (PipeDream-Flush; Narayanan et al., "Memory-Efficient Pipeline-Parallel DNN Training",
  ICML 2021, and SC21 section 2.2.1, Figure 4 top): device ``k`` runs ``min(p - k - 1, m)``
  warm-up forwards, then alternates one forward and one backward, then drains the remaining
  backwards. At most ``p - k`` microbatches are in flight on device ``k``.
- ``interleaved`` 1F1B (SC21 section 2.2.2, Figure 4 bottom): ``v`` chunks per device, the
  microbatches taken in groups of ``p``: a device runs forward chunk 0 of microbatches
  ``0..p-1``, then chunk 1 of the same microbatches, ..., then the next group; backwards run in
  the mirrored order (last chunk first). Warm-up is ``2 (p - k - 1) + (v - 1) p`` chunk forwards
  (the count Megatron-LM uses), then one forward and one backward alternate. Needs ``m`` to be a
  multiple of ``p``.

The compiler turns a schedule into the order of compute operations on each device's compute
stream; the transfers between stages provide the cross-device dependencies. The bubble that
results is ``(p - 1)/m`` of the ideal time for GPipe and 1F1B and ``(p - 1)/(v m)`` for the
interleaved schedule when stages are equal and communication is free (SC21, section 2.2).
"""
from __future__ import annotations

from typing import NamedTuple

from simulator.errors import SpecError, UnknownNameError

SCHEDULES = ("1f1b", "gpipe", "interleaved")


class Action(NamedTuple):
    """One pass of one microbatch through one model chunk of a device: ``kind`` is "F" or "B"."""

    kind: str
    microbatch: int
    chunk: int = 0


def gpipe(p: int, m: int, k: int) -> list[Action]:
    """Device ``k``'s GPipe order: all ``m`` forwards, then all ``m`` backwards."""
    _check(p, m, 1, k)
    return [Action("F", i) for i in range(m)] + [Action("B", i) for i in range(m)]


def one_f_one_b(p: int, m: int, k: int) -> list[Action]:
    """Device ``k``'s 1F1B (PipeDream-Flush) order.

    >>> "".join(f"{a.kind}{a.microbatch}" for a in one_f_one_b(2, 4, 0))
    'F0F1B0F2B1F3B2B3'
    """
    _check(p, m, 1, k)
    warmup = min(p - k - 1, m)
    out = [Action("F", i) for i in range(warmup)]
    for i in range(m - warmup):
        out.append(Action("F", warmup + i))
        out.append(Action("B", i))
    out.extend(Action("B", i) for i in range(m - warmup, m))
    return out


def interleaved(p: int, m: int, v: int, k: int) -> list[Action]:
    """Device ``k``'s interleaved 1F1B order with ``v`` model chunks.

    >>> "".join(f"{a.kind}{a.microbatch}{'ab'[a.chunk]}" for a in interleaved(2, 2, 2, 1))
    'F0aF1aF0bB0bF1bB1bB0aB1a'
    """
    _check(p, m, v, k)
    if m % p:
        raise SpecError(f"the interleaved schedule takes microbatches in groups of pp={p}",
                        field="strategy.microbatches", value=m)
    total = m * v
    warmup = min(2 * (p - k - 1) + (v - 1) * p, total)

    def nth(i: int, kind: str) -> Action:
        group, rest = divmod(i, p * v)
        chunk = rest // p
        if kind == "B":
            chunk = v - 1 - chunk
        return Action(kind, group * p + rest % p, chunk)

    out = [nth(i, "F") for i in range(warmup)]
    for i in range(total - warmup):
        out.append(nth(warmup + i, "F"))
        out.append(nth(i, "B"))
    out.extend(nth(i, "B") for i in range(total - warmup, total))
    return out


def schedule(name: str, p: int, m: int, v: int = 1) -> list[list[Action]]:
    """Every device's action list for schedule ``name`` (see :data:`SCHEDULES`)."""
    if name == "gpipe":
        fn = lambda k: gpipe(p, m, k)  # noqa: E731
    elif name == "1f1b":
        fn = lambda k: one_f_one_b(p, m, k)  # noqa: E731
    elif name == "interleaved":
        fn = lambda k: interleaved(p, m, v, k)  # noqa: E731
    else:
        raise UnknownNameError("pipeline schedule", str(name), SCHEDULES,
                               field="strategy.schedule")
    if name != "interleaved" and v != 1:
        raise SpecError(f"only the interleaved schedule has model chunks ({name!r} given)",
                        field="strategy.chunks", value=v)
    return [fn(k) for k in range(p)]


def virtual_stage(chunk: int, device: int, p: int) -> int:
    """The virtual stage that chunk ``chunk`` of device ``device`` holds (round-robin)."""
    return chunk * p + device


def emission_order(actions: list[list[Action]], p: int, v: int = 1) -> list[tuple[int, int]]:
    """A global order of ``(device, index into actions[device])`` that respects every device's own
    order and the data dependencies between stages: ``F(mb)`` of virtual stage ``j`` after
    ``F(mb)`` of stage ``j - 1``, ``B(mb)`` of stage ``j`` after ``B(mb)`` of stage ``j + 1``
    (and after its own ``F(mb)``).

    Emitting operations in this order gives every dependency a smaller id than its dependant;
    a schedule that cannot be ordered so would deadlock, and raises ``ValueError``.
    """
    last = p * v - 1
    done: set[tuple[str, int, int]] = set()
    cursor = [0] * p
    order: list[tuple[int, int]] = []
    remaining = sum(len(a) for a in actions)
    while remaining:
        progressed = False
        for k in range(p):
            mine = actions[k]
            while cursor[k] < len(mine):
                a = mine[cursor[k]]
                j = virtual_stage(a.chunk, k, p)
                if a.kind == "F":
                    ready = j == 0 or ("F", a.microbatch, j - 1) in done
                else:
                    ready = ("F", a.microbatch, j) in done and (
                        j == last or ("B", a.microbatch, j + 1) in done)
                if not ready:
                    break
                done.add((a.kind, a.microbatch, j))
                order.append((k, cursor[k]))
                cursor[k] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise ValueError(f"pipeline schedule deadlocks at device cursors {cursor}")
    return order


def in_flight(actions: list[Action]) -> int:
    """The largest number of microbatch chunks whose forward has run and backward has not."""
    live = peak = 0
    for a in actions:
        live += 1 if a.kind == "F" else -1
        peak = max(peak, live)
    return peak


def _check(p: int, m: int, v: int, k: int) -> None:
    for name, value in (("pp", p), ("microbatches", m), ("chunks", v)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError("must be an integer >= 1", field=f"strategy.{name}", value=value)
    if not 0 <= k < p:
        raise ValueError(f"device {k} outside 0..{p - 1}")
