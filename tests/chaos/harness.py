"""One chaos scenario: a stack of real processes, an export, crashes, and the checks afterwards."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.archivetools.reference import assemble_to_file
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus, connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import export_prefix
from shared.core.lifecycle import ExportState
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.chaos.conftest import Tally
from tests.support.env import build, settings_for
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

MIN_PART = 256 * 1024
Action = Callable[[Stack, Bus, str, str], Awaitable[int]]


@dataclass
class Outcome:
    state: ExportState
    events: list[ev.Event]
    kills: int
    reuploaded: int


def chaos_values(tmp: Path, nats_url: str, **extra: Any) -> dict[str, Any]:
    base = {"ack_wait_s": 2.0, "progress_interval_s": 0.5, "min_part_size": MIN_PART, "heartbeat_ttl_s": 60.0}
    return settings_for(tmp, nats_url, **{**base, **extra})


async def run_scenario(tmp: Path, nats_url: str, tally: Tally, *, faults: str = "", action: Action | None = None,
                       replicas: dict[str, int] | None = None, slow: str = "assemble.upload:0.12",
                       values: dict[str, Any] | None = None, images: int = 12) -> Outcome:
    values = values or chaos_values(tmp, nats_url)
    fault_dir = tmp / "faults"
    fault_dir.mkdir(parents=True, exist_ok=True)
    env = {"GROVE_FAULTS": faults, "GROVE_FAULTS_DIR": str(fault_dir), "GROVE_FAULTS_SLOW": slow}
    settings = build(values)
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "chaos", ensure=True)
    stack = start_stack(tmp / "stack", values, replicas=replicas, extra_env=env)
    tally.exports += 1
    content = content_source(settings)
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=20, pages=3, images=images)
        export_id = await request_export(bus, seeded.tenant_id)
        kills = await action(stack, bus, seeded.tenant_id, export_id) if action else 0
        state = await wait_status(bus, seeded.tenant_id, export_id, {"complete", "failed", "cancelled"}, 180)
        assert state.status == "complete", f"{state.status}: {state.failure}\n{logs_of(stack)}"
        state = await wait_notified(bus, seeded.tenant_id, export_id)
        kills += len(list(fault_dir.glob("*.fired")))
        tally.kills += kills
        events = [e async for _, e in bus.log.history(seeded.tenant_id, export_id)]
        uploaded = sum(int(x) for f in fault_dir.glob("uploaded.count") for x in f.read_text().split())
        outcome = Outcome(state, events, kills, max(0, uploaded - state.completed.size_bytes))  # type: ignore[union-attr]
        tally.reuploaded += outcome.reuploaded
        await check(settings, store, outcome, tmp, tally)
        assert_one_email(settings, outcome)
        tally.complete += 1
        return outcome
    finally:
        stack.stop()
        await content.close()
        await bus.close()
        await store.close()


async def wait_notified(bus: Bus, tenant: str, export_id: str, timeout: float = 60.0) -> ExportState:
    """The export's email outcome, with a deadline: a lost email fails the scenario."""

    async def notified() -> ExportState | None:
        state = (await bus.log.load(tenant, export_id)).state
        return state if state.notification is not None else None

    return await until(notified, timeout, 0.1, f"the email of {export_id} to be recorded")


def assert_one_email(settings: Settings, o: Outcome) -> None:
    """Exactly one ready email reached the outbox, and the log records one NotificationSent."""
    assert o.state.notification == "sent", o.state.notification_reason
    names = [e.name() for e in o.events]
    assert names.count("NotificationSent") == 1, names
    mails = sorted(p.name for p in Path(settings.mail.outbox_dir).glob(f"{o.state.export_id}*.eml"))
    assert mails == [f"{o.state.export_id}.ready.{o.state.tenant_id}.eml"], mails


async def check(settings: Settings, store: ObjectStore, o: Outcome, tmp: Path, tally: Tally) -> None:
    s = o.state
    assert s.completed and s.cataloged
    bucket = settings.buckets.exports
    archive = await store.read(bucket, s.completed.archive_key)
    reference = tmp / "reference.zip"
    size, sha = await assemble_to_file(store, bucket, s.cataloged.snapshot_key, reference)
    if archive != reference.read_bytes() or sha != s.completed.sha256:
        tally.corrupt += 1
        raise AssertionError(f"archive differs from `grove-export assemble` of its snapshot ({len(archive)} vs {size})")
    for part in s.parts[:-1]:
        assert part.byte_end - part.byte_start >= settings.min_part_size, f"part {part.number} is too small"
    assert [p.number for p in s.parts] == list(range(1, len(s.parts) + 1))
    assert all(a.byte_end == b.byte_start for a, b in zip(s.parts, s.parts[1:], strict=False))
    assert s.parts[-1].byte_end == s.completed.size_bytes
    open_uploads = await store.list_uploads(bucket, export_prefix(s.tenant_id, s.export_id))
    if open_uploads:
        tally.orphans += len(open_uploads)
        raise AssertionError(f"uploads left open: {open_uploads}")
    assert_one_history(o.events)


def assert_one_history(events: list[ev.Event]) -> None:
    """The log folds to one consistent history: each milestone once, in order, nothing after the end."""
    names = [e.name() for e in events]
    assert names[0] == "ExportRequested"
    for once in ("ExportRequested", "CatalogStarted", "ExportCataloged", "UploadStarted", "ArchiveAssembled",
                 "FinalizeStarted", "ExportCompleted"):
        assert names.count(once) == 1, f"{once} appears {names.count(once)} times: {names}"
    order = [names.index(n) for n in ("ExportRequested", "CatalogStarted", "ExportCataloged", "UploadStarted",
                                      "ArchiveAssembled", "FinalizeStarted", "ExportCompleted")]
    assert order == sorted(order), names
    assert names.count("NotificationSent") <= 1
    after = names[names.index("ExportCompleted") + 1:]
    assert set(after) <= {"NotificationSent", "NotificationFailed"}, after


def random_kill(seed: int, services: tuple[str, ...] = ("catalog", "assembler", "finalizer", "notifier"),
                kills: int = 2, landed: list[str] | None = None) -> Action:
    """SIGKILL random services at random moments (seeded; the seed is printed). ``landed`` collects,
    per kill, the export's status read back right after it: not terminal means the kill hit mid-export."""
    rng = random.Random(seed)
    print(f"\nchaos seed {seed}")

    async def act(stack: Stack, bus: Bus, tenant: str, export_id: str) -> int:
        done = 0
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.1, 1.5))
            victim = rng.choice(services)
            stack.kill(victim, signal.SIGKILL)
            done += 1
            if landed is not None:
                status = (await bus.log.load(tenant, export_id)).state.status
                landed.append(f"{victim}@{status}")
        return done

    return act
