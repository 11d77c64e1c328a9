"""SMTP backend (aiosmtplib): one connection per email, plain, STARTTLS or implicit TLS, optional AUTH.

SMTP has no idempotency key; the deterministic Message-ID is what lets a receiver spot a repeat.

A recipient whose domain alone is not ASCII is sent to as its A-labels (``anna@xn--bcher-kva.de``):
any server takes it. One whose local part is not ASCII (``josé@…``) needs SMTPUTF8 (RFC 6531): sent
with it when the server offers it, else a :class:`PermanentMailError` before anything is sent (no
retry can make the server offer it).
"""

from __future__ import annotations

import ssl
from typing import Literal

import aiosmtplib

from shared.core.mailaddr import needs_smtputf8, with_ascii_domain

from .errors import MailError, PermanentMailError, TransientMailError
from .message import Email
from .mime import envelope_address, mime_bytes

CHANNEL = "smtp"
Security = Literal["plain", "starttls", "tls"]
_SECURITY = ("plain", "starttls", "tls")


def _cert_problem(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _by_code(code: int, what: str) -> MailError:
    # RFC 5321: 4yz is a transient negative reply, 5yz a permanent one.
    if 500 <= code < 600:
        return PermanentMailError(what)
    return TransientMailError(what)


def translate_smtp_error(exc: BaseException, where: str) -> MailError:
    """Map an aiosmtplib/socket error to Transient or Permanent, with a readable reason."""
    cert = _cert_problem(exc)
    if cert is not None:
        return PermanentMailError(f"TLS certificate of {where} not trusted: {cert.verify_message or cert}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # any 4yz is transient (RFC 5321), not only RFC 4954's 454: servers answer 451 or 421 while
        # their login backend is down or they rate-limit logins, and such an email was never sent
        what = f"{where} rejected the login ({exc.code} {exc.message})"
        return TransientMailError(what) if 400 <= exc.code < 500 else PermanentMailError(what)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        return _by_code(max(codes, default=550), f"{where} refused the recipient ({detail})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, f"{where} answered {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentMailError(f"{where} does not support what the settings ask for: {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientMailError(f"{where} timed out: {exc}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return TransientMailError(f"cannot reach {where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        return PermanentMailError(f"{where}: {exc.message}")
    return TransientMailError(f"{where}: {exc!r}")


async def _offers_smtputf8(client: aiosmtplib.SMTP) -> bool:
    """Whether the connected server lists SMTPUTF8 in its EHLO answer (one that refuses EHLO for good,
    5yz, lists nothing). A 4yz — ``421`` busy, closing — says nothing about SMTPUTF8: raised, a
    transient failure retried like the same answer to an ASCII address's EHLO (taken as "does not
    offer SMTPUTF8", it ended the email for good on a server that offers it)."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError as exc:
            if not 500 <= exc.code < 600:
                raise
            return False
    return client.supports_extension("smtputf8")


class SmtpMailer:
    """Sends through an SMTP server.

    ``security``: ``plain`` (no TLS), ``starttls`` (upgrade required, fails if not offered) or
    ``tls`` (implicit TLS, usually port 465). Certificates are verified against ``tls_context``,
    else ``ca_file``, else the system store.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security = "plain",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        sender: str = "Grove Export <exports@grove.local>",
        tls_context: ssl.SSLContext | None = None,
        ca_file: str | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if security not in _SECURITY:
            raise ValueError(f"smtp security must be one of {_SECURITY}, not {security!r}")
        if password and not username:
            raise ValueError("an SMTP password needs a username")
        self.host, self.port, self.security = host, port, security
        self.username = username
        self._password = password or ""
        self.timeout = timeout
        self.sender = sender
        self.tls_context = tls_context
        self.ca_file = ca_file
        self.local_hostname = local_hostname

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self.tls_context,
            cert_bundle=None if self.tls_context else self.ca_file,
            local_hostname=self.local_hostname,
        )

    async def send(self, email: Email) -> str:
        utf8 = needs_smtputf8(email.to)
        data = mime_bytes(email, sender=self.sender, utf8=utf8)  # bodies 7-bit: no 8BITMIME needed
        recipient = email.to if utf8 else with_ascii_domain(email.to)
        where = f"SMTP server {self.host}:{self.port}"
        client = self._client()
        try:
            async with client:
                if utf8 and not await _offers_smtputf8(client):
                    raise PermanentMailError(f"{where} does not offer SMTPUTF8, which the recipient's address "
                                             "needs (it is not ASCII before its @)")
                if self.username:
                    await client.login(self.username, self._password)
                await client.sendmail(envelope_address(self.sender), [recipient], data,
                                      mail_options=["SMTPUTF8"] if utf8 else None)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise translate_smtp_error(exc, where) from exc
        return CHANNEL

    async def close(self) -> None:
        return None  # no connection outlives a send

    def __repr__(self) -> str:
        who = f"username={self.username!r}"
        return f"SmtpMailer({self.host!r}, {self.port}, security={self.security!r}, {who})"
