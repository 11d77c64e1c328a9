"""send_with_retries with a scripted fake mailer and a fake sleep: no waiting, no network."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.notifier.mail import (
    Email,
    MailError,
    MailGaveUp,
    PermanentMailError,
    TransientMailError,
    backoff_delay,
    send_with_retries,
)

EMAIL = Email(to="a@example.org", subject="s", text="t", html="<p>h</p>", idempotency_key="exp_1:ready")


@dataclass
class ScriptedMailer:
    """Raises the scripted errors in order, then succeeds (unless ``always`` is set)."""

    script: list[MailError] = field(default_factory=list)
    always: MailError | None = None
    sent: list[Email] = field(default_factory=list)

    async def send(self, email: Email) -> str:
        self.sent.append(email)
        if self.always is not None:
            raise self.always
        if self.script:
            raise self.script.pop(0)
        return "fake"

    async def close(self) -> None:
        return None


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


async def test_first_success_needs_no_sleep() -> None:
    mailer, sleeps = ScriptedMailer(), Sleeps()

    assert await send_with_retries(mailer, EMAIL, 4, 0.5, sleeps) == "fake"
    assert sleeps == [] and len(mailer.sent) == 1


async def test_transient_then_success_returns_the_channel() -> None:
    mailer = ScriptedMailer(script=[TransientMailError("busy"), TransientMailError("busy")])
    sleeps = Sleeps()

    assert await send_with_retries(mailer, EMAIL, 4, 0.5, sleeps) == "fake"
    assert len(mailer.sent) == 3
    assert sleeps == [0.5, 1.0]


async def test_always_transient_gives_up_after_n_attempts_with_a_readable_reason() -> None:
    mailer = ScriptedMailer(always=TransientMailError("connection refused"))
    sleeps = Sleeps()

    with pytest.raises(MailGaveUp) as info:
        await send_with_retries(mailer, EMAIL, 4, 0.5, sleeps)

    assert len(mailer.sent) == 4
    assert sleeps == [0.5, 1.0, 2.0]  # no sleep after the last attempt
    assert info.value.reason == "gave up after 4 attempts: connection refused"
    assert info.value.attempts == 4
    assert info.value.last_error is mailer.always
    assert info.value.__cause__ is mailer.always


async def test_permanent_error_is_raised_at_once_without_retry() -> None:
    mailer = ScriptedMailer(script=[PermanentMailError("550 no such user")])
    sleeps = Sleeps()

    with pytest.raises(PermanentMailError, match="550 no such user"):
        await send_with_retries(mailer, EMAIL, 4, 0.5, sleeps)

    assert len(mailer.sent) == 1 and sleeps == []


async def test_permanent_after_transient_stops_retrying() -> None:
    mailer = ScriptedMailer(script=[TransientMailError("busy"), PermanentMailError("bad key")])
    sleeps = Sleeps()

    with pytest.raises(PermanentMailError):
        await send_with_retries(mailer, EMAIL, 5, 0.5, sleeps)

    assert len(mailer.sent) == 2 and sleeps == [0.5]


async def test_one_attempt_means_no_retry() -> None:
    mailer = ScriptedMailer(always=TransientMailError("busy"))

    with pytest.raises(MailGaveUp, match="gave up after 1 attempt: busy"):
        await send_with_retries(mailer, EMAIL, 1, 0.5, Sleeps())
    assert len(mailer.sent) == 1


async def test_delays_are_capped() -> None:
    mailer = ScriptedMailer(always=TransientMailError("busy"))
    sleeps = Sleeps()

    with pytest.raises(MailGaveUp):
        await send_with_retries(mailer, EMAIL, 6, 1.0, sleeps, max_delay=5.0)
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_retry_after_hint_lengthens_the_delay_up_to_the_cap() -> None:
    mailer = ScriptedMailer(
        script=[TransientMailError("429", retry_after=7.0), TransientMailError("429", retry_after=99.0)]
    )
    sleeps = Sleeps()

    await send_with_retries(mailer, EMAIL, 3, 0.5, sleeps, max_delay=30.0)
    assert sleeps == [7.0, 30.0]


async def test_every_error_a_caller_sees_is_a_mail_error_with_a_reason() -> None:
    for mailer in (
        ScriptedMailer(always=TransientMailError("t")),
        ScriptedMailer(always=PermanentMailError("p")),
    ):
        with pytest.raises(MailError) as info:
            await send_with_retries(mailer, EMAIL, 2, 0.0, Sleeps())
        assert info.value.reason


@pytest.mark.parametrize(
    ("retry", "hint", "expected"),
    [(0, None, 0.5), (1, None, 1.0), (3, None, 4.0), (10, None, 30.0), (0, 2.0, 2.0),
     (3, 1.0, 4.0), (1, 0.0, 1.0)],  # a hint shorter than the backoff never shortens it
)
def test_backoff_delay(retry: int, hint: float | None, expected: float) -> None:
    assert backoff_delay(retry, 0.5, 30.0, hint) == expected
