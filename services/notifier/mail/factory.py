"""``build_mailer(settings.mail)``: the one place a mail backend is chosen and built."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from shared.runtime.settings import SettingsProblem

from .http import HttpMailer
from .outbox import OutboxMailer
from .port import Mailer
from .smtp import SmtpMailer


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def build_mailer(mail_settings: Any, *, tls_context: ssl.SSLContext | None = None) -> Mailer:
    """Build the backend named by ``mail_settings.backend`` (a ``shared.runtime.settings.MailSettings``).

    ``tls_context`` overrides certificate handling for SMTP (tests, private CAs in code).
    Raises ``ValueError`` for settings that cannot work (unknown backend, HTTP without an API key), and
    ``SettingsProblem`` for a CA bundle (``GROVE_MAIL__SMTP_CA_FILE``) it cannot load.
    """
    s = mail_settings
    if s.backend == "outbox":
        return OutboxMailer(Path(s.outbox_dir), sender=s.sender)
    if s.backend == "smtp":
        ca_file = s.smtp_ca_file
        if ca_file and tls_context is None:  # load it now: at send time it failed every email as "cannot reach"
            try:
                ssl.create_default_context(cafile=str(ca_file))
            except OSError as e:  # not there, unreadable, or no certificate in it (ssl.SSLError)
                why = e.strerror or getattr(e, "reason", None) or str(e)
                raise SettingsProblem(f"GROVE_MAIL__SMTP_CA_FILE: {why} ({ca_file})") from None
        return SmtpMailer(
            host=s.smtp_host,
            port=s.smtp_port,
            security=s.smtp_security,
            username=s.smtp_username or None,
            password=_secret(s.smtp_password),
            timeout=s.smtp_timeout,
            sender=s.sender,
            tls_context=tls_context,
            ca_file=str(ca_file) if ca_file else None,
        )
    if s.backend == "http":
        api_key = _secret(s.http_api_key)
        if not api_key:
            raise ValueError("mail backend 'http' needs an API key (GROVE_MAIL__HTTP_API_KEY)")
        return HttpMailer(url=s.http_url, api_key=api_key, timeout=s.http_timeout)
    raise ValueError(f"unknown mail backend {s.backend!r} (expected outbox, smtp or http)")
