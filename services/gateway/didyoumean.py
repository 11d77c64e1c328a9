"""The closest known field for an unknown one (``include_images`` → ``includeImages``): pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def closest(unknown: str, known: Iterable[str]) -> str | None:
    """The known name that ``unknown`` most likely meant, or None when nothing is close.

    Spelling-style differences (snake_case, kebab-case, capitals) match exactly; otherwise the
    nearest by difflib's ratio, if at least 0.75 similar, or the one known name it begins
    (``delivery`` → ``deliveryMethod``); ``colour`` suggests nothing."""
    names = list(known)
    plain = {_plain(n): n for n in names}
    if _plain(unknown) in plain:
        return plain[_plain(unknown)]
    match = difflib.get_close_matches(_plain(unknown), list(plain), n=1, cutoff=0.75)
    if match:
        return plain[match[0]]
    starts = [n for p, n in plain.items() if len(_plain(unknown)) >= 3 and p.startswith(_plain(unknown))]
    return starts[0] if len(starts) == 1 else None
