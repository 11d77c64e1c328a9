"""The two emails the notifier sends, built by pure functions from Jinja2 templates.

Each :class:`Email` carries an ``idempotency_key`` (``{export_id}:{kind}:{tenant_id}``): backends use
it so a redelivered event produces the same message (same outbox file, same Message-ID, same Zephyr
``Idempotency-Key``) instead of a second one. The tenant is part of it: export ids are unique only
within a tenant (a gateway of one's own chooses them), and two tenants' emails must never be one.
An operator's retry (attempt 2, …) and resend (1, 2, …) are new emails, so they get their own
identity (``…:a2``, ``…:r1``): the same key would let the mail service drop the resend as a repeat.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.core.verifying import checksum_lines

from .humanize import count_phrases, human_size, human_utc, plural

Kind = Literal["ready", "failed"]

READY_SUBJECT = "Your Grove export is ready"
FAILED_SUBJECT = "Your Grove export could not be completed"

_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Email:
    """One rendered message, independent of how it is sent."""

    to: str
    subject: str
    text: str
    html: str
    idempotency_key: str
    tenant_id: str = ""  # whose export: the mail service's rate limit is kept per tenant
    export_id: str = ""


@cache
def _env() -> Environment:
    # Built on first use, not at import. Autoescape is keyed on the name *before* ".j2".
    return Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html.j2", "html"), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # The templates ship with the code: once loaded, a render does not stat their files (each
        # template and the layout it extends) to see whether they changed on disk.
        auto_reload=False,
    )


def _render(name: str, context: Mapping[str, Any]) -> str:
    return _env().get_template(name).render(**context)


TEXT_WIDTH = 72


def fill_text(text: str, width: int = TEXT_WIDTH) -> str:
    """The plain-text part as a mail reader shows it best: each line longer than ``width`` filled at
    spaces to ``width``. A word longer than that (a URL, a checksum) is never split, nor at a hyphen:
    it stands whole on a line of its own. An indented line (a command to copy, the checksum, a list
    item) is left as written. The templates keep a paragraph on one line for this."""
    lines = []
    for line in text.split("\n"):
        if len(line) <= width or line[:1].isspace():
            lines.append(line)
        else:
            lines.extend(textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False))
    return "\n".join(lines)


def idempotency_key(tenant_id: str, export_id: str, kind: Kind, attempt: int = 1, resend: int = 0) -> str:
    return f"{export_id}:{kind}:{tenant_id}" + (f":a{attempt}" if attempt > 1 else "") + (f":r{resend}" if resend else "")


def ready_email(
    *,
    to: str,
    username: str,
    item_counts: Mapping[str, int],
    size_bytes: int,
    expires_at: datetime,
    download_page_url: str,
    sha256: str,
    error_count: int,
    export_id: str,
    tenant_id: str,
    attempt: int = 1,
    resend: int = 0,
) -> Email:
    """The "your export is ready" email: contents, size, expiry, link, checksum and how to verify."""
    context = {
        "username": username,
        "items": count_phrases(item_counts),
        "size": human_size(size_bytes),
        "expires": human_utc(expires_at),
        "download_page_url": download_page_url,
        "sha256": sha256,
        "checksum_lines": checksum_lines(),  # the archive's README.md names the same (shared/core/verifying.py)
        "error_count": error_count,
        "errors_phrase": plural(error_count, "item", "items"),
        "export_id": export_id,
    }
    return Email(
        to=to,
        subject=READY_SUBJECT,
        text=fill_text(_render("ready.txt.j2", context)),
        html=_render("ready.html.j2", context),
        idempotency_key=idempotency_key(tenant_id, export_id, "ready", attempt, resend),
        tenant_id=tenant_id,
        export_id=export_id,
    )


def failed_email(*, to: str, username: str, reason: str, export_id: str, tenant_id: str,
                 download_page_url: str, attempt: int = 1, resend: int = 0) -> Email:
    """The "your export failed" email: what happened and how to start again."""
    context = {
        "username": username,
        "reason": reason,
        "export_id": export_id,
        "download_page_url": download_page_url,
    }
    return Email(
        to=to,
        subject=FAILED_SUBJECT,
        text=fill_text(_render("failed.txt.j2", context)),
        html=_render("failed.html.j2", context),
        idempotency_key=idempotency_key(tenant_id, export_id, "failed", attempt, resend),
        tenant_id=tenant_id,
        export_id=export_id,
    )
