"""Mail servers that misbehave on purpose: raw sockets speaking just enough SMTP or HTTP to answer
with what a real server would never send (bytes that are not UTF-8, a multi-line refusal, an
error body that never ends, a ``Retry-After`` of digits ``float`` cannot read)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from services.devtools.stack.natsserver import free_port
from services.notifier.mail import (
    Email,
    HttpMailer,
    MailError,
    PermanentMailError,
    SmtpMailer,
    TransientMailError,
    send_with_retries,
)
from services.notifier.service import Notifier
from shared.core import events as ev
from shared.core import keys
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    servers: list[asyncio.AbstractServer] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()


def smtp_refusing_mail_from(reply: bytes) -> Handler:
    """Greets, answers EHLO, then answers MAIL FROM with ``reply`` (raw bytes)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250 mx.test\r\n")
                elif verb == b"MAIL":
                    writer.write(reply)
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()

    return handle


def assert_fit_for_notification_failed(reason: str) -> None:
    """What ``MailError.reason`` promises: one line that NotificationFailed can carry."""
    assert "\n" not in reason and "\r" not in reason, reason
    ev.NotificationFailed(export_id="exp_1", tenant_id="t1", channel="smtp", reason=reason).to_json()


async def test_an_smtp_refusal_in_bytes_that_are_not_utf8_is_a_reason_an_event_can_carry(
    raw_server: Any, ready: Email
) -> None:
    port = await raw_server(smtp_refusing_mail_from(b"550 sender \xff\xfe refused\r\n"))
    with pytest.raises(PermanentMailError) as caught:
        await SmtpMailer(host="127.0.0.1", port=port, timeout=5.0).send(ready)
    assert "550" in caught.value.reason
    assert_fit_for_notification_failed(caught.value.reason)


async def test_a_multi_line_smtp_refusal_is_one_line_of_reason(raw_server: Any, ready: Email) -> None:
    port = await raw_server(smtp_refusing_mail_from(b"550-first line\r\n550 second line\r\n"))
    with pytest.raises(PermanentMailError) as caught:
        await SmtpMailer(host="127.0.0.1", port=port, timeout=5.0).send(ready)
    assert "first line" in caught.value.reason and "second line" in caught.value.reason
    assert_fit_for_notification_failed(caught.value.reason)


async def completed_export(email: str, attempts: int) -> tuple[InMemoryEventLog, Settings, StepContext]:
    """Export exp_1 of tenant t1, requested by ``email`` and complete, in a log of its own: the notifier's
    step context for it, with ``attempts`` tries at sending."""
    e = {"export_id": "exp_1", "tenant_id": "t1"}
    log = InMemoryEventLog()
    seq = 0
    key = keys.archive_key("t1", "exp_1", "autumn", "2026-01-01")
    for event in (ev.ExportRequested(**e, user_id="u", user_email=email, username="autumn"),
                  ev.ArchiveAssembled(**e, archive_key=key, upload_id="u", size_bytes=30, part_count=1,
                                      member_count=1, error_count=0),
                  ev.FinalizeStarted(**e),
                  ev.ExportCompleted(**e, archive_key=key,
                                     size_bytes=30, sha256="abc", item_counts={"posts": 1}, error_count=0,
                                     expires_at=datetime(2030, 1, 1, tzinfo=UTC))):
        seq = await log.append(event, seq)
    settings = Settings(mail={"attempts": attempts, "retry_base_delay": 0.0})
    return log, settings, StepContext(log=log, loaded=await log.load("t1", "exp_1"), settings=settings)  # type: ignore[arg-type]


async def test_the_notifier_records_a_refusal_that_is_not_utf8_as_notification_failed(raw_server: Any) -> None:
    port = await raw_server(smtp_refusing_mail_from(b"550 \xff\r\n"))
    log, settings, ctx = await completed_export("a@example.org", attempts=2)

    await Notifier(settings, SmtpMailer(host="127.0.0.1", port=port, timeout=5.0))(ctx)  # must not raise

    state = (await log.load("t1", "exp_1")).state
    assert state.notification == "failed" and not state.email_due
    assert state.notification_reason and "550" in state.notification_reason


def http_answer(head: bytes, body: Callable[[asyncio.StreamWriter], Awaitable[None]] | None = None) -> Handler:
    """Reads the request (head and its Content-Length body), writes ``head``, then ``body(writer)``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in request.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(head)
            await writer.drain()
            if body is not None:
                await body(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


async def endless_chunks(writer: asyncio.StreamWriter) -> None:
    chunk = b"x" * 65536
    while True:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


E = TypeVar("E", bound=MailError)


async def refused(port: int, email: Email, error: type[E], api_key: str = "k") -> E:
    """The error the HTTP backend raises sending ``email`` to the server on ``port``."""
    mailer = HttpMailer(url=f"http://127.0.0.1:{port}", api_key=api_key, timeout=5.0)
    try:
        with pytest.raises(error) as caught:
            await mailer.send(email)
    finally:
        await mailer.close()
    return caught.value


async def test_an_error_body_that_never_ends_is_not_read_to_the_timeout(raw_server: Any, ready: Email) -> None:
    port = await raw_server(http_answer(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n"
                                        b"Content-Type: text/plain\r\n\r\n", endless_chunks))
    started = time.monotonic()
    caught = await refused(port, ready, TransientMailError)
    assert time.monotonic() - started < 2.5
    assert "HTTP 500" in caught.reason


async def test_a_retry_after_of_digits_float_cannot_read_is_still_a_transient_503(
    raw_server: Any, ready: Email
) -> None:
    port = await raw_server(http_answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: ²\r\n"
                                        "Content-Length: 4\r\nConnection: close\r\n\r\nbusy".encode()))
    caught = await refused(port, ready, TransientMailError)
    assert "HTTP 503" in caught.reason and caught.retry_after is None


@pytest.mark.parametrize("answer", [
    b"HELLO WORLD\r\n\r\n",  # not HTTP at all
    b"HTTP/1.1 500 x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",  # a header over aiohttp's limit
])
async def test_a_garbled_answer_never_puts_the_api_key_in_the_reason(raw_server: Any, ready: Email,
                                                                     answer: bytes) -> None:
    port = await raw_server(http_answer(answer))
    caught = await refused(port, ready, TransientMailError, api_key="zephyr-SECRET-key")
    assert "SECRET" not in caught.reason
    assert "mail service" in caught.reason


async def test_a_redirect_is_not_followed_and_is_permanent(raw_server: Any, ready: Email) -> None:
    elsewhere: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        elsewhere.append(await reader.read(65536))
        writer.close()

    other = await raw_server(record)
    port = await raw_server(http_answer(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:%d/send\r\n"
                                        b"Content-Length: 0\r\n\r\n" % other))
    caught = await refused(port, ready, PermanentMailError, api_key="zephyr-SECRET-key")
    await asyncio.sleep(0.1)
    assert elsewhere == [] and "HTTP 307" in caught.reason


@pytest.mark.parametrize("status", [b"401 Unauthorized", b"503 Service Unavailable"])
async def test_an_error_body_that_quotes_the_api_key_never_puts_it_in_the_reason(raw_server: Any, ready: Email,
                                                                                 status: bytes) -> None:
    # a mail service that echoes the key it refused (or a proxy that dumps the request) into its answer
    body = b'{"error": "invalid API key zephyr-SECRET-key", "headers": {"X-API-Key": "zephyr-SECRET-key"}}'
    port = await raw_server(http_answer(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                        b"Connection: close\r\n\r\n%s" % (status, len(body), body)))
    caught = await refused(port, ready, MailError, api_key="zephyr-SECRET-key")
    assert "SECRET" not in caught.reason, caught.reason
    assert "mail service answered HTTP" in caught.reason and "[API key]" in caught.reason


_DUMP = b"proxy error; request headers: Authorization: Basic bWFpbGVyOmh1bnRlcjJwdw== (mailer / hunter2pw)"


@pytest.mark.parametrize("answer", [None, b"HELLO WORLD\r\n\r\n",  # nothing listens; an answer that is not HTTP
                                    b"HTTP/1.1 500 x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",  # a header too big
                                    # a proxy that dumps the request's headers, basic auth and all, into its 503
                                    b"HTTP/1.1 503 x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                                    % (len(_DUMP), _DUMP)])
async def test_a_password_in_the_mail_services_url_is_never_in_the_reason(raw_server: Any, ready: Email,
                                                                          answer: bytes | None) -> None:
    # GROVE_MAIL__HTTP_URL=https://user:password@host (basic auth in front of the mail service) is a
    # valid setting; the reason named the endpoint as given, password and all
    port = await raw_server(http_answer(answer)) if answer else free_port()
    reason, shown = await _failed_send(f"http://mailer:hunter2pw@127.0.0.1:{port}", ready)
    basic = base64.b64encode(b"mailer:hunter2pw").decode()  # the Authorization header aiohttp sends for it
    assert "hunter2pw" not in reason and "hunter2pw" not in shown, reason
    assert basic not in reason, reason
    if answer is not None and answer.startswith(b"HTTP/1.1 503"):  # an answer: the reason quotes its body
        assert reason.startswith("mail service answered HTTP 503: proxy error"), reason
    else:  # the transport failed: the reason names the endpoint, its password masked
        assert f"mailer:***@127.0.0.1:{port}" in reason


async def _failed_send(url: str, ready: Email) -> tuple[str, str]:
    """The reason of the TransientMailError a send to ``url`` ends in, and the mailer's repr."""
    mailer = HttpMailer(url=url, api_key="k", timeout=5.0)
    try:
        with pytest.raises(TransientMailError) as caught:
            await mailer.send(ready)
    finally:
        await mailer.close()
    return caught.value.reason, repr(mailer)


async def test_a_password_holding_a_comma_is_never_in_the_reason(ready: Email) -> None:
    """The endpoint was masked as a comma-separated NATS list: 'mailer:hunter,2pw@' showed 'hunter'
    (review of 1e3f742). Nothing listens: the reason names the endpoint, its password masked whole."""
    port = free_port()
    reason, shown = await _failed_send(f"http://mailer:hunter,2pw@127.0.0.1:{port}", ready)
    assert "hunter" not in reason and "hunter" not in shown, reason
    assert f"mailer:***@127.0.0.1:{port}" in reason, reason


async def test_the_notifier_never_logs_the_requesters_address_a_refusal_quotes(
        start_smtp: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Seen (an erasure audit): a mail server that refused the recipient — `550 5.1.1
    <zq@example.org>: Recipient address rejected`, and aiosmtplib's refusal names the recipient too — put
    the requester's address in the notifier's log line `email for exp_… not sent: …`, which
    `erase-tenant` does not touch: the address outlived the erasure there. The log line says
    `<the requester's address>` (any case the server wrote it in); the NotificationFailed event (erased
    with the log) keeps the reason as the server gave it."""
    import logging

    address = "ZQ.Mark-A@Example.org"
    server = start_smtp()
    server.handler.rcpt_reply = f"550 5.1.1 <{address.lower()}>: Recipient address rejected"
    log, settings, ctx = await completed_export(address, attempts=1)
    caplog.set_level(logging.DEBUG)

    await Notifier(settings, SmtpMailer(host="127.0.0.1", port=server.port, timeout=5.0))(ctx)

    state = (await log.load("t1", "exp_1")).state
    assert state.notification == "failed" and state.notification_reason
    assert address.lower() in state.notification_reason.lower()  # the event's reason, as the server said it
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("services.notifier")]
    assert any("not sent" in line and "<the requester's address>" in line for line in lines), lines
    assert not any("mark-a@" in line.lower() for line in lines), lines


def smtp_auth_answering(replies: list[bytes], delivered: list[bytes]) -> Handler:
    """Offers AUTH PLAIN and answers each connection's AUTH with the next of ``replies`` (then 235);
    keeps each message it is given (``delivered``)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.test ESMTP\r\n")
        data: list[bytes] | None = None
        try:
            while line := await reader.readline():
                if data is not None:
                    if line == b".\r\n":
                        delivered.append(b"".join(data))
                        data = None
                        writer.write(b"250 queued\r\n")
                    else:
                        data.append(line)
                        continue
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-mx.test\r\n250 AUTH PLAIN\r\n")
                elif verb == b"AUTH":
                    writer.write(replies.pop(0) if replies else b"235 2.7.0 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go on\r\n")
                    data = []
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        finally:
            writer.close()

    return handle


@pytest.mark.parametrize("reply", [b"451 4.7.0 Temporary authentication failure, try again later\r\n",
                                   b"421 4.7.0 mx.test Too many logins, closing the connection\r\n",
                                   b"454 4.7.0 Too many login attempts, please try again later\r\n"])
async def test_a_4xx_answer_to_auth_is_transient_and_a_retry_delivers(raw_server: Any, ready: Email,
                                                                       reply: bytes) -> None:
    """RFC 5321: a 4yz reply is a transient failure, to AUTH as to anything (RFC 4954's 454 is one of
    them; servers answer 451 or 421 while their authentication backend is down or rate-limits logins):
    only 454 was retried, any other 4xx to AUTH was a permanent failure and the email was never sent."""
    delivered: list[bytes] = []
    port = await raw_server(smtp_auth_answering([reply], delivered))
    mailer = SmtpMailer(host="127.0.0.1", port=port, username="grove", password="pw", timeout=5.0)
    assert await send_with_retries(mailer, ready, 2, 0.0) == "smtp"
    assert len(delivered) == 1


async def test_a_5xx_answer_to_auth_is_still_permanent(raw_server: Any, ready: Email) -> None:
    delivered: list[bytes] = []
    port = await raw_server(smtp_auth_answering([b"535 5.7.8 Authentication credentials invalid\r\n"], delivered))
    mailer = SmtpMailer(host="127.0.0.1", port=port, username="grove", password="pw", timeout=5.0)
    with pytest.raises(PermanentMailError) as caught:
        await send_with_retries(mailer, ready, 2, 0.0)
    assert "535" in caught.value.reason and not delivered
