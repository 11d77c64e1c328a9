"""A run that finds the heartbeat of a run before it died counts that death, beats at once with the
count, and after ``step_deaths`` deaths in a row fails the export instead of running the step again.
On the in-memory event log and a fake bucket; no server (tests/chaos runs the real crash loop)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from nats.js.errors import NotFoundError

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.eventlog.memory import InMemoryEventLog
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext, StepWorker
from tests.unit.test_worker_keepalive import FakeMsg

KEY = "catalog.t_k.exp_k"


@dataclass
class Delivered(FakeMsg):
    """A JetStream delivery: its metadata says how many times it was delivered."""

    delivered: int = 1

    @property
    def metadata(self) -> Any:
        return SimpleNamespace(num_delivered=self.delivered, consumer="catalog")


@dataclass
class Bucket:
    """The heartbeat bucket: puts and deletes as the worker makes them, and the last value left
    under the key as a direct get returns it."""

    left: bytes | None = None
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    async def put(self, key: str, value: bytes) -> None:
        self.calls.append(("put", key, json.loads(value)))

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key, None))

    async def get_last_msg(self, stream: str, subject: str, direct: bool = False) -> Any:
        self.calls.append(("get", subject, None))
        if self.left is None:
            raise NotFoundError()
        return SimpleNamespace(data=self.left, headers={})


async def _run(delivered: int, left: dict[str, Any] | None, step_deaths: int = 5, step: ev.Step = "catalog",
               dead_end: Any = None) -> tuple[Delivered, Bucket, list[str], InMemoryEventLog]:
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_k", tenant_id="t_k", user_id="u", user_email="u@example.org",
                                   username="u")
    await log.append(requested, 0)
    bucket = Bucket(None if left is None else json.dumps(left).encode())
    bus = Bus(nc=None, js=bucket, log=log, heartbeats=bucket, admission=None)  # type: ignore[arg-type]
    ran: list[str] = []

    async def work(ctx: StepContext) -> None:
        ran.append("work")

    worker = StepWorker(step, bus, Settings(progress_interval_s=60.0, ack_wait_s=120.0, step_deaths=step_deaths), work,
                        lambda loaded: True, dead_end=dead_end)
    msg = Delivered("exports.t_k.exp_k.ExportRequested", requested.to_json(), delivered=delivered)
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.gather(*worker.running.values())
    return msg, bucket, ran, log


async def _names(log: InMemoryEventLog) -> list[str]:
    return [e.name() async for _, e in log.history("t_k", "exp_k")]


async def test_a_first_delivery_reads_no_heartbeat_and_puts_none() -> None:
    msg, bucket, ran, _ = await _run(1, {"step": "catalog", "worker": "w", "at": 1.0, "deaths": 4})
    assert ran == ["work"] and msg.calls == ["ack"]
    assert bucket.calls == []


async def test_a_redelivery_without_a_heartbeat_beats_at_once_then_deletes_it() -> None:
    msg, bucket, ran, _ = await _run(2, None)
    assert ran == ["work"] and msg.calls == ["ack"]
    assert [c[0] for c in bucket.calls] == ["get", "put", "delete"]
    assert bucket.calls[1][2]["step"] == "catalog" and "deaths" not in bucket.calls[1][2]


async def test_a_heartbeat_left_behind_is_a_death_the_next_beat_carries() -> None:
    msg, bucket, ran, log = await _run(3, {"step": "catalog", "worker": "w1", "at": 1.0, "deaths": 2})
    assert ran == ["work"] and msg.calls == ["ack"]
    assert bucket.calls[1] == ("put", KEY, bucket.calls[1][2]) and bucket.calls[1][2]["deaths"] == 3
    assert bucket.calls[-1] == ("delete", KEY, None)
    assert not any(name.startswith("ExportFailed") for name in await _names(log))


async def test_the_last_allowed_death_fails_the_export_instead_of_running_the_step() -> None:
    msg, bucket, ran, log = await _run(7, {"step": "catalog", "worker": "w1", "at": 1.0, "deaths": 4})
    assert ran == [] and msg.calls == ["ack"]
    assert await _names(log) == ["ExportRequested", "ExportFailedAtCatalog"]
    failed = [e async for _, e in log.history("t_k", "exp_k")][-1]
    assert isinstance(failed, ev.ExportFailedAtCatalog) and failed.step == "catalog"
    assert "stopped 5 times in a row" in failed.reason
    assert bucket.calls[1:] == [("delete", KEY, None)]  # the dead run's key goes; no beat for a run not made


async def test_a_step_that_is_no_gate_records_its_own_dead_end_and_the_export_goes_on() -> None:
    from services.notifier.service import dead_end

    left = {"step": "notify", "worker": "w1", "at": 1.0, "deaths": 4}
    msg, _, ran, log = await _run(6, left, step="notify", dead_end=dead_end(Settings()))
    assert ran == [] and msg.calls == ["ack"]
    assert await _names(log) == ["ExportRequested", "NotificationFailed"]
    failed = [e async for _, e in log.history("t_k", "exp_k")][-1]
    assert isinstance(failed, ev.NotificationFailed) and failed.kind == "failed" and failed.channel == "outbox"
    assert "stopped 5 times in a row" in failed.reason


async def test_the_notifier_without_a_dead_end_is_not_counted() -> None:
    msg, bucket, ran, _ = await _run(6, {"step": "notify", "worker": "w1", "at": 1.0, "deaths": 4}, step="notify")
    assert ran == ["work"] and msg.calls == ["ack"] and bucket.calls == []


async def test_a_shutdown_deletes_the_heartbeat_before_it_hands_the_message_on() -> None:
    """The nak of a shutdown redelivers at once: a replica reading the key before this run's delete
    would count a death no process died."""
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_k", tenant_id="t_k", user_id="u", user_email="u@example.org",
                                   username="u")
    await log.append(requested, 0)
    order: list[str] = []
    bucket = Bucket(None)
    bus = Bus(nc=None, js=bucket, log=log, heartbeats=bucket, admission=None)  # type: ignore[arg-type]
    started = asyncio.Event()

    async def work(ctx: StepContext) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = StepWorker("catalog", bus, Settings(progress_interval_s=60.0, ack_wait_s=120.0), work, lambda loaded: True)
    msg = Delivered("exports.t_k.exp_k.ExportRequested", requested.to_json(), calls=order, delivered=2)
    original_delete = bucket.delete

    async def delete(key: str) -> None:
        order.append("delete")
        await original_delete(key)

    bucket.delete = delete  # type: ignore[method-assign]
    await worker.handle(msg)  # type: ignore[arg-type]
    await started.wait()
    for task in list(worker.running.values()):
        task.cancel("shutting down")
    await asyncio.gather(*worker.running.values(), return_exceptions=True)
    assert order == ["delete", "nak"], order


async def test_a_death_after_the_dead_run_moved_the_log_starts_a_new_row() -> None:
    """A run killed beside another (an out-of-memory kill takes every export of the process) that
    had logged progress is no crash loop: the row starts again from this death."""
    log = InMemoryEventLog()
    requested = ev.ExportRequested(export_id="exp_k", tenant_id="t_k", user_id="u", user_email="u@example.org",
                                   username="u")
    first = await log.append(requested, 0)
    await log.append(ev.StepFailed(export_id="exp_k", tenant_id="t_k", step="catalog", attempt=1, reason="x"), first)
    left = {"step": "catalog", "worker": "w1", "at": 1.0, "deaths": 4, "since": first}  # it appended after
    bucket = Bucket(json.dumps(left).encode())
    bus = Bus(nc=None, js=bucket, log=log, heartbeats=bucket, admission=None)  # type: ignore[arg-type]
    ran: list[str] = []

    async def work(ctx: StepContext) -> None:
        ran.append("work")

    worker = StepWorker("catalog", bus, Settings(progress_interval_s=60.0, ack_wait_s=120.0, step_deaths=5), work, lambda loaded: True)
    msg = Delivered("exports.t_k.exp_k.ExportRequested", requested.to_json(), delivered=3)
    await worker.handle(msg)  # type: ignore[arg-type]
    await asyncio.gather(*worker.running.values())
    assert ran == ["work"] and not any(name.startswith("ExportFailed") for name in await _names(log))
    put = bucket.calls[1]
    assert put[0] == "put" and put[2]["deaths"] == 1 and put[2]["since"] == first + 1
