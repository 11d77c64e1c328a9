"""HttpMailer against a real aiohttp server speaking the Zephyr ``POST /send`` contract."""

from __future__ import annotations

from typing import Any

import pytest

from services.notifier.mail import (
    Email,
    HttpMailer,
    MailGaveUp,
    PermanentMailError,
    TransientMailError,
    send_with_retries,
)

pytestmark = pytest.mark.timeout(30)

API_KEY = "zephyr-test-key"


class Sleeps(list[float]):
    """A fake ``asyncio.sleep`` that records the delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def mailer(zephyr: Any) -> Any:
    m = HttpMailer(url=zephyr.url + "/", api_key=API_KEY, timeout=5.0)
    yield m
    await m.close()


async def test_posts_the_spec_body_with_api_key_and_idempotency_key(
    zephyr: Any, mailer: HttpMailer, ready: Email
) -> None:
    channel = await mailer.send(ready)

    assert channel == "http"
    [call] = zephyr.calls
    assert call.body == {
        "type": "transactional",
        "template": "raw",
        "to": "wanderer@example.org",
        "subject": "Your Grove export is ready",
        "html": ready.html,
        "text": ready.text,
        "idempotencyKey": "exp_3f2a9c:ready:tenant_tom",
        "tenant": "tenant_tom",  # Zephyr's rate limits are kept per tenant
        "source": "grove-export",
        "correlationId": "exp_3f2a9c",
    }
    assert call.headers["X-API-Key"] == API_KEY
    assert call.headers["Idempotency-Key"] == "exp_3f2a9c:ready:tenant_tom"
    assert call.headers["Content-Type"].startswith("application/json")
    assert "&lt;script&gt;" in call.body["html"]


async def test_an_email_sent_again_after_a_restart_is_dropped_by_the_mail_service(
    zephyr: Any, ready: Email
) -> None:
    """A notifier that died between the send and its NotificationSent sends the email again from a new
    process: Zephyr drops the repeat by the idempotency key its contract reads, the body's
    ``idempotencyKey`` (an ``Idempotency-Key`` header alone it never reads: the person got both)."""
    for _ in range(2):  # two processes, two sessions
        mailer = HttpMailer(url=zephyr.url, api_key=API_KEY, timeout=5.0)
        try:
            assert await mailer.send(ready) == "http"
        finally:
            await mailer.close()

    assert len(zephyr.calls) == 2
    assert zephyr.deliveries == 1


async def test_503_is_retried_with_the_same_idempotency_key_then_succeeds(
    zephyr: Any, mailer: HttpMailer, ready: Email
) -> None:
    zephyr.statuses = [503]
    sleeps = Sleeps()

    channel = await send_with_retries(mailer, ready, 4, 0.5, sleeps)

    assert channel == "http"
    assert [c.headers["Idempotency-Key"] for c in zephyr.calls] == ["exp_3f2a9c:ready:tenant_tom"] * 2
    assert sleeps == [0.5]


async def test_always_503_gives_up_after_every_attempt(zephyr: Any, mailer: HttpMailer, ready: Email) -> None:
    zephyr.always = 503
    sleeps = Sleeps()

    with pytest.raises(MailGaveUp, match="gave up after 4 attempts: mail service answered HTTP 503") as info:
        await send_with_retries(mailer, ready, 4, 0.5, sleeps)

    assert len(zephyr.calls) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert isinstance(info.value.last_error, TransientMailError)


async def test_400_is_permanent_and_not_retried(zephyr: Any, mailer: HttpMailer, ready: Email) -> None:
    zephyr.always = 400
    sleeps = Sleeps()

    with pytest.raises(PermanentMailError, match="HTTP 400"):
        await send_with_retries(mailer, ready, 4, 0.5, sleeps)

    assert len(zephyr.calls) == 1
    assert sleeps == []


async def test_rejected_api_key_is_permanent(zephyr: Any, mailer: HttpMailer, ready: Email) -> None:
    zephyr.always = 401

    with pytest.raises(PermanentMailError, match="HTTP 401"):
        await mailer.send(ready)


async def test_429_waits_at_least_the_retry_after_hint(zephyr: Any, mailer: HttpMailer, ready: Email) -> None:
    zephyr.statuses = [429]
    zephyr.retry_after = "3"
    sleeps = Sleeps()

    await send_with_retries(mailer, ready, 2, 0.5, sleeps)

    assert sleeps == [3.0]
    assert len(zephyr.calls) == 2


async def test_slow_service_times_out_as_transient(zephyr: Any, ready: Email) -> None:
    zephyr.delay = 0.5
    m = HttpMailer(url=zephyr.url, api_key=API_KEY, timeout=0.1)
    try:
        with pytest.raises(TransientMailError, match="cannot reach"):
            await m.send(ready)
    finally:
        await m.close()


async def test_service_down_is_transient(unused_port: int, ready: Email) -> None:
    m = HttpMailer(url=f"http://127.0.0.1:{unused_port}", api_key=API_KEY, timeout=2.0)
    try:
        with pytest.raises(TransientMailError, match="cannot reach"):
            await m.send(ready)
    finally:
        await m.close()


async def test_close_then_send_opens_a_new_session(zephyr: Any, ready: Email) -> None:
    m = HttpMailer(url=zephyr.url, api_key=API_KEY)
    await m.send(ready)
    await m.close()

    await m.send(ready)
    await m.close()

    assert len(zephyr.calls) == 2


@pytest.mark.parametrize("to", ["josé@bücher.de", "用户@例子.广告"])
async def test_an_address_not_ascii_is_sent_as_it_is_in_the_json_to(
    zephyr: Any, mailer: HttpMailer, ready: Email, to: str
) -> None:
    """RFC 6531: the mail service gets the address in UTF-8, as the token said it (refused before: the
    notifier recorded "the recipient is not exactly one email address")."""
    from dataclasses import replace

    assert await mailer.send(replace(ready, to=to)) == "http"
    [call] = zephyr.calls
    assert call.body["to"] == to
