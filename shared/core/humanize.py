"""Sizes the way a person reads them, shared by the gateway (``fileSize``) and the email."""

from __future__ import annotations

_UNITS = ("KB", "MB", "GB", "TB", "PB", "EB")


def human_size(n: int) -> str:
    """``n`` bytes with decimal (SI) units and one decimal place: ``24.5 MB``, ``999 bytes``.

    Decimal units (1 MB = 1,000,000 bytes) match what file managers on macOS and most Linux
    desktops show for the downloaded file.
    """
    if n < 0:
        raise ValueError(f"size cannot be negative: {n}")
    if n < 1000:
        return "1 byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in _UNITS:
        value /= 1000
        # Promote when rounding to one decimal would print "1000.0" of this unit.
        if round(value, 1) < 1000 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
