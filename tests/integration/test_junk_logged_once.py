"""A message every reader drops is said once, not at every read of its export.

Any service user can have the server store a body on any export's subjects (a PubAck aimed there as
a reply subject: thousands take a fraction of a second to send), and each is dropped by every reader
of that export. Every read of the export (a step's load, each fenced append's re-read, the gateway's
history, the assembler's re-read on each CancelRequested it hears as a core message) logged a line
for each such message again: K of them on an export cost K lines per read, and K aimed at a running
assembly's CancelRequested — each one a core wake-up and a read — K²/2 lines. A message at a stream
sequence never changes, so each is said once per process (and still counted at every drop)."""

from __future__ import annotations

import logging

import pytest

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.runtime.settings import Settings

JUNK = 50


async def test_a_message_every_reader_drops_is_logged_once_whatever_the_reads(
        bus: Bus, settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    p = settings.subject_prefix
    seq = await bus.log.append(ev.ExportRequested(export_id="exp_j", tenant_id="t_j", user_id="u",
                                                  user_email="j@example.org", username="j"), 0)
    for i in range(JUNK):  # what a PubAck aimed at the subject stores: no event
        await bus.js.publish(f"{p}.t_j.exp_j.CancelRequested", b'{"stream": "X", "seq": %d}' % i)
    caplog.set_level(logging.WARNING, logger="shared.eventlog.jetstream")
    for _ in range(3):
        loaded = await bus.log.load("t_j", "exp_j")
        assert loaded.state.status == "pending" and loaded.last_seq == seq + JUNK
    assert [e.name() async for _, e in bus.log.history("t_j", "exp_j")] == ["ExportRequested"]
    lines = [r for r in caplog.records if "drops" in r.getMessage()]
    assert len(lines) == JUNK, f"{len(lines)} lines for {JUNK} dropped messages read 4 times"
    # a message stored after them is said when first read
    await bus.js.publish(f"{p}.t_j.exp_j.CancelRequested", b"junk")
    await bus.log.load("t_j", "exp_j")
    await bus.log.load("t_j", "exp_j")
    assert len([r for r in caplog.records if "drops" in r.getMessage()]) == JUNK + 1


async def test_more_junk_on_one_export_than_the_reader_keeps_is_still_said_once(
        bus: Bus, settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """What is kept is bounded (SAID_KEPT): kept per message, first in first out, more junk on one
    export than it held (33,768 against 32,768, found by the review of the day; here 20 against 8)
    had every read say every one of them again. Kept per export, one export's junk is said once
    however much of it there is."""
    from shared.eventlog import jetstream

    monkeypatch.setattr(jetstream, "SAID_KEPT", 8)
    monkeypatch.setattr(jetstream, "_said", {})  # nothing kept from the tests before
    p = settings.subject_prefix
    await bus.log.append(ev.ExportRequested(export_id="exp_m", tenant_id="t_m", user_id="u",
                                            user_email="m@example.org", username="m"), 0)
    for i in range(20):
        await bus.js.publish(f"{p}.t_m.exp_m.CancelRequested", b'{"stream": "X", "seq": %d}' % i)
    caplog.set_level(logging.WARNING, logger="shared.eventlog.jetstream")
    for _ in range(3):
        assert (await bus.log.load("t_m", "exp_m")).state.status == "pending"
    lines = [r for r in caplog.records if "drops" in r.getMessage()]
    assert len(lines) == 20, f"{len(lines)} lines for 20 dropped messages read 3 times"
