"""How every step service handles a message: decide from the fold, act, append fenced, then ack.

* Capacity: a handler starts the work as a task and returns only when a slot is free again, so
  a replica fetches a new message only when it can start it (no message waits in a local queue
  while its AckWait runs out).
* Fairness: one tenant holds at most ``tenant_concurrency`` of a replica's slots; a message of a
  tenant already at that bound is nak'd with a short delay (not an attempt), so one tenant's huge
  export — or a publisher that bypasses admission with many — cannot take every slot.
* Keep-alive: while a step runs, the message gets in-progress acks and the export's heartbeat
  key is refreshed every ``progress_interval_s``, the first time one interval after the start
  (a step done sooner sends neither; its heartbeat key is deleted only if it was put).
* Stalls: the steps that build an archive (``STALL_WATCHED``) beat only while they move. One
  that neither appended an event nor marked progress (``StepContext.progress``) for
  ``stall_after_s`` is stopped and counted as a failed attempt (its ``…AttemptFailed``, then
  its ``ExportFailedAt…`` once attempts run out) — a step that hangs in a live process (a deadlock, a
  call that never returns) is retried and then reported, not kept alive by its own heartbeat
  forever. The notifier and the canceller are not watched: each of their calls has its own
  timeouts, and their failures follow their own rules (an email's failure is recorded by the
  notifier; a cancel always ends cancelled).
* Trust the subject: a trigger whose body names another tenant, export or type than its subject
  (or whose type or shape this version does not know) is acked and dropped with a log line and
  a count — never retried. The work itself reads the export named by the subject from the log.
* Retries are counted in the log: a failed attempt appends the step's own failure type
  (``CatalogAttemptFailed``, ``AssembleAttemptFailed``…; only its step's NATS user may) and naks with a
  growing delay; the last allowed failure appends the step's own ``ExportFailed`` type
  (``ExportFailedAtCatalog``…; only its step's NATS user may). SIGTERM (task cancelled)
  naks at once and counts nothing; a kill is no failed attempt either (redelivery after AckWait;
  the next run resumes).
* Deaths are counted in the heartbeat: a run of a watched step that ends on its own deletes its
  heartbeat key, so a redelivered run that finds one knows the run before it died with its
  process (killed, out of memory, crashed). It beats at once, carrying the count on; after
  ``step_deaths`` such runs in a row the export fails (``retry.after_deaths``) instead of being
  run, and killed, for ever. A step that is no gate gives its own ``dead_end`` event instead (the
  notifier: ``NotificationFailed`` — an email whose sender dies after each send must not be sent
  for ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from shared.bus.beats import last_beat
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core.keys import heartbeat_key
from shared.core.reasons import is_permanent, public_reason
from shared.core.retry import Drop, GiveUp, Retry, after_deaths, after_failure, deaths_before, needs_the_step
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import WORKER_ID, Conflict, Loaded, LogUnavailable, reject
from shared.ports import SYSTEM_CLOCK, Clock, EventLogPort
from shared.runtime import faults, metrics, tracing
from shared.runtime.settings import Settings

log = logging.getLogger(__name__)


class StepError(Exception):
    """A handled failure with a reason a person can read; the step is retried."""


class Stopped(Exception):
    """Raised by ``StepContext.progress`` once the step's work has ended — cancelled (the export's
    cancel, a shutdown), stopped for a stall, or failed: a thread still working for it (a render
    that ``asyncio.to_thread`` cannot interrupt) stops at its next mark instead of running on
    beside the retry."""


class Stalled(Stopped):
    """:class:`Stopped`, because the step was stopped for making no progress."""


# The steps whose work is long and marks progress; see the module docstring for the others.
STALL_WATCHED = frozenset({"catalog", "assemble", "finalize"})


class StandDown(Exception):
    """Another worker owns this export now (a fenced append lost): stop without acking."""


@dataclass
class StepContext:
    """What a step's work gets: the export's fold and a fenced appender that tracks the sequence."""

    log: EventLogPort
    loaded: Loaded
    settings: Settings
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    clock: Clock = SYSTEM_CLOCK
    progressed_at: float = field(default_factory=time.monotonic)
    working: bool = True  # the step's work runs (the stall check applies only then)
    stalled: bool = False  # set by the keep-alive when it stops this step for making no progress

    @property
    def state(self):
        return self.loaded.state

    def progress(self) -> None:
        """The step moved (a source read, a post rendered, a stage done): keep it alive. Safe from
        any thread; raises :class:`Stopped` (:class:`Stalled` for a stall) once the step's work
        ended, so its threads stop too."""
        if self.stalled:
            raise Stalled("the step was stopped for making no progress")
        if not self.working:
            raise Stopped("the step's work ended (cancelled, shut down or failed)")
        self.progressed_at = time.monotonic()

    async def append(self, event: ev.Event, msg_id: str | None = None) -> int:
        """Append after the fold this step decided from (or after messages logged since that moved
        nothing: :func:`shared.eventlog.fence.append_folded`); Conflict when the log moved."""
        self.loaded = await append_folded(self.log, event, self.loaded, msg_id)
        self.progressed_at = time.monotonic()  # an append is progress (and never raises Stalled)
        return self.loaded.last_seq

    async def reload(self) -> Loaded:
        """Re-read the log and decide from it from now on: later appends are fenced at what it read.
        Only for a step that asks its rule again (``should_run``) before it appends; to look, :meth:`peek`."""
        self.loaded = await self.peek()
        return self.loaded

    async def peek(self) -> Loaded:
        """The log now, without moving the fence: later appends stay fenced at what this step decided
        from. A writer that lost the fence and only looks to say why (stand down, or stopped) must not
        reload — its next append would pass the fence at a sequence nobody decided from: a replica
        frozen while another completed the export opened a new upload and logged it after
        ExportCompleted."""
        s = self.loaded.state
        return await self.log.load(s.tenant_id, s.export_id)

    async def peek_at_leader(self) -> Loaded:
        """:meth:`peek`, as the stream's leader holds the log: for a look that decides to delete objects.
        On a stream of several replicas any of them answers :meth:`peek`'s direct gets from its own copy,
        and one still catching up may miss the export's newest events or all of them (a catalog run then
        deleted the logged snapshot). With one replica that server is the leader: the same read as peek."""
        s = self.loaded.state
        if self.settings.stream_replicas == 1:
            return await self.log.load(s.tenant_id, s.export_id)
        return await self.log.load(s.tenant_id, s.export_id, at_leader=True)


Work = Callable[[StepContext], Awaitable[None]]


def is_due(loaded: Loaded, should_run: Callable[[Loaded], bool]) -> bool:
    """A step runs only for an export the log knows, and only when its own rule says so."""
    return loaded.state.exists and should_run(loaded)


def parse_subject(subject: str) -> tuple[str, str, str]:
    """``exports.<tenant>.<export>.<Event>`` → (tenant, export, event name)."""
    parts = subject.split(".")
    if len(parts) != 4:
        raise ValueError(f"not an export subject: {subject}")
    return parts[1], parts[2], parts[3]


class StepWorker:
    """Runs one step (catalog, assemble, finalize, notify, cancel) for messages of a durable consumer."""

    def __init__(self, step: ev.Step, bus: Bus, settings: Settings, work: Work,
                 should_run: Callable[[Loaded], bool],
                 on_failed: Callable[[Loaded], Awaitable[None]] | None = None,
                 dead_end: Callable[[Loaded, str], ev.Event] | None = None) -> None:
        self.on_failed = on_failed
        # What a step that is no gate records once its runs kept dying (the notifier: its email
        # failed, the export stays as it is); the watched steps fail the export instead.
        self.dead_end = dead_end
        self.step = step
        self.bus = bus
        self.settings = settings
        self.work = work
        self.should_run = should_run
        self.capacity = asyncio.Semaphore(settings.concurrency)  # >= 1: Settings checks it
        self.running: dict[str, asyncio.Task[None]] = {}
        self.tenants: dict[str, str] = {}  # running key → tenant id of what runs here
        self.contexts: dict[str, StepContext] = {}

    async def handle(self, msg: Msg) -> None:
        """Entry point from the subscriber: start the work, return when there is room for more."""
        try:
            event = ev.decode(self.bus.log.prefix, msg.subject, msg.data)
        except ev.BadEvent as e:
            reject(self.step, msg.subject, e)
            with contextlib.suppress(Exception):
                await msg.ack()
            return
        tenant_id, export_id = event.tenant_id, event.export_id
        key = running_key(tenant_id, export_id)
        if key in self.running:
            return  # a redelivery of what this process is already doing; the running task acks
        if sum(t == tenant_id for t in self.tenants.values()) >= self.settings.tenant_concurrency:
            metrics.STEP_RUNS.labels(self.step, "tenant_bound").inc()
            await msg.nak(delay=self.settings.tenant_backoff_s)  # this tenant has its share here: later
            return
        await self.capacity.acquire()
        task = asyncio.create_task(self._run(msg, tenant_id, export_id), name=f"{self.step}:{export_id}")
        self.running[key] = task
        self.tenants[key] = tenant_id

        def done(_: asyncio.Task[None]) -> None:
            self.running.pop(key, None)
            self.tenants.pop(key, None)
            self.capacity.release()

        task.add_done_callback(done)
        async with self.capacity:  # wait for a free slot before fetching the next message
            pass

    def cancel_export(self, tenant_id: str, export_id: str) -> bool:
        """Stop this export's task now (cancellation); True if one was running."""
        key = running_key(tenant_id, export_id)
        ctx = self.contexts.get(key)
        task = self.running.get(key)
        if ctx:
            ctx.cancelled.set()
        if task:
            task.cancel("export cancelled")
            return True
        return False

    async def _run(self, msg: Msg, tenant_id: str, export_id: str) -> None:
        beating: list[bool] = []
        carry: dict[str, int] = {}  # what each beat of this run says: since (the log's sequence it started at), deaths
        keepalive = asyncio.create_task(self._keepalive(msg, tenant_id, export_id, beating, carry))
        needed = False  # until the run has read the log: a failure before that is said as one
        try:
            loaded = await self.bus.log.load(tenant_id, export_id)
            carry["since"] = loaded.last_seq
            if not is_due(loaded, self.should_run):
                await msg.ack()
                return
            if (self.step in STALL_WATCHED or self.dead_end is not None) and _redelivered(msg):
                deaths = await self._deaths(tenant_id, export_id, loaded.last_seq)
                if deaths:
                    carry["deaths"] = deaths
                give_up = after_deaths(loaded.state, self.step, deaths, self.settings.step_deaths)
                beating[:] = [True]  # the dead run's key is deleted at the end, whatever happens now
                if give_up is not None:
                    log.warning("%s %s: its runs died %d times in a row; giving up", self.step, export_id,
                                deaths, extra=_ids(tenant_id, export_id, self.step))
                    if self.dead_end is not None:
                        await append_folded(self.bus.log, self.dead_end(loaded, give_up.reason), loaded)
                        await msg.ack()
                    else:
                        await self._give_up(msg, loaded, give_up.reason)
                    return
                await self._beat(tenant_id, export_id, carry)  # at once: so a run dying before its first beat counts
            needed = needs_the_step(loaded.state, still_due=True)  # a failure from here on counts, unless the export ends
            ctx = StepContext(self.bus.log, loaded, self.settings)
            self.contexts[running_key(tenant_id, export_id)] = ctx
            with tracing.step_span(self.step, _durable(msg), msg.subject, msg.headers, tenant_id, export_id,
                                   loaded.state.attempts_of(self.step) + 1):
                log.info("%s %s: started", self.step, export_id, extra=_ids(tenant_id, export_id, self.step))
                try:
                    await self.work(ctx)
                finally:
                    ctx.working = False  # done or failed: what follows (ack, _failed) is not watched
                log.info("%s %s: done", self.step, export_id, extra=_ids(tenant_id, export_id, self.step))
                faults.point(f"{self.step}.before_ack")
                await msg.ack()
            metrics.STEP_RUNS.labels(self.step, "ok").inc()
            if ctx.state.terminal and not loaded.state.terminal:  # this run finished it: counted once, not
                metrics.EXPORTS_FINISHED.labels(ctx.state.status).inc()  # again by its email (or a resend)
        except asyncio.CancelledError:
            await self._unbeat(keepalive, beating, tenant_id, export_id)  # before a nak hands the message on
            ctx_ = self.contexts.get(running_key(tenant_id, export_id))
            if ctx_ is not None and ctx_.stalled and not ctx_.cancelled.is_set():
                task = asyncio.current_task()
                if task is not None and task.uncancel() == 0:  # our own cancel, not a shutdown's too
                    metrics.STEP_RUNS.labels(self.step, "stalled").inc()
                    await self._failed(msg, tenant_id, export_id, StepError(
                        f"the {self.step} step made no progress for {self.settings.stall_after_s:g} s"))
                    return
            with contextlib.suppress(Exception):
                if ctx_ is not None and ctx_.cancelled.is_set():
                    await msg.ack()  # cancelled export: the canceller owns the rest
                else:
                    await msg.nak()  # shutdown: not an attempt, let another replica take it now
            raise
        except StandDown as e:
            metrics.STEP_RUNS.labels(self.step, "stood_down").inc()
            log.info("%s %s: standing down: %s", self.step, export_id, e, extra=_ids(tenant_id, export_id, self.step))
        except Conflict:
            await self._unbeat(keepalive, beating, tenant_id, export_id)
            log.info("%s %s: the log moved under this run; re-deciding from it", self.step, export_id,
                     extra=_ids(tenant_id, export_id, self.step))
            await msg.nak(delay=0.5)  # the log moved under us: re-decide from the new fold
        except (LogUnavailable, nats.errors.TimeoutError, nats.js.errors.NoStreamResponseError) as e:
            # the bus did not answer (a leader election, a restart): like a crash, not an attempt
            await self._unbeat(keepalive, beating, tenant_id, export_id)
            log.warning("%s %s: the event log did not answer (%s); retrying", self.step, export_id,
                        type(e).__name__, extra=_ids(tenant_id, export_id, self.step))
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.settings.retry_base_delay_s)
        except Exception as e:
            await self._unbeat(keepalive, beating, tenant_id, export_id)
            await self._failed(msg, tenant_id, export_id, e, needed)
        finally:
            self.contexts.pop(running_key(tenant_id, export_id), None)
            await self._unbeat(keepalive, beating, tenant_id, export_id)

    async def _unbeat(self, keepalive: asyncio.Task[None], beating: list[bool], tenant_id: str,
                      export_id: str) -> None:
        """No more beats, and the key deleted if one may exist — before the message is handed on:
        a nak (a shutdown's at once) redelivers it, and a run reading the key before this delete
        would count a death no process died."""
        keepalive.cancel()
        if beating:  # no beat was put: nothing to delete (and no request to make)
            beating.clear()
            with contextlib.suppress(Exception):
                await self.bus.heartbeats.delete(heartbeat_key(self.step, tenant_id, export_id))

    async def _failed(self, msg: Msg, tenant_id: str, export_id: str, error: Exception,
                      needed: bool = True) -> None:
        """Record a failed attempt (or drop the message when the export no longer needs the step).
        ``needed``: the export needed the step as the run started — a run dropped because the export
        ended meanwhile (cancelled, completed by another replica, erased) is said as ended; one whose
        export had already ended when it started (the notifier's has, always) failed on its own, and
        says so with its traceback."""
        reason = public_reason(error, StepError)  # what the person sees; the details stay in this log
        ids = _ids(tenant_id, export_id, self.step)
        said = False
        try:
            loaded = await self.bus.log.load(tenant_id, export_id)
            decision = after_failure(loaded.state, self.step, reason, self.settings.step_attempts,
                                     self.settings.retry_base_delay_s, still_due=self.should_run(loaded),
                                     permanent=is_permanent(error))
            if isinstance(decision, Drop) and needed:
                # the export ended (cancelled, completed by another replica, erased) while this run
                # worked: what stopped the run is no failure, and a warning with a traceback said it was
                log.info("%s %s: ended, the export no longer needs this step (%s: %s)", self.step,
                         export_id, type(error).__name__, error, extra=ids)
                await msg.ack()
                return
            log.warning("%s %s failed: %s (%s: %s)", self.step, export_id, reason, type(error).__name__, error,
                        exc_info=not isinstance(error, StepError), extra=ids)
            said = True
            base = dict(export_id=export_id, tenant_id=tenant_id)
            match decision:
                case Drop():
                    await msg.ack()
                case GiveUp(reason=readable):
                    await self._give_up(msg, loaded, readable)
                case Retry(attempt=attempt, delay_s=delay):
                    await append_folded(self.bus.log, ev.attempt_failed(self.step, **base, attempt=attempt,
                                                                        reason=reason), loaded)
                    await msg.nak(delay=delay)
                    metrics.STEP_RETRIES.labels(self.step).inc()
        except Exception:
            if not said:
                log.warning("%s %s failed: %s (%s: %s)", self.step, export_id, reason, type(error).__name__,
                            error, exc_info=not isinstance(error, StepError), extra=ids)
            log.exception("%s %s: could not record the failure", self.step, export_id, extra=ids)
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.settings.retry_base_delay_s)

    async def _give_up(self, msg: Msg, loaded: Loaded, readable: str) -> None:
        """Fail the export (the reason is what the person reads), then ack."""
        state = loaded.state
        await append_folded(self.bus.log, ev.export_failed(self.step, export_id=state.export_id,
                                                           tenant_id=state.tenant_id, reason=readable), loaded)
        await msg.ack()
        metrics.STEP_RUNS.labels(self.step, "failed").inc()
        metrics.EXPORTS_FINISHED.labels("failed").inc()
        if self.on_failed is not None:
            with contextlib.suppress(Exception):  # best effort; the janitor is the backstop
                await self.on_failed(loaded)

    async def _deaths(self, tenant_id: str, export_id: str, last_seq: int) -> int:
        """Runs of this step in a row that died, from the heartbeat left behind (0 if unreadable)."""
        try:
            beat = await last_beat(self.bus, self.settings, self.step, tenant_id, export_id)
        except Exception as e:  # a KV hiccup: nothing known, nothing counted
            log.warning("%s %s: heartbeat unreadable (%r)", self.step, export_id, e,
                        extra=_ids(tenant_id, export_id, self.step))
            return 0
        return deaths_before(beat, last_seq)

    async def _beat(self, tenant_id: str, export_id: str, carry: dict[str, int]) -> None:
        beat: dict[str, object] = {"step": self.step, "worker": WORKER_ID, "at": round(time.time(), 3), **carry}
        with contextlib.suppress(Exception):
            await self.bus.heartbeats.put(heartbeat_key(self.step, tenant_id, export_id), json.dumps(beat).encode())

    async def _keepalive(self, msg: Msg, tenant_id: str, export_id: str, beating: list[bool],
                         carry: dict[str, int]) -> None:
        """The first beat comes one ``progress_interval_s`` after the step started (well inside
        AckWait): a step that is done by then — most steps of a small export — costs no in-progress
        ack and no heartbeat key to put and delete. ``beating`` tells ``_run`` a key may exist."""
        while True:
            await asyncio.sleep(self.settings.progress_interval_s)
            ctx = self.contexts.get(running_key(tenant_id, export_id))
            stall = self.settings.stall_after_s
            if (ctx is not None and ctx.working and stall > 0 and self.step in STALL_WATCHED
                    and time.monotonic() - ctx.progressed_at > stall):
                log.warning("%s %s: no progress for %g s; stopping the step (a failed attempt)", self.step,
                            export_id, stall, extra=_ids(tenant_id, export_id, self.step))
                ctx.stalled = True
                task = self.running.get(running_key(tenant_id, export_id))
                if task is not None:
                    task.cancel("stalled")
                return  # no more beats: were this process gone too, AckWait hands the message on
            with contextlib.suppress(Exception):
                await msg.in_progress()
            beating[:] = [True]
            await self._beat(tenant_id, export_id, carry)


def _redelivered(msg: Msg) -> bool:
    try:
        return int(msg.metadata.num_delivered) > 1
    except Exception:  # not a JetStream delivery (tests that hand-craft a message)
        return False


def _durable(msg: Msg) -> str:
    try:
        return str(msg.metadata.consumer)
    except Exception:  # not a JetStream delivery (tests that hand-craft a message)
        return ""


def running_key(tenant_id: str, export_id: str) -> str:
    """Tasks are keyed by tenant and export: an export id alone names nothing (any tenant may use it)."""
    return f"{tenant_id}.{export_id}"


def _ids(tenant_id: str, export_id: str, step: str) -> dict[str, str]:
    """Structured fields of a log line (the JSON formatter puts them beside the message)."""
    return {"tenant_id": tenant_id, "export_id": export_id, "step": step}
