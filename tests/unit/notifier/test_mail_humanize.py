"""human_size, human_utc and the item-count phrases: pure, no infrastructure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.mail import human_size, human_utc
from services.notifier.mail.humanize import count_phrases, plural


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1.0 KB"),
        (1536, "1.5 KB"),
        (999_949, "999.9 KB"),
        (999_950, "1.0 MB"),  # rounds up into the next unit, never "1000.0 KB"
        (24_500_000, "24.5 MB"),
        (1_000_000_000, "1.0 GB"),
        (5_368_709_120, "5.4 GB"),
        (2 * 10**15, "2.0 PB"),
        (3 * 10**21, "3000.0 EB"),  # the largest unit just grows
    ],
)
def test_human_size_uses_decimal_units_with_one_decimal(n: int, expected: str) -> None:
    assert human_size(n) == expected


def test_human_size_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError):
        human_size(-1)


@given(st.integers(min_value=1000, max_value=10**18 - 1))
def test_human_size_always_shows_a_number_below_1000_of_some_unit(n: int) -> None:
    number, unit = human_size(n).split(" ")
    assert 1.0 <= float(number) < 1000
    assert unit in {"KB", "MB", "GB", "TB", "PB", "EB"}


def test_human_utc_converts_to_utc_and_reads_like_a_date() -> None:
    paris = timezone(timedelta(hours=1))
    assert human_utc(datetime(2026, 3, 1, 11, 30, tzinfo=paris)) == "Sunday 1 March 2026, 10:30 UTC"


def test_human_utc_takes_naive_datetimes_as_utc() -> None:
    assert human_utc(datetime(2025, 12, 6, 14, 5)) == human_utc(datetime(2025, 12, 6, 14, 5, tzinfo=UTC))


def test_count_phrases_lists_known_kinds_first_with_singulars() -> None:
    counts = {"images": 40, "zines": 2, "pages": 1, "posts": 1234}
    assert count_phrases(counts) == ["1,234 posts", "1 page", "40 images", "2 zines"]


def test_count_phrases_for_storage_exports() -> None:
    assert count_phrases({"files": 1}) == ["1 file"]


def test_plural() -> None:
    assert [plural(n, "item", "items") for n in (0, 1, 2)] == ["0 items", "1 item", "2 items"]
