"""The passes over the object store: delete expired archives and record them expired
(:func:`expire_batch`), delete what an ended export left (:func:`sweep_ended`), abort the orphan
uploads (:func:`abort_orphans`), delete the objects of exports the log no longer holds
(:func:`forget`). Which objects go is ``decide``'s to say; this module lists, deletes and counts.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from nats.js.errors import NotFoundError

from services.janitor.decide import export_of, is_forgotten, is_orphan_upload, is_swept, is_unaccounted
from services.janitor.job import Job
from services.janitor.summary import STOPPED, Summary, log
from shared.core import events as ev
from shared.core.keys import EXPORTS_ROOT, archive_owner, export_prefix, is_archive_key_of, is_work_key
from shared.eventlog.directget import subject_counts
from shared.eventlog.jetstream import Loaded
from shared.objectstore.factory import check_fs_store
from shared.objectstore.port import StoreUnavailable
from shared.runtime import faults


async def expire_batch(job: Job, chunk: list[Loaded], summary: Summary) -> None:
    """Delete the archives of ``chunk``'s expired exports at once, and record each expired."""
    if not job.dry_run:
        # The filesystem store deletes a key it does not find as done: with its root gone since the
        # run began (a volume unmounted) each archive would be recorded expired and stay there.
        check_fs_store(job.settings, STOPPED)
    done = await asyncio.gather(*(_expire(job, loaded) for loaded in chunk), return_exceptions=True)
    unavailable: list[tuple[Loaded, StoreUnavailable]] = []
    for loaded, outcome in zip(chunk, done, strict=True):
        s = loaded.state
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, Exception):
                raise outcome  # a cancellation, an interrupt: not this export's
            if isinstance(outcome, StoreUnavailable):  # its delete failed: nothing recorded for it
                unavailable.append((loaded, outcome))
            else:
                summary.leave(f"{s.tenant_id}/{s.export_id}", outcome)
            continue
        assert s.completed is not None
        if not outcome:
            continue  # the log moved meanwhile: not recorded by this run (the next one decides again)
        summary.expired += 1
        summary.actions.append(f"expire {s.export_id} ({s.completed.archive_key})")
    if unavailable:  # the batch's other deletes are done and recorded (counted above)
        await job.stop_if_down(unavailable[0][1])
        for loaded, error in unavailable:
            summary.leave(f"{loaded.state.tenant_id}/{loaded.state.export_id}", error)


async def _expire(job: Job, loaded: Loaded) -> bool:
    """Delete the archive and record ExportExpired; False when the record was refused."""
    s = loaded.state
    assert s.completed is not None
    if not job.dry_run:
        if is_archive_key_of(s.tenant_id, s.export_id, s.completed.archive_key):
            await job.store.delete(job.bucket, s.completed.archive_key)
        else:  # not this export's key, whatever the log says: never delete outside its prefix
            log.warning("janitor: %s names archive key %r outside its prefix; not deleting it",
                        s.export_id, s.completed.archive_key, extra={"export_id": s.export_id})
        return await job.append(loaded, ev.ExportExpired(export_id=s.export_id, tenant_id=s.tenant_id,
                                                         deleted_key=s.completed.archive_key))
    return True


async def sweep_ended(job: Job, loaded: Loaded, now: datetime, summary: Summary) -> None:
    """Delete the work objects of an ended export, and the archive of one that did not complete
    (``decide.is_swept``; a failed one keeps them for a retry, ``lifecycle.kept_for_retry``)."""
    s = loaded.state
    owner = (s.tenant_id, s.export_id)
    keep = timedelta(days=job.settings.archive_ttl_days)
    work: list[str] = []
    for obj in await job.store.list_keys(job.bucket, export_prefix(*owner)):
        archive = archive_owner(obj.key) == owner
        if not (archive or is_work_key(obj.key)) or not is_swept(s, archive, obj.last_modified, now, keep):
            continue
        if archive:
            if not job.dry_run:
                await job.store.delete(job.bucket, obj.key)
            summary.unoffered += 1
            summary.actions.append(f"delete archive {obj.key} (export {s.export_id} is {s.status}: never offered)")
        else:
            work.append(obj.key)
    if work:
        await faults.slow("janitor.listed")  # tests: hold a run between its listing and its deletes
    if work and not job.dry_run:
        await job.store.delete_many(job.bucket, work)  # one request per 1,000 on S3, not one per part record
    # said once deleted: a delete the store refused printed "removed work object …" for objects still there
    summary.actions.extend(f"remove work object {key} (export {s.export_id} is {s.status})" for key in work)
    summary.cleaned += len(work)


async def abort_orphans(job: Job, now: datetime, summary: Summary) -> None:
    """Abort the orphans among the open uploads, each judged from its export's log as it is now
    (after this run's own appends)."""
    keep = timedelta(days=job.settings.archive_ttl_days)
    for upload in await job.store.list_uploads(job.bucket, EXPORTS_ROOT):
        owner = export_of(upload.key)  # None: no export's (a '*' there read every tenant's): an orphan
        async with job.each(summary, f"upload {upload.upload_id} of {upload.key!r}"):
            state = (await job.bus.log.load(*owner)).state if owner else None
            if is_orphan_upload(state, upload.upload_id, upload.initiated, job.settings.orphan_upload_age_s,
                                now, keep):
                if not job.dry_run:
                    await job.store.abort_multipart(job.bucket, upload.key, upload.upload_id)
                summary.aborted += 1
                summary.actions.append(f"abort upload {upload.upload_id} of {upload.key}")


async def forget(job: Job, in_log: set[tuple[str, str]], now: datetime, summary: Summary) -> None:
    """Delete the archives (past the retention) and work objects (past the orphan age) of exports
    the log no longer holds (``in_log``: every export with a request in the log, whatever its
    state). Only an export's own archive key or work key, and only of ids an export can have."""
    log_begins = await _log_begins(job)
    if log_begins is None:
        return
    held: dict[tuple[str, str], bool] = {}
    for obj in await job.store.list_keys(job.bucket, EXPORTS_ROOT):
        owner = export_of(obj.key)
        if owner is None:
            continue
        if archive_owner(obj.key) is not None:
            what, min_age_s = "archive", job.settings.archive_ttl_days * 86400
        elif is_work_key(obj.key):
            what, min_age_s = "work object", job.settings.orphan_upload_age_s
        else:
            continue
        async with job.each(summary, f"{what} {obj.key!r}"):
            if not is_forgotten(owner in in_log, obj.last_modified, log_begins, min_age_s, now):
                if is_unaccounted(owner in in_log, obj.last_modified, log_begins) and not await _held(job, owner, held):
                    summary.unaccounted[owner] = summary.unaccounted.get(owner, 0) + 1
                continue
            if not job.dry_run:
                await job.store.delete(job.bucket, obj.key)
            summary.forgotten += 1
            summary.actions.append(f"delete {what} {obj.key} (export {owner[1]} is no longer in the log)")


async def _held(job: Job, owner: tuple[str, str], seen: dict[tuple[str, str], bool]) -> bool:
    """Whether the log holds any event of ``owner`` now, asked once per export: one requested after
    the run read the requests (its objects already written), or one whose request aged out while its
    later events are still there, is no export the log does not hold."""
    if owner not in seen:
        tenant, export = owner  # ids (export_of): safe as subject tokens
        subject = f"{job.settings.subject_prefix}.{tenant}.{export}.>"
        seen[owner] = bool(await subject_counts(job.bus.js, job.settings.stream_name, subject))
    return seen[owner]


async def _log_begins(job: Job) -> datetime | None:
    """Server time of the oldest message the stream holds; None when it holds none (or that
    message went meanwhile: asked again next run)."""
    stream = job.settings.stream_name
    state = (await job.bus.js.stream_info(stream)).state
    if not state.messages:
        return None
    try:
        return (await job.bus.js.get_msg(stream, seq=state.first_seq, direct=True)).time
    except NotFoundError:
        return None
