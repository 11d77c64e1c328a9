"""The notifier's mail side: build the email, send it through one backend, retry what is worth it.

Usage (from the notifier's composition root and handler)::

    mailer = build_mailer(settings.mail)                    # OutboxMailer | SmtpMailer | HttpMailer
    email = ready_email(to=..., username=..., ..., export_id=...)
    try:
        channel = await send_with_retries(mailer, email, s.attempts, s.retry_base_delay)
    except MailError as exc:                                # MailGaveUp or PermanentMailError
        ...  # NotificationFailed(channel=..., reason=exc.reason)
    await mailer.close()                                    # on shutdown

Errors::

    MailError                 ``reason``: one readable line
    ├── TransientMailError    retry (``retry_after``: the server's hint, if any)
    ├── PermanentMailError    do not retry
    └── MailGaveUp            raised by send_with_retries after the last transient failure
"""

from __future__ import annotations

from .errors import MailError, MailGaveUp, PermanentMailError, TransientMailError
from .factory import build_mailer
from .http import HttpMailer, zephyr_body
from .humanize import human_size, human_utc
from .message import Email, failed_email, ready_email
from .mime import message_id, mime_bytes
from .outbox import OutboxMailer, outbox_filename
from .port import Mailer
from .retry import backoff_delay, send_with_retries
from .smtp import SmtpMailer

__all__ = [
    "Email",
    "HttpMailer",
    "MailError",
    "MailGaveUp",
    "Mailer",
    "OutboxMailer",
    "PermanentMailError",
    "SmtpMailer",
    "TransientMailError",
    "backoff_delay",
    "build_mailer",
    "failed_email",
    "human_size",
    "human_utc",
    "message_id",
    "mime_bytes",
    "outbox_filename",
    "ready_email",
    "send_with_retries",
    "zephyr_body",
]
