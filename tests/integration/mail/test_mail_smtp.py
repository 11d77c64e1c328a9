"""SmtpMailer against a real aiosmtpd server: plain, STARTTLS, implicit TLS, AUTH, failures."""

from __future__ import annotations

import asyncio
import email
import ssl
from dataclasses import dataclass, replace
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from services.notifier.mail import (
    Email,
    MailGaveUp,
    PermanentMailError,
    SmtpMailer,
    TransientMailError,
    send_with_retries,
)
from tests.integration.mail.conftest import SmtpHandler

SENDER = "Grove Export <exports@grove.test>"
NASTY_NAME = "<script>alert(1)</script> Tom & Jerry"  # the conftest's ``ready`` username

pytestmark = [
    pytest.mark.timeout(30),
    # aiosmtpd itself sets the deprecated Session.login_data after a successful AUTH.
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    # The plain-AUTH test server is deliberately insecure; aiosmtpd says so.
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]


def mailer(port: int, **kwargs: Any) -> SmtpMailer:
    return SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=5.0, **kwargs)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}"
    return str(part.get_content())


async def test_plain_smtp_delivers_both_parts_headers_and_escaped_html(start_smtp: Any, ready: Email) -> None:
    server = start_smtp(mode="plain")

    channel = await mailer(server.port).send(ready)

    assert channel == "smtp"
    [got] = server.handler.messages
    assert got.mail_from == "exports@grove.test"
    assert got.rcpt_tos == ["wanderer@example.org"]
    msg = parse(got.data)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["From"] == SENDER
    assert msg["To"] == "wanderer@example.org"
    assert msg["Subject"] == "Your Grove export is ready"
    assert msg["Message-ID"] == "<exp_3f2a9c.ready.tenant_tom@grove.test>"
    assert msg["Date"] is not None
    text, html = body(msg, "plain"), body(msg, "html")
    assert f"Hi {NASTY_NAME}," in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in html
    assert "<script>" not in html
    assert "ab" * 32 in text and "ab" * 32 in html
    assert "24.5 MB" in text


async def test_redelivery_reuses_the_message_id(start_smtp: Any, ready: Email) -> None:
    server = start_smtp()
    m = mailer(server.port)

    await m.send(ready)
    await m.send(ready)

    ids = {parse(r.data)["Message-ID"] for r in server.handler.messages}
    assert ids == {"<exp_3f2a9c.ready.tenant_tom@grove.test>"}


async def test_starttls_upgrades_before_sending(start_smtp: Any, certs: Any, ready: Email) -> None:
    server = start_smtp(mode="starttls")

    await mailer(server.port, security="starttls", tls_context=certs.client_context()).send(ready)

    [got] = server.handler.messages
    assert got.tls


async def test_starttls_with_auth_logs_in(
    start_smtp: Any, certs: Any, smtp_login: tuple[str, str], ready: Email
) -> None:
    server = start_smtp(mode="starttls", auth=True)
    user, password = smtp_login
    m = mailer(server.port, security="starttls", ca_file=str(certs.ca_file), username=user, password=password)

    await m.send(ready)

    [got] = server.handler.messages
    assert got.tls and got.authenticated


async def test_implicit_tls_delivers(start_smtp: Any, certs: Any, ready: Email) -> None:
    server = start_smtp(mode="tls")

    await mailer(server.port, security="tls", tls_context=certs.client_context()).send(ready)

    [got] = server.handler.messages
    assert got.tls
    assert "multipart/alternative" in parse(got.data).get_content_type()


async def test_plain_auth_logs_in(start_smtp: Any, smtp_login: tuple[str, str], ready: Email) -> None:
    server = start_smtp(mode="plain", auth=True)
    user, password = smtp_login

    await mailer(server.port, username=user, password=password).send(ready)

    [got] = server.handler.messages
    assert got.authenticated and not got.tls


async def test_wrong_password_is_permanent(start_smtp: Any, smtp_login: Any, ready: Email) -> None:
    server = start_smtp(mode="plain", auth=True)
    user, _ = smtp_login

    with pytest.raises(PermanentMailError, match="rejected the login"):
        await mailer(server.port, username=user, password="wrong").send(ready)
    assert server.handler.messages == []


async def test_untrusted_certificate_is_permanent(start_smtp: Any, ready: Email) -> None:
    server = start_smtp(mode="tls")

    with pytest.raises(PermanentMailError, match="certificate"):
        await mailer(server.port, security="tls", tls_context=ssl.create_default_context()).send(ready)


async def test_starttls_required_but_not_offered_is_permanent(start_smtp: Any, ready: Email) -> None:
    server = start_smtp(mode="plain")

    with pytest.raises(PermanentMailError):
        await mailer(server.port, security="starttls").send(ready)


async def test_server_down_is_transient(unused_port: int, ready: Email) -> None:
    with pytest.raises(TransientMailError, match="cannot reach"):
        await mailer(unused_port).send(ready)


async def test_server_down_gives_up_after_every_attempt(unused_port: int, ready: Email) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    with pytest.raises(MailGaveUp, match="gave up after 3 attempts: cannot reach") as info:
        await send_with_retries(mailer(unused_port), ready, 3, 0.5, fake_sleep)
    assert sleeps == [0.5, 1.0]
    assert info.value.attempts == 3


async def test_silent_server_times_out_as_transient(ready: Email) -> None:
    hung_up = asyncio.Event()

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # never greets; returns when the client gives up
        finally:
            writer.close()
            hung_up.set()

    silent = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransientMailError, match="timed out"):
            await SmtpMailer(host="127.0.0.1", port=port, sender=SENDER, timeout=0.3).send(ready)
        await asyncio.wait_for(hung_up.wait(), 5)
    finally:
        silent.close()
        await silent.wait_closed()


async def test_4xx_on_data_is_transient_and_a_retry_delivers(start_smtp: Any, ready: Email) -> None:
    server = start_smtp()
    server.handler.data_replies = ["451 4.3.0 Try again later"]

    async def no_sleep(_: float) -> None:
        return None

    channel = await send_with_retries(mailer(server.port), ready, 3, 0.01, no_sleep)

    assert channel == "smtp"
    assert len(server.handler.messages) == 1


async def test_5xx_on_data_is_permanent(start_smtp: Any, ready: Email) -> None:
    server = start_smtp()
    server.handler.data_replies = ["554 5.7.1 Message rejected"]

    with pytest.raises(PermanentMailError, match="554"):
        await mailer(server.port).send(ready)


async def test_refused_recipient_is_permanent(start_smtp: Any, ready: Email) -> None:
    server = start_smtp()
    server.handler.rcpt_reply = "550 5.1.1 No such user"

    with pytest.raises(PermanentMailError, match="No such user"):
        await mailer(server.port).send(ready)


async def test_greylisted_recipient_is_transient(start_smtp: Any, ready: Email) -> None:
    server = start_smtp()
    server.handler.rcpt_reply = "450 4.2.0 Greylisted, come back later"

    with pytest.raises(TransientMailError, match="Greylisted"):
        await mailer(server.port).send(ready)


@dataclass
class BusyOnEhlo(SmtpHandler):
    """Answers the first ``busy`` EHLOs ``421`` (busy, closing), then as usual (SMTPUTF8 if enabled)."""

    busy: int = 1

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        if self.busy:
            self.busy -= 1
            return ["421 4.7.0 mx.test busy, try again later"]
        session.host_name = hostname
        return responses


@pytest.mark.parametrize("to", ["wanderer@example.org", "josé@bücher.de"])
async def test_a_busy_answer_to_ehlo_is_transient_and_a_retry_delivers(start_smtp: Any, ready: Email, to: str) -> None:
    """A 421 to EHLO says the server is busy, not what it offers: for an address that needs SMTPUTF8
    it was "does not offer SMTPUTF8", permanent — no retry, no email — from a server that offers it."""
    server = start_smtp(utf8=True, handler=BusyOnEhlo())
    email = replace(ready, to=to)

    with pytest.raises(TransientMailError, match="421"):
        await mailer(server.port).send(email)

    server.handler.busy = 1

    async def no_sleep(_: float) -> None:
        return None

    assert await send_with_retries(mailer(server.port), email, 3, 0.01, no_sleep) == "smtp"
    [got] = server.handler.messages
    assert got.rcpt_tos == [to] and got.smtputf8 == (not to.isascii())
