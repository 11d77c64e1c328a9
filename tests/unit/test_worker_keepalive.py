"""Keep-alive costs nothing for a step shorter than one progress interval, and beats for a longer one:
the first in-progress ack and heartbeat come one interval after the start, and the heartbeat key is
deleted at the end only when one was put. On the in-memory event log; no server."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepWorker
from tests.support.wait import until


@dataclass
class FakeMsg:
    subject: str
    data: bytes
    calls: list[str] = field(default_factory=list)
    headers: dict[str, str] | None = None

    async def ack(self) -> None:
        self.calls.append("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.calls.append("nak")

    async def in_progress(self) -> None:
        self.calls.append("in_progress")


@dataclass
class Beats:
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def put(self, key: str, value: bytes) -> None:
        self.calls.append(("put", key))

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))


async def _worker(interval: float, work: Any, step: ev.Step = "catalog",
                  **settings: Any) -> tuple[StepWorker, FakeMsg, Beats]:
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_k", tenant_id="t_k", user_id="u", user_email="u@example.org",
                                   username="u")
    await log.append(requested, 0)
    beats = Beats()
    bus = Bus(nc=None, js=None, log=log, heartbeats=beats, admission=None)  # type: ignore[arg-type]
    worker = StepWorker(step, bus, Settings(progress_interval_s=interval, ack_wait_s=max(4.0, 2 * interval), **settings), work, lambda loaded: True)
    return worker, FakeMsg("exports.t_k.exp_k.ExportRequested", requested.to_json()), beats


async def test_a_step_done_within_one_interval_sends_no_in_progress_and_no_heartbeat() -> None:
    async def work(ctx: StepContext) -> None:
        await asyncio.sleep(0)

    worker, msg, beats = await _worker(60.0, work)
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.gather(*worker.running.values())
    assert msg.calls == ["ack"]
    assert beats.calls == []  # nothing put, so nothing to delete


async def test_a_longer_step_beats_every_interval_and_deletes_its_key() -> None:
    release = asyncio.Event()

    async def work(ctx: StepContext) -> None:
        await release.wait()

    worker, msg, beats = await _worker(0.05, work)
    await worker.handle(msg)  # type: ignore[arg-type]
    async def beaten_twice() -> bool:
        return msg.calls.count("in_progress") >= 2

    await until(beaten_twice, 5, 0.01, "two in-progress acks")
    release.set()
    await asyncio.gather(*worker.running.values())
    assert msg.calls[-1] == "ack" and ("put", "catalog.t_k.exp_k") in beats.calls
    assert beats.calls[-1] == ("delete", "catalog.t_k.exp_k")
