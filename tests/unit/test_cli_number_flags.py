"""A number flag's argparse type: one refusal line for what is out of range or not finite, never a traceback."""

from __future__ import annotations

import argparse

import pytest

from services.cliargs import number_in


def test_a_whole_number_too_big_for_a_float_is_no_traceback() -> None:
    """Seen: since the infinity check (math.isfinite), `exports --limit 1000…0` (401 digits) or
    `token --ttl` of as many ended in "OverflowError: int too large to convert to float" out of
    argparse, a traceback; before it such a number was taken as the bound-less range allows."""
    huge = "1" + "0" * 400
    assert number_in(1)(huge) == int(huge)
    with pytest.raises(argparse.ArgumentTypeError, match="must be 0-100000"):
        number_in(0, 100_000)(huge)  # with a bound: refused as before
    for text in ("inf", "1e400", "nan", "-inf"):  # a float flag still refuses what is not finite
        with pytest.raises(argparse.ArgumentTypeError):
            number_in(0, kind=float)(text)
