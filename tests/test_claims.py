"""Every known miss's reason is a claim the code checks (simulator/validation/claims.py)."""
from __future__ import annotations

import pytest

from simulator.validation import load_reference
from simulator.validation.claims import SLOW, Context, claimed_rows, evaluate

TABLE = load_reference()
MISSES = [r.id for r in TABLE.rows if r.status == "known_miss"]


def test_every_known_miss_has_a_claim_named_in_its_reason():
    assert sorted(MISSES) == sorted(claimed_rows())
    for rid in MISSES:
        assert f"`paleosim validate --claims --rows {rid}`" in TABLE.row(rid).reason, rid


@pytest.fixture(scope="module")
def context():
    return Context(TABLE)


@pytest.mark.parametrize("rid", [r for r in MISSES if r not in SLOW])
def test_the_claim_behind_a_known_miss_holds(rid, context):
    result = evaluate(rid, context)
    assert result.holds, result.evidence

# the claims of SLOW rows are checked on the slow rows' own predictions, in
# tests/test_published.py::test_slow_row_within_tolerance
