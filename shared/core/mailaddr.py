"""One rule for the requester's email address: exactly one bare address.

The address comes from the token's ``email`` claim and ends up in a ``To:`` header and in the mail
service's ``to`` field, so anything that could name a second recipient or inject a header is
refused: a display name (``Name <a@b>``), a list (``a@b, c@d``), CR or LF, whitespace, quotes,
comments, and an RFC 2047 encoded word (``=?utf-8?b?…?=``: atext, but Python's ``email`` decodes it,
so ``=?utf-8?b?YUBldmlsLmNvbSwgYkBldmlsLmNvbQ==?=@x.co`` became ``To: a@evil.com, b@evil.com@x.co``;
RFC 2047 forbids one in an address). Checked by the gateway when it reads the token and again by every mail adapter.
"""

from __future__ import annotations

import re

MAX_LENGTH = 254
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")


def is_single_address(value: object) -> bool:
    """``value`` is one ``local@domain.tld`` address and nothing else."""
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH:
        return False
    local = value.rpartition("@")[0]
    return len(local) <= 64 and "=?" not in value and _ADDRESS.fullmatch(value) is not None
