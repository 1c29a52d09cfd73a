"""How many microbatches' activations a pipeline stage holds at its peak.

- ``gpipe`` (Huang et al., "GPipe", NeurIPS 2019): every forward pass runs before the first
  backward pass, so each stage holds all ``m`` microbatches.
- ``1f1b`` (PipeDream-Flush, Narayanan et al., "Memory-Efficient Pipeline-Parallel DNN
  Training", ICML 2021): stage ``i`` of ``p`` runs ``p - i - 1`` warm-up forwards, then
  alternates one forward and one backward, so it holds at most ``min(p - i, m)``.
- ``interleaved`` 1F1B with ``v`` model chunks per stage (Narayanan et al., "Efficient
  Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", SC21, section 2.2.2):
  a stage runs its forward chunks in groups of ``p`` microbatches, chunk after chunk. Its first
  backward is for the last chunk of microbatch 0, which the last stage reaches after
  ``(v - 1)*p + 1`` chunk forwards; on stage ``i`` that backward returns ``2*(p - i - 1)``
  chunk steps later. So stage ``i`` holds ``min((v - 1)*p + 2*(p - i - 1) + 1, m*v)`` chunk
  microbatches, each ``1/v`` of the stage's layers. For the first stage that is
  ``p + (p - 1)/v`` whole-stage microbatches, the factor ``1 + (p - 1)/(p*v)`` over 1F1B that
  Korthikanti et al. (MLSys 2023, section 4.2.3) give.

Counts are in units of one microbatch's activations of the whole stage (a float for
``interleaved``).
"""
from __future__ import annotations

from simulator.errors import SpecError, UnknownNameError
from simulator.memory.states import check_positive_int

SCHEDULES = ("1f1b", "gpipe", "interleaved")


def in_flight_microbatches(schedule: str, stages: int, stage_index: int, microbatches: int,
                           chunks: int = 1) -> float:
    """Microbatches whose activations stage ``stage_index`` (0-based) holds at its peak.

    >>> [in_flight_microbatches("1f1b", 4, i, 8) for i in range(4)]
    [4, 3, 2, 1]
    >>> in_flight_microbatches("gpipe", 4, 3, 8)
    8
    >>> in_flight_microbatches("interleaved", 4, 0, 8, chunks=2)
    5.5
    """
    if schedule not in SCHEDULES:
        raise UnknownNameError("pipeline schedule", str(schedule), list(SCHEDULES),
                               field="schedule")
    p = check_positive_int(stages, "stages")
    m = check_positive_int(microbatches, "microbatches")
    v = check_positive_int(chunks, "chunks")
    if isinstance(stage_index, bool) or not isinstance(stage_index, int) \
            or not 0 <= stage_index < p:
        raise SpecError(f"must be an integer in [0, {p})", field="stage_index",
                        value=stage_index)
    if v > 1 and schedule != "interleaved":
        raise SpecError(f"only the interleaved schedule has model chunks ({schedule!r} given)",
                        field="chunks", value=chunks)
    if schedule == "gpipe":
        return m
    if schedule == "1f1b" or v == 1:
        return min(p - stage_index, m)
    chunk_microbatches = min((v - 1) * p + 2 * (p - stage_index - 1) + 1, m * v)
    return chunk_microbatches / v
