"""Peak memory per device: model states, activations, pipeline microbatches, ZeRO sharding.

Pure functions over a :class:`~workloads.graph.LayerGraph` (or one pipeline stage's layers) and
the parallel layout; no simulation. Bytes everywhere. See ``docs/MEMORY.md``.

- :mod:`~simulator.memory.states`: weights, gradients and optimizer state per parameter
  (Rajbhandari et al., ZeRO, SC20), ZeRO partitioning, tensor-parallel parameter splits.
- :mod:`~simulator.memory.activations`: what each layer keeps for its backward pass, with
  tensor/sequence parallelism and recomputation (Korthikanti et al. 2022).
- :mod:`~simulator.memory.transformer`: Korthikanti et al.'s closed forms for a GPT layer.
- :mod:`~simulator.memory.pipeline`: microbatches in flight per stage (GPipe, 1F1B, interleaved).
- :mod:`~simulator.memory.breakdown`: :func:`training_memory`, :func:`check_fits` and the
  out-of-memory error; :mod:`~simulator.memory.table`: per-rank tables and the per-device check;
  :mod:`~simulator.memory.plans`: the tables of the built-in strategies.

>>> from simulator.memory import training_memory
>>> m = training_memory(params=7.5e9, dtype="fp16", optimizer="adam", zero_stage=1, dp=64)
>>> round(m.total / 1e9, 1)
31.4
"""
from simulator.memory.activations import (RECOMPUTE, ActivationMemory, activation_memory,
                                          layer_activation_bytes)
from simulator.memory.breakdown import (COMPONENTS, MemoryBreakdown, OutOfMemoryError,
                                        check_fits, format_bytes, overflow_bytes,
                                        training_memory)
from simulator.memory.pipeline import SCHEDULES, in_flight_microbatches
from simulator.memory.states import (ZERO_STAGES, bytes_per_param, local_layer_params,
                                     local_params, model_state_bytes)
from simulator.memory.table import (MEMORY_COLUMNS, check_memory_table, device_totals,
                                    memory_overflow_bytes, memory_table, peak_memory_bytes)
from simulator.memory.transformer import (gpt_layer_activation_bytes,
                                          transformer_activation_bytes, transformer_config)

__all__ = ["ActivationMemory", "COMPONENTS", "MEMORY_COLUMNS", "MemoryBreakdown",
           "OutOfMemoryError", "RECOMPUTE", "SCHEDULES", "ZERO_STAGES", "activation_memory",
           "bytes_per_param", "check_fits", "check_memory_table", "device_totals",
           "format_bytes", "gpt_layer_activation_bytes", "in_flight_microbatches",
           "layer_activation_bytes", "local_layer_params", "local_params",
           "memory_overflow_bytes", "memory_table", "model_state_bytes", "overflow_bytes",
           "peak_memory_bytes", "training_memory", "transformer_activation_bytes",
           "transformer_config"]
