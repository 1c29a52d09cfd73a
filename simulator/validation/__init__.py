"""Published-result validation: the project's reference table, its cases, and the error table.

- :mod:`~simulator.validation.table`: the reference table (``reference.json``, package data),
  one published number a row with its citation, confidence, role and status.
- :mod:`~simulator.validation.cases`: each row's simulation and how its metric is measured.
- :mod:`~simulator.validation.paleo_cases`: Paleo's analytical prediction of the same case.
- :mod:`~simulator.validation.runner`: :func:`run_validation`, the per-row errors and verdicts.
- :mod:`~simulator.validation.summary`: median and maximum errors per source and overall, and
  the comparison with Paleo.

``paleosim validate`` prints all of it; ``tests/test_published.py`` asserts it; see
``docs/VALIDATION.md``.

>>> from simulator.validation import run_validation
>>> result = run_validation(rows="tfbench-dgx1-resnet50-1")       # doctest: +SKIP
>>> result.rows[["id", "published", "predicted", "error", "verdict"]]  # doctest: +SKIP
"""
from simulator.validation.cases import (CollectiveCase, Prediction, Simulations, TrainingCase,
                                        build_case, collective_time_s, predict)
from simulator.validation.paleo_cases import PaleoPredictor
from simulator.validation.runner import FAILING, ValidationResult, run_validation
from simulator.validation.summary import paleo_comparison, summarise
from simulator.validation.table import (CONFIDENCES, METRICS, ReferenceRow, ReferenceTable,
                                        Source, load_reference, parse_table)

__all__ = ["CONFIDENCES", "CollectiveCase", "FAILING", "METRICS", "PaleoPredictor",
           "Prediction", "ReferenceRow", "ReferenceTable", "Simulations", "Source",
           "TrainingCase", "ValidationResult", "build_case", "collective_time_s",
           "load_reference", "paleo_comparison", "parse_table", "predict", "run_validation",
           "summarise"]
