"""A message no reader may use is dropped with one log line that a publisher cannot paint: the
subject's tokens and the body's claims are a publisher's text (the gateway's user may publish on
``exports.*.*.ExportRequested``, any token), so the line shows their control and bidi characters as
escapes and stays short whatever the body holds (a 250 KB ``type`` was copied into every reader's
line, a raw U+202E reversed what followed it)."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest

from shared.core import events as ev
from shared.core.printable import has_unprintable
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker

BODY = json.loads(ev.ExportRequested(export_id="exp_1", tenant_id="t1", user_id="u", user_email="a@example.org",
                                     username="ann").to_json())
HOSTILE = "\x1b]0;pwned\x07\u202egpj.exe\n" + "x" * 200_000


class Msg:
    headers = None

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data, self.acked = subject, data, 0

    async def ack(self) -> None:
        self.acked += 1

    async def nak(self, delay: float | None = None) -> None:
        raise AssertionError("a bad event is never retried")


@pytest.mark.parametrize(("subject", "body"), [
    ("exports.t1.exp_1.ExportRequested", {**BODY, "type": HOSTILE}),          # the body's claimed type
    ("exports.t1.exp_1.ExportRequested", {**BODY, "type": {"k": HOSTILE}}),   # not even text
    ("exports.t\u202e1\x1b[2J.exp_1.ExportRequested", BODY),                 # the subject's own tokens
    ("exports.t1.exp_1.ExportRequested", {**BODY, "username": HOSTILE}),      # what the validator names
])
async def test_a_dropped_event_is_one_short_escaped_line(subject: str, body: dict, caplog: pytest.LogCaptureFixture) -> None:
    async def work(ctx: object) -> None:
        raise AssertionError("a bad event is never worked on")

    bus = SimpleNamespace(log=InMemoryEventLog())
    worker = StepWorker("catalog", bus, Settings(), work, lambda loaded: True)  # type: ignore[arg-type]
    msg = Msg(subject, json.dumps(body).encode())
    with caplog.at_level(logging.WARNING):
        await worker.handle(msg)  # type: ignore[arg-type]
    assert msg.acked == 1
    [line] = [r.getMessage() for r in caplog.records if "drops" in r.getMessage()]
    assert not has_unprintable(line), repr(line[:300])
    assert len(line) < 1000, len(line)
