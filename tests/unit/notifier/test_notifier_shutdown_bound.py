"""A shutdown waits for the email in flight at most SHUTDOWN_WAIT_S (inside the deploy files' 30 s
grace): SMTP's timeout is per command, so a slow relay's send could outlast the grace and be cut by
SIGKILL anyway. A send that ends within the wait is logged; one that does not is cut off. The
whole-stack case (a real SMTP server, SIGTERM) is tests/integration/mail/test_notifier_shutdown.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.notifier import service
from services.notifier.mail import Email
from services.notifier.service import Notifier
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext
from tests.unit.notifier.test_notifier_records_every_outcome import completed_export


class SlowMailer:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = asyncio.Event()
        self.finished = False

    async def send(self, email: Email) -> str:
        self.started.set()
        await asyncio.sleep(self.seconds)
        self.finished = True
        return "smtp"

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(("send_s", "logged"), [(0.2, True), (30.0, False)], ids=["ends within", "cut off"])
async def test_a_shutdown_waits_for_the_send_in_flight_at_most_the_bound(
        monkeypatch: pytest.MonkeyPatch, send_s: float, logged: bool) -> None:
    monkeypatch.setattr(service, "SHUTDOWN_WAIT_S", 1.0, raising=False)
    log = await completed_export()
    settings = Settings(mail={"attempts": 1, "retry_base_delay": 0.0})
    ctx = StepContext(log=log, loaded=await log.load("t1", "exp_1"), settings=settings)  # type: ignore[arg-type]
    mailer = SlowMailer(send_s)
    run = asyncio.create_task(Notifier(settings, mailer)(ctx))
    await asyncio.wait_for(mailer.started.wait(), 5)
    began = time.monotonic()
    run.cancel("shutting down")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 5)
    took = time.monotonic() - began
    state = (await log.load("t1", "exp_1")).state
    assert (mailer.finished, state.notification == "sent") == (logged, logged)
    assert took < 1.5 and (logged or took >= 1.0), took  # cut off at the bound, not at once, not later
