"""Numbers and dates the way a person reads them. Pure and locale-independent."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from shared.core.humanize import human_size

__all__ = ["count_phrases", "human_size", "human_utc", "plural"]

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Known item kinds in the order the email lists them, with their singular and plural nouns.
_NOUNS: dict[str, tuple[str, str]] = {
    "posts": ("post", "posts"),
    "pages": ("page", "pages"),
    "images": ("image", "images"),
    "files": ("file", "files"),
}


def human_utc(moment: datetime) -> str:
    """``Saturday 6 December 2025, 14:05 UTC``. A naive datetime is taken to be UTC already."""
    t = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{_DAYS[t.weekday()]} {t.day} {_MONTHS[t.month - 1]} {t.year}, {t:%H:%M} UTC"


def count_phrases(item_counts: Mapping[str, int]) -> list[str]:
    """``{"posts": 12, "pages": 1}`` → ``["12 posts", "1 page"]``; known kinds first, in order."""
    known = [k for k in _NOUNS if k in item_counts]
    others = sorted(k for k in item_counts if k not in _NOUNS)
    return [plural(item_counts[kind], *_NOUNS.get(kind, (kind, kind))) for kind in (*known, *others)]


def plural(n: int, one: str, many: str) -> str:
    """``1 item`` / ``3 items`` (with thousands separators)."""
    return f"{n:,} {one if n == 1 else many}"
