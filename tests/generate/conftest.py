"""Generation tests run tiny models step by step: one thread avoids oversubscribing shared cores."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread) -> None:
    """Every test in this folder uses tests/conftest.py's ``one_thread``."""
