"""The pass over exports that are not over: is each still moving? A cancel nobody finishes is recorded
cancelled, a step whose worker died is recorded failed; the rule is ``decide.verdict``, and this module
reads what it asks for — the time of the export's last event that moved it (:func:`last_moved`), its
step's heartbeat (:func:`heartbeat`) — and records the verdict.
"""

from __future__ import annotations

from datetime import datetime

from services.janitor.decide import Verdict, verdict
from services.janitor.job import Job
from services.janitor.summary import Summary, log
from shared.bus.answers import stored_answer
from shared.bus.beats import beating
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core.lifecycle import ExportState, apply, moved
from shared.eventlog.jetstream import Loaded
from shared.runtime import faults
from shared.runtime.settings import Settings

DEAD = "The export stopped making progress (its worker's heartbeat expired). Please start a new export."


async def check_alive(job: Job, loaded: Loaded, now: datetime, summary: Summary) -> None:
    """Record the verdict on one export that is not over (``decide.verdict``), if there is one."""
    s, settings = loaded.state, job.settings
    last_at = await last_moved(job.bus, settings, s.tenant_id, s.export_id)
    last_event = s.last_event or ""  # the last event this version knows (an unknown one decides nothing)

    def judged(alive: bool | None) -> Verdict | None:
        return verdict(s, last_event, last_at, alive, settings.heartbeat_ttl_s, now,
                       retry_base_delay_s=settings.retry_base_delay_s, max_attempts=settings.step_attempts)

    if judged(False) is None:  # a beat only spares: not asked of an export nothing would happen to
        return
    decided = judged(await heartbeat(job.bus, settings, s.tenant_id, s.export_id, s.step))
    if decided == "cancel":
        if job.dry_run or await job.append(loaded, ev.ExportCancelled(
                export_id=s.export_id, tenant_id=s.tenant_id, aborted_upload=False)):
            summary.cancelled += 1
            summary.actions.append(f"complete the cancel of {s.export_id} (nobody finished it)")
    elif decided == "fail":
        await faults.slow("janitor.judged")  # tests: hold a run that judged an export dead before it fails it
        if job.dry_run or await job.append(loaded, ev.export_failed(
                "janitor", export_id=s.export_id, tenant_id=s.tenant_id, reason=DEAD)):
            summary.failed += 1
            summary.actions.append(f"fail {s.export_id} (no heartbeat since {last_at:%Y-%m-%d %H:%M:%S})")


async def last_moved(bus: Bus, settings: Settings, tenant_id: str, export_id: str) -> datetime | None:
    """Server time of the export's last event that moved it (``lifecycle.moved``). Not merely its
    last stored message: a body no reader takes (garbage on a subject some user may publish, a copy
    the server stored as its answer to someone's request), or an event the fold ignores (a second
    ExportRequested, a NotificationSent on a running export), would otherwise keep a dead export
    alive for as long as somebody kept sending them. A newer version's event type counts, when its body
    reads as this export's event (`events.envelope_agrees`): a PubAck aimed at such a subject is none."""
    stream, prefix = settings.stream_name, settings.subject_prefix
    msg = await bus.js.get_last_msg(stream, ev.export_filter(prefix, tenant_id, export_id), direct=True)
    if not stored_answer(msg.headers):
        try:
            ev.decode(prefix, msg.subject or "", msg.data or b"")
        except ev.UnknownEvent:
            if ev.envelope_agrees(prefix, msg.subject or "", msg.data or b""):
                return msg.time  # a newer version's event: activity all the same
            # else a PubAck (or another export's event) the server stored there as an answer: none
        except ev.BadEvent:
            pass
    last, state = None, ExportState()
    async for seq, event in bus.log.history(tenant_id, export_id):
        after = apply(state, event)
        if moved(state, after):
            last = seq
        state = after
    if last is None:
        return None
    if msg.seq == last:  # the last message is that event: its time is at hand
        return msg.time
    return (await bus.js.get_msg(stream, seq=last, direct=True)).time


async def heartbeat(bus: Bus, settings: Settings, tenant_id: str, export_id: str, step: str | None) -> bool | None:
    """True: a worker of the step the log says runs beats; False: no heartbeat key of that step
    (expired, deleted, or no step runs); None: the read failed (a KV hiccup), which says nothing
    about the worker. Another step's key — written by a service the step is not — counts for
    nothing."""
    if step is None:
        return False
    try:
        return await beating(bus, settings, step, tenant_id, export_id)
    except Exception as e:
        log.warning("janitor: heartbeat of %s unreadable (%r); leaving it for the next run", export_id, e,
                    extra={"export_id": export_id, "tenant_id": tenant_id})
        return None
