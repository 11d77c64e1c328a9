"""The crash-injection suite's tally (``tests/chaos/tally.py``), handed to its scenarios."""

from __future__ import annotations

import pytest

from tests.chaos.tally import TALLY, Tally


@pytest.fixture
def tally() -> Tally:
    return TALLY
