"""The janitor job: ``grove-export janitor`` (one run, for cron ``0 3 * * *`` or a Kubernetes
CronJob) or ``grove-export run janitor`` (long-running, one run every ``janitor_interval_s``).

Safe twice at once and twice in a row: every change to an export is a fenced append decided from
its fold (the loser of a race re-reads and finds nothing left to do), and deletes and aborts are
idempotent.

A store that does not answer (``StoreUnavailable``: the endpoint down, after the adapter's retries,
and no answer either to :meth:`Janitor._stop_if_down`'s question of a key no export has) stops the run
at once, with every act before it whole (no ``ExportExpired`` for a delete the store did
not answer); it is said in one line (``Summary.stopped``) and the next run does the rest.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from nats.js.errors import NotFoundError

from services.janitor.decide import (
    Verdict,
    is_expired,
    is_forgotten,
    is_orphan_upload,
    is_swept,
    verdict,
)
from services.janitor.requests import no_requests
from shared.bus.answers import stored_answer
from shared.bus.beats import beating
from shared.bus.connect import Bus, NatsUnreachable, connect
from shared.core import events as ev
from shared.core.keys import (
    EXPORTS_ROOT,
    archive_owner,
    export_of_key,
    export_prefix,
    is_archive_key_of,
    is_work_key,
)
from shared.core.lifecycle import ExportState, apply, moved
from shared.core.printable import printable
from shared.eventlog.directget import get_batch, subject_counts
from shared.eventlog.fence import append_folded
from shared.eventlog.jetstream import Conflict, Loaded
from shared.objectstore import ObjectStore
from shared.objectstore.factory import check_fs_store, open_store
from shared.objectstore.port import StoreError, StoreNotThere, StoreRefused, StoreUnavailable
from shared.ports import SYSTEM_CLOCK, Clock
from shared.runtime import faults, metrics
from shared.runtime.settings import Settings, masked_url

log = logging.getLogger(__name__)
PROBE_KEY = "grove-janitor-probe"  # asked whether the store answers at all: no export's key

STOPPED = "the run stopped there, nothing more was deleted or recorded, and the next run does the rest"


@dataclass
class Summary:
    expired: int = 0
    aborted: int = 0
    failed: int = 0
    cancelled: int = 0
    cleaned: int = 0
    forgotten: int = 0  # objects of exports the log no longer holds, past their age
    unoffered: int = 0  # archives of exports that ended failed or cancelled
    left: int = 0  # exports and uploads an error stopped: the next run tries them again (the log says why)
    stopped: str | None = None  # why the run stopped before the end (the store did not answer), in a sentence
    actions: list[str] = field(default_factory=list)

    def line(self, dry_run: bool) -> str:
        def did(verb: str) -> str:
            return told(verb, dry_run)

        line = (f"janitor: {did('expire')} {self.expired} archives ({'deleting them' if dry_run else 'deleted'}), "
                f"{did('abort')} {self.aborted} "
                f"uploads, {did('fail')} {self.failed} stuck exports, {did('complete')} {self.cancelled} cancels, "
                f"{did('remove')} {self.cleaned} work objects")
        if self.unoffered:
            line += f", {did('delete')} {self.unoffered} archives of exports that did not complete"
        if self.forgotten:
            line += f", {did('delete')} {self.forgotten} objects of exports no longer in the log"
        line += f"; {self.left} left for the next run (an error: see the log)" if self.left else ""
        return line + ("; stopped before the end by the object store (see stderr)" if self.stopped else "")


def told(action: str, dry_run: bool) -> str:
    """An action (``expire exp_… (key)``, ``remove work object …``) as the run's output says it: ``would
    expire …`` in a dry run, ``expired …`` once done. A real run said ``expire 3 archives (deleting
    them)``, in the words of the plan, so its output could not be told from one that did nothing."""
    if dry_run:
        return f"would {action}"
    verb, _, rest = action.partition(" ")
    return " ".join(filter(None, (verb + ("d" if verb.endswith("e") else "ed"), rest)))


class Janitor:
    def __init__(self, settings: Settings, bus: Bus, store: ObjectStore, dry_run: bool = False,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings, self.bus, self.store, self.dry_run, self.clock = settings, bus, store, dry_run, clock
        self.bucket = settings.buckets.exports

    async def exports(self) -> list[tuple[str, str]]:
        """Every export in the log: (tenant, export), from the subjects of ExportRequested whose tokens
        are ids (``events.export_of_subject``: a ``*`` there is no export, it names them all)."""
        return self._owners(await self._subjects())

    def _owners(self, subjects: Iterable[str]) -> list[tuple[str, str]]:
        prefix = self.settings.subject_prefix
        return [owner for s in sorted(subjects) if (owner := ev.export_of_subject(prefix, s)) is not None]

    async def _subjects(self) -> dict[str, int]:
        """Stored messages per ExportRequested subject (every page of the server's answer)."""
        subject = f"{self.settings.subject_prefix}.*.*.ExportRequested"
        found = await subject_counts(self.bus.js, self.settings.stream_name, subject)
        if not found and ((await self.bus.js.stream_info(self.settings.stream_name)).state.messages or 0) > 0:
            # very old servers: fall back to reading them (counted as many as each appears)
            for s in await self._scan(subject):
                found[s] = found.get(s, 0) + 1
        return found

    async def requested(self, counts: dict[str, int]) -> list[tuple[str, str]]:
        """The exports among ``counts``' subjects (``_subjects``) whose ExportRequested subject holds a
        request, judged from those messages alone before anything else is read (``requests.no_requests``).
        The rest (PubAcks or bodies any user had the server store there) are left out, with one line for
        them all instead of a full read and a warning each, every run."""
        prefix = self.settings.subject_prefix
        subjects = {s: n for s, n in counts.items() if ev.export_of_subject(prefix, s) is not None}
        junk = await no_requests(self.bus.js, self.settings.stream_name, prefix, subjects)
        if junk:
            reasons = collections.Counter(junk.values())
            for reason, n in reasons.items():
                metrics.EVENTS_REJECTED.labels("log", reason).inc(n)
            log.warning("janitor: %d ExportRequested subjects hold no request (%s): no exports, not read further",
                        len(junk), ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
        return self._owners(s for s in subjects if s not in junk)

    async def _scan(self, subject: str) -> list[str]:
        out: list[str] = []
        seq = 1
        while True:
            batch = await get_batch(self.bus.js, self.settings.stream_name, seq=seq, subject=subject)
            out += [m.subject for m in batch.messages]
            if not batch.messages or not batch.pending:
                return out
            seq = batch.messages[-1].seq + 1

    async def run(self, now: datetime | None = None) -> Summary:
        """One run. A store that does not answer stops it where it is (``Summary.stopped`` says so):
        every export would wait out the adapter's retries in turn (10 s each on S3's defaults, hours on a
        large log) for the same answer."""
        summary = Summary()
        counts, exports = await self._exports_checked()  # a store not there: raised, nothing done
        try:
            await self._run(counts, exports, now or self.clock.now(), summary)
        except StoreUnavailable as e:
            summary.stopped = (f"the object store ({store_named(self.settings)}) did not answer ({_cause(e)}): "
                               f"{STOPPED}")
        except StoreNotThere as e:  # gone since the run began (a volume unmounted): said as at the start
            summary.stopped = str(e)
        return summary

    async def _exports_checked(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        counts = await self._subjects()
        exports = await self.requested(counts)
        # The log says the store holds something once an export was cataloged: then the store must be
        # where the settings say before anything changes. One such export tells; none is kept.
        for tenant_id, export_id in exports:
            try:
                state = (await self.bus.log.load(tenant_id, export_id)).state
                stored = state.exists and state.cataloged is not None
            except Exception:  # unread: as if it said so (the check costs nothing where the store is)
                stored = True
            if stored:
                check_fs_store(self.settings, "nothing was expired, failed, aborted or removed")
                break
        return counts, exports

    async def _run(self, counts: dict[str, int], exports: list[tuple[str, str]], now: datetime,
                   summary: Summary) -> None:
        # One export at a time (the expired ones a batch at a time): a run holds no fold of every
        # export in the log, so its memory does not grow with the log. One export's error (a store
        # that refuses one delete, a read that times out) is that export's: it is left for the next
        # run, and every other export is still seen to.
        expired: list[Loaded] = []
        for tenant_id, export_id in exports:
            try:
                loaded = await self.bus.log.load(tenant_id, export_id)
                await faults.slow("janitor.read")  # tests: hold the run between its read and its acts
                if not loaded.state.exists:  # a request whose body disagreed with its subject: not an export
                    continue
                if is_expired(loaded.state, now):
                    expired.append(loaded)
                elif not loaded.state.terminal:
                    await self._check_alive(loaded, now, summary)
                else:
                    await self._sweep_ended(loaded, now, summary)
            except StoreUnavailable as e:
                await self._stop_if_down(e)  # the store's: the run stops; else this export's
                _left(summary, f"{tenant_id}/{export_id}", e)
            except Exception as e:
                _left(summary, f"{tenant_id}/{export_id}", e)
            if len(expired) >= self.settings.janitor_batch:  # the spec's batches of 50
                await self._expire_batch(expired, summary)
                expired = []
        if expired:
            await self._expire_batch(expired, summary)
        await self._uploads(now, summary)
        await self._forgotten(set(self._owners(counts)), now, summary)  # every subject's, as before

    async def _stop_if_down(self, error: StoreUnavailable) -> None:
        """Raise ``error`` — the run stops — when the store answers nothing, asked once more of a key no
        export has (:data:`PROBE_KEY`); when it answers, the error was that one call's (a 5xx one key
        keeps getting), left for the next run like any other, and the run goes on: else every archive
        after it would wait behind that key for good."""
        try:
            await self.store.head(self.bucket, PROBE_KEY)
        except StoreUnavailable:
            raise error from None
        except Exception:  # noqa: BLE001  (not found, refused: the store answered)
            return

    async def _expire_batch(self, chunk: list[Loaded], summary: Summary) -> None:
        if not self.dry_run:
            # The filesystem store deletes a key it does not find as done: with its root gone since the
            # run began (a volume unmounted) each archive would be recorded expired and stay there.
            check_fs_store(self.settings, STOPPED)
        done = await asyncio.gather(*(self._expire(loaded) for loaded in chunk), return_exceptions=True)
        unavailable: list[tuple[Loaded, StoreUnavailable]] = []
        for loaded, outcome in zip(chunk, done, strict=True):
            s = loaded.state
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # a cancellation, an interrupt: not this export's
                if isinstance(outcome, StoreUnavailable):  # its delete failed: nothing recorded for it
                    unavailable.append((loaded, outcome))
                else:
                    _left(summary, f"{s.tenant_id}/{s.export_id}", outcome)
                continue
            assert s.completed is not None
            if not outcome:
                continue  # the log moved meanwhile: not recorded by this run (the next one decides again)
            summary.expired += 1
            summary.actions.append(f"expire {s.export_id} ({s.completed.archive_key})")
        if unavailable:  # the batch's other deletes are done and recorded (counted above)
            await self._stop_if_down(unavailable[0][1])
            for loaded, error in unavailable:
                _left(summary, f"{loaded.state.tenant_id}/{loaded.state.export_id}", error)

    async def _expire(self, loaded: Loaded) -> bool:
        """Delete the archive and record ExportExpired; False when the record was refused."""
        s = loaded.state
        assert s.completed is not None
        if not self.dry_run:
            if is_archive_key_of(s.tenant_id, s.export_id, s.completed.archive_key):
                await self.store.delete(self.bucket, s.completed.archive_key)
            else:  # not this export's key, whatever the log says: never delete outside its prefix
                log.warning("janitor: %s names archive key %r outside its prefix; not deleting it",
                            s.export_id, s.completed.archive_key, extra={"export_id": s.export_id})
            return await self._append(loaded, ev.ExportExpired(export_id=s.export_id, tenant_id=s.tenant_id,
                                                               deleted_key=s.completed.archive_key))
        return True

    async def _sweep_ended(self, loaded: Loaded, now: datetime, summary: Summary) -> None:
        """Delete the work objects of an ended export, and the archive of one that did not complete
        (``decide.is_swept``; a failed one keeps them for a retry, ``lifecycle.kept_for_retry``)."""
        s = loaded.state
        owner = (s.tenant_id, s.export_id)
        keep = timedelta(days=self.settings.archive_ttl_days)
        work: list[str] = []
        for obj in await self.store.list_keys(self.bucket, export_prefix(*owner)):
            archive = archive_owner(obj.key) == owner
            if not (archive or is_work_key(obj.key)) or not is_swept(s, archive, obj.last_modified, now, keep):
                continue
            if archive:
                if not self.dry_run:
                    await self.store.delete(self.bucket, obj.key)
                summary.unoffered += 1
                summary.actions.append(f"delete archive {obj.key} (export {s.export_id} is {s.status}: never offered)")
            else:
                work.append(obj.key)
        if work:
            await faults.slow("janitor.listed")  # tests: hold a run between its listing and its deletes
        if work and not self.dry_run:
            await self.store.delete_many(self.bucket, work)  # one request per 1,000 on S3, not one per part record
        # said once deleted: a delete the store refused printed "removed work object …" for objects still there
        summary.actions.extend(f"remove work object {key} (export {s.export_id} is {s.status})" for key in work)
        summary.cleaned += len(work)

    async def _check_alive(self, loaded: Loaded, now: datetime, summary: Summary) -> Loaded:
        s = loaded.state
        last_at = await self._last(s.tenant_id, s.export_id)
        last_event = s.last_event or ""  # the last event this version knows (an unknown one decides nothing)

        def judged(alive: bool | None) -> Verdict | None:
            return verdict(s, last_event, last_at, alive, self.settings.heartbeat_ttl_s, now,
                           retry_base_delay_s=self.settings.retry_base_delay_s,
                           max_attempts=self.settings.step_attempts)

        if judged(False) is None:  # a beat only spares: not asked of an export nothing would happen to
            return loaded
        decided = judged(await self._beating(s.tenant_id, s.export_id, s.step))
        if decided == "cancel":
            if self.dry_run or await self._append(loaded, ev.ExportCancelled(
                    export_id=s.export_id, tenant_id=s.tenant_id, aborted_upload=False)):
                summary.cancelled += 1
                summary.actions.append(f"complete the cancel of {s.export_id} (nobody finished it)")
            return loaded if self.dry_run else await self.bus.log.load(s.tenant_id, s.export_id)
        if decided is None:
            return loaded
        reason = "The export stopped making progress (its worker's heartbeat expired). Please start a new export."
        await faults.slow("janitor.judged")  # tests: hold a run that judged an export dead before it fails it
        if self.dry_run or await self._append(loaded, ev.export_failed(
                "janitor", export_id=s.export_id, tenant_id=s.tenant_id, reason=reason)):
            summary.failed += 1
            summary.actions.append(f"fail {s.export_id} (no heartbeat since {last_at:%Y-%m-%d %H:%M:%S})")
        return loaded if self.dry_run else await self.bus.log.load(s.tenant_id, s.export_id)

    async def _uploads(self, now: datetime, summary: Summary) -> None:
        """Abort the orphans among the open uploads, each judged from its export's log as it is now
        (after this run's own appends)."""
        for upload in await self.store.list_uploads(self.bucket, EXPORTS_ROOT):
            owner = export_of_key(upload.key)
            if owner and not all(ev.is_valid_id(token) for token in owner):
                owner = None  # no export's (a '*' there read every tenant's export of that id): an orphan
            try:
                state = (await self.bus.log.load(*owner)).state if owner else None
                if is_orphan_upload(state, upload.upload_id, upload.initiated, self.settings.orphan_upload_age_s,
                                    now, timedelta(days=self.settings.archive_ttl_days)):
                    if not self.dry_run:
                        await self.store.abort_multipart(self.bucket, upload.key, upload.upload_id)
                    summary.aborted += 1
                    summary.actions.append(f"abort upload {upload.upload_id} of {upload.key}")
            except StoreUnavailable as e:
                await self._stop_if_down(e)
                _left(summary, f"upload {upload.upload_id} of {upload.key!r}", e)
            except Exception as e:
                _left(summary, f"upload {upload.upload_id} of {upload.key!r}", e)

    async def _forgotten(self, in_log: set[tuple[str, str]], now: datetime, summary: Summary) -> None:
        """Delete the archives (past the retention) and work objects (past the orphan age) of exports
        the log no longer holds (``in_log``: every export with a request in the log, whatever its
        state). Only an export's own archive key or work key, and only of ids an export can have."""
        log_begins = await self._log_begins()
        if log_begins is None:
            return
        for obj in await self.store.list_keys(self.bucket, EXPORTS_ROOT):
            owner = export_of_key(obj.key)
            if owner is None or not all(ev.is_valid_id(token) for token in owner):
                continue
            if archive_owner(obj.key) is not None:
                what, min_age_s = "archive", self.settings.archive_ttl_days * 86400
            elif is_work_key(obj.key):
                what, min_age_s = "work object", self.settings.orphan_upload_age_s
            else:
                continue
            try:
                if not is_forgotten(owner in in_log, obj.last_modified, log_begins, min_age_s, now):
                    continue
                if not self.dry_run:
                    await self.store.delete(self.bucket, obj.key)
                summary.forgotten += 1
                summary.actions.append(f"delete {what} {obj.key} (export {owner[1]} is no longer in the log)")
            except StoreUnavailable as e:
                await self._stop_if_down(e)
                _left(summary, f"{what} {obj.key!r}", e)
            except Exception as e:
                _left(summary, f"{what} {obj.key!r}", e)

    async def _log_begins(self) -> datetime | None:
        """Server time of the oldest message the stream holds; None when it holds none (or that
        message went meanwhile: asked again next run)."""
        stream = self.settings.stream_name
        state = (await self.bus.js.stream_info(stream)).state
        if not state.messages:
            return None
        try:
            return (await self.bus.js.get_msg(stream, seq=state.first_seq, direct=True)).time
        except NotFoundError:
            return None

    async def _append(self, loaded: Loaded, event: ev.Event) -> bool:
        """Record ``event`` fenced at the fold it was decided from; False when the log moved meanwhile
        (another janitor or the pipeline got there first: nothing done, the next run decides again)."""
        try:
            await append_folded(self.bus.log, event, loaded, msg_id=f"{event.export_id}:{event.name()}:janitor")
        except Conflict:
            log.info("janitor: %s moved while deciding; leaving it", event.export_id)
            return False
        return True

    async def _last(self, tenant_id: str, export_id: str) -> datetime | None:
        """Server time of the export's last event that moved it (``lifecycle.moved``). Not merely its
        last stored message: a body no reader takes (garbage on a subject some user may publish, a copy
        the server stored as its answer to someone's request), or an event the fold ignores (a second
        ExportRequested, a NotificationSent on a running export), would otherwise keep a dead export
        alive for as long as somebody kept sending them. A newer version's event type counts, when its body
        reads as this export's event (`events.envelope_agrees`): a PubAck aimed at such a subject is none."""
        stream, prefix = self.settings.stream_name, self.settings.subject_prefix
        msg = await self.bus.js.get_last_msg(stream, ev.export_filter(prefix, tenant_id, export_id), direct=True)
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
        async for seq, event in self.bus.log.history(tenant_id, export_id):
            after = apply(state, event)
            if moved(state, after):
                last = seq
            state = after
        if last is None:
            return None
        if msg.seq == last:  # the last message is that event: its time is at hand
            return msg.time
        return (await self.bus.js.get_msg(stream, seq=last, direct=True)).time

    async def _beating(self, tenant_id: str, export_id: str, step: str | None) -> bool | None:
        """True: a worker of the step the log says runs beats; False: no heartbeat key of that step
        (expired, deleted, or no step runs); None: the read failed (a KV hiccup), which says nothing
        about the worker. Another step's key — written by a service the step is not — counts for
        nothing."""
        if step is None:
            return False
        try:
            return await beating(self.bus, self.settings, step, tenant_id, export_id)
        except Exception as e:
            log.warning("janitor: heartbeat of %s unreadable (%r); leaving it for the next run", export_id, e,
                        extra={"export_id": export_id, "tenant_id": tenant_id})
            return None


def _left(summary: Summary, what: str, error: Exception) -> None:
    """An error on one export (or upload) leaves it for the next run and stops nothing else."""
    summary.left += 1
    log.warning("janitor: %s left for the next run: %s", what, _said(error))


def _said(error: Exception) -> str:
    """``error`` in words for a log line (its Python repr, ``StoreRefused('…')``, is none)."""
    if isinstance(error, StoreRefused):
        return f"the object store refused: {error}"
    if isinstance(error, StoreError):
        return f"the object store failed: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _cause(error: StoreUnavailable) -> str:
    """The short cause of a store's silence: its code or the transport's error (``SlowDown``,
    ``EndpointConnectionError``), not the request's whole URL; the whole message when it has none."""
    text = str(error)
    head, sep, _ = text.partition(": ")
    return head if sep and head and " " not in head else text


def store_named(settings: Settings) -> str:
    """The exports bucket's store as an operator finds it in the settings."""
    if settings.store == "fs":
        return f"the filesystem store at {settings.store_root.resolve()}; GROVE_STORE_ROOT"
    endpoint = masked_url(settings.s3.endpoint_url, many=False) if settings.s3.endpoint_url else "AWS"
    return f"S3 at {endpoint}, bucket {settings.buckets.exports}; GROVE_S3__ENDPOINT_URL"


async def run_once(settings: Settings, dry_run: bool = False, now: datetime | None = None) -> Summary:
    bus = await connect(settings, "janitor", persistent=False)
    store = await open_store(settings)
    try:
        summary = await Janitor(settings, bus, store, dry_run).run(now)
    finally:
        await store.close()
        await bus.close()
    for action in summary.actions:  # keys from the store's listings: anyone who may write the bucket chose them
        print(printable(told(action, dry_run)))
    print(summary.line(dry_run), flush=True)
    return summary


async def run_forever(settings: Settings) -> None:
    while True:
        try:
            summary = await run_once(settings)
            if summary.stopped:  # one line; the next run (an interval on) does the rest
                log.warning("janitor run stopped: %s", summary.stopped)
        except NatsUnreachable as e:  # said in one line; the next run tries again
            log.warning("janitor run skipped: cannot reach NATS at %s: %s", settings.nats_url_shown, e.reason)
        except StoreNotThere as e:  # the same: one line, not a traceback each run
            log.warning("janitor run skipped: %s", e)
        except Exception:
            log.exception("janitor run failed")
        await asyncio.sleep(settings.janitor_interval_s)
