"""Shared test helpers: where the public fixtures live, and a marker for tests that need them."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_PUBLISHED = REPO.parent / "shared" / "published"
PALEO_NETS = SHARED_DATA / "paleo" / "nets"

requires_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"public fixtures not found at {SHARED_DATA} (the shared/ folder beside the clone)")
