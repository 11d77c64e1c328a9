"""Erase: ``grove-export erase-tenant TENANT`` removes everything Grove Export holds about a tenant.

Order matters. Running exports are first cancelled through the log (so the assembler stops
writing and the canceller aborts the upload), then the tenant's events are deleted from the
stream one by one with the server's message delete, which writes over each in its block file (a
purge leaves the bytes there; the assembler's ``PartUploaded`` progress events, which hold nothing
of the requester, are only purged), its KV keys purged from the bucket streams (no delete markers
are left behind; their values hold ids, times and hashes, not the address), its
objects and open uploads removed from the store, its rows deleted from the read model and its
emails removed from the outbox folder (the ``outbox`` mail backend's ``.eml`` files: they hold the
requester's address). Finally everything is listed again: the command says "nothing left" only when
that is what it saw. A second run finds nothing and removes nothing, so running it twice is safe.

Before any of that, :func:`check_places` makes sure the places it erases from are the deployment's:
a read-model file or a filesystem store folder that does not exist is refused (erasing "there"
would find nothing, report success, and leave the data where it really is).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from nats.js.errors import APIError

from services.gateway.projector import left_rebuilds, remove_left_rebuilds
from services.operator import actions
from services.operator.inspect import read, requested
from shared.bus.connect import Bus, kv_names
from shared.core import events as ev
from shared.core import keys
from shared.core.lifecycle import ExportState
from shared.eventlog.directget import every_stored, subject_counts
from shared.objectstore import ObjectStore
from shared.objectstore.port import StoreRefused
from shared.runtime import faults
from shared.runtime.settings import Settings

IN_FLIGHT = 16  # message deletes awaiting their answer at once (the server does them one by one)
QUIET_MARGIN_S = 1.0  # after a progress interval, for a step's first beat to be put (a busy loop, a KV put)
ROUNDS = 5  # listings of the tenant's events to delete; what a publisher still appends after them is purged


class EraseError(Exception):
    """A place to erase from is missing or unreadable: one line, nothing erased when raised first."""


def check_read_model_file(path: Path, where: str) -> None:
    """``path`` is a regular file that exists (``where`` names the setting or flag it came from)."""
    shown = path.resolve()
    if not path.exists():
        raise EraseError(f"the read model {shown} does not exist ({where}): nothing was erased; pass --read-model "
                         "PATH once per gateway replica, or --no-read-model when no read model is reachable from "
                         "here (see README, Erase)")
    if not path.is_file():  # a FIFO: SQLite's open waited for a writer for ever; a folder: "disk I/O error"
        raise EraseError(f"the read model {shown} ({where}) is not a regular file (a folder, a device, a pipe): it "
                         "is not a gateway's read model; nothing was erased")


def check_read_model(path: Path, where: str) -> None:
    """``path`` is an existing gateway read model (``where`` names the setting or flag it came from)."""
    check_read_model_file(path, where)
    shown = path.resolve()
    try:
        db = sqlite3.connect(f"{shown.as_uri()}?mode=ro", uri=True, timeout=10)
        try:
            table = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'storage_exports'"
                               ).fetchone()
        finally:
            db.close()
    except sqlite3.Error as e:
        raise EraseError(f"the read model {shown} ({where}) cannot be read: {e}; nothing was erased") from None
    if table is None:
        raise EraseError(f"{shown} ({where}) has no storage_exports table: it is not a gateway's read model; "
                         "nothing was erased")
    if running := left_rebuilds(path)[1]:  # its rows, read from the log before the erasure, swapped in after it
        raise EraseError(f"a replay is rebuilding the read model {shown} ({where}) right now (in {running[0].name}): "
                         "nothing was erased; run erase-tenant once that replay has ended")


def check_store(settings: Settings) -> None:
    """The filesystem store's root and exports bucket folder exist (S3 answers for its own buckets)."""
    from shared.objectstore.factory import check_fs_store
    from shared.objectstore.port import StoreNotThere

    try:
        check_fs_store(settings, "nothing was erased")
    except StoreNotThere as e:
        raise EraseError(str(e)) from None


def check_places(settings: Settings, read_models: list[tuple[Path, str]]) -> None:
    """Refuse before anything is cancelled or purged when a place to erase from is not there."""
    for path, where in read_models:
        check_read_model(path, where)
    check_store(settings)


@dataclass
class Holdings:
    """What the system holds about one tenant, where."""

    events: int = 0
    exports: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    work_objects: list[str] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # held under the prefix, but no object: ObjectStore.leftovers
    leftovers_unseen: str | None = None  # why the store would not list them (credentials without the right)
    admission_keys: list[str] = field(default_factory=list)
    heartbeat_keys: list[str] = field(default_factory=list)
    read_model_rows: dict[str, int] = field(default_factory=dict)
    rebuilds: dict[str, int] = field(default_factory=dict)  # files of a replay beside a read model: every tenant's rows
    outbox: str | None = None  # the outbox folder looked in; None when emails are not kept in one
    emails: list[Path] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.events or self.archives or self.work_objects or self.uploads or self.leftovers
                    or self.admission_keys
                    or self.heartbeat_keys or any(self.read_model_rows.values()) or any(self.rebuilds.values())
                    or self.emails)

    def lines(self, verb: str) -> list[str]:
        return [
            f"{verb} {self.events} events of {len(self.exports)} exports from stream subjects",
            f"{verb} {len(self.archives)} archives",
            f"{verb} {len(self.work_objects)} snapshot, text and part-record objects",
            f"{verb} {len(self.uploads)} open multipart uploads",
            *([f"{verb} {len(self.leftovers)} other things in the store (temp files of writes cut short, "
               "older object versions)"] if self.leftovers else []),
            *([f"older object versions: not looked at, the store refused to list them ({self.leftovers_unseen}); "
               "on a versioned bucket grant s3:ListBucketVersions and s3:DeleteObjectVersion, and run it again"]
              if self.leftovers_unseen else []),
            f"{verb} {len(self.admission_keys)} admission and idempotency keys",
            f"{verb} {len(self.heartbeat_keys)} heartbeat keys",
            *(f"{verb} {n} read-model rows in {path}" for path, n in self.read_model_rows.items()),
            *(f"{verb} {n} files of an unfinished replay beside {path} (every tenant's rows as far as it got)"
              for path, n in self.rebuilds.items() if n),
            *([f"{verb} {len(self.emails)} emails in the outbox {self.outbox}"] if self.outbox is not None else []),
        ]


class Eraser:
    def __init__(self, settings: Settings, bus: Bus, store: ObjectStore, read_models: list[Path],
                 outbox: Path | None = None) -> None:
        """``read_models`` checked by :func:`check_places`; ``outbox``: the outbox mail backend's folder."""
        self.settings, self.bus, self.store, self.read_models = settings, bus, store, read_models
        self.outbox = outbox
        self.bucket = settings.buckets.exports
        self.heartbeats, self.admission = kv_names(settings)
        self.judged: dict[str, int] = {}  # tenant → revision of its admission slot stop_running last judged

    def _subjects(self, tenant_id: str) -> dict[str, list[str]]:
        """Stream → the subject filters that hold this tenant (never a wildcard in the tenant's place)."""
        p = self.settings.subject_prefix
        return {
            self.settings.stream_name: [f"{p}.{tenant_id}.>"],
            f"KV_{self.admission}": [f"$KV.{self.admission}.tenant.{tenant_id}",
                                     f"$KV.{self.admission}.idem.{tenant_id}.>"],
            f"KV_{self.heartbeats}": [f"$KV.{self.heartbeats}.{keys.heartbeat_key('*', tenant_id, '>')}"],
        }

    async def _count(self, stream: str, subject: str) -> dict[str, int]:
        return await subject_counts(self.bus.js, stream, subject)

    async def holdings(self, tenant_id: str) -> Holdings:
        h = Holdings()
        subjects = self._subjects(tenant_id)
        events = await self._count(self.settings.stream_name, subjects[self.settings.stream_name][0])
        h.events = sum(events.values())
        prefix = self.settings.subject_prefix  # every event goes; exports are only the ids ('*' is none)
        h.exports = sorted({owner[1] for s in events if (owner := ev.export_of_subject(prefix, s)) is not None})
        for subject in subjects[f"KV_{self.admission}"]:
            h.admission_keys += sorted(await self._count(f"KV_{self.admission}", subject))
        h.heartbeat_keys = sorted(await self._count(f"KV_{self.heartbeats}", subjects[f"KV_{self.heartbeats}"][0]))
        prefix = keys.tenant_prefix(tenant_id)
        for obj in await self.store.list_keys(self.bucket, prefix):
            (h.work_objects if keys.is_work_key(obj.key) else h.archives).append(obj.key)
        h.uploads = [(u.key, u.upload_id) for u in await self.store.list_uploads(self.bucket, prefix)]
        try:  # a temp file, an old version: the tenant's bytes too
            h.leftovers = await self.store.leftovers(self.bucket, prefix)
        except StoreRefused as e:  # credentials granted as deploy/README.md said before: cannot list versions
            h.leftovers_unseen = e.reason
        for path in self.read_models:
            h.read_model_rows[str(path)] = _rows(path, tenant_id, delete=False)
            h.rebuilds[str(path)] = sum(map(len, left_rebuilds(path)))
        if self.outbox is not None:
            h.outbox = str(self.outbox)
            h.emails = tenant_emails(self.outbox, tenant_id)
        return h

    async def reachable(self, tenant_id: str) -> None:
        """Ask the store once before anything changes: a missing S3 bucket or bad credentials are
        refused (StoreError) before the tenant's exports are cancelled."""
        await self.store.list_keys(self.bucket, keys.tenant_prefix(tenant_id))

    async def stop_running(self, tenant_id: str, who: actions.Who, wait_s: float, *,
                           erase_running: bool = False) -> list[str]:
        """Cancel the tenant's running exports through the log and wait for them to stop; the ids
        still running when the wait ends (e.g. no services are up) are returned. A request being
        admitted (a live reservation, its ExportRequested not in the log yet) is waited for too, and
        cancelled once it lands: its gateway appended it after the erasure, and the export ran.
        ``erase_running`` (the running ones are erased anyway): a request being admitted is waited
        for past ``wait_s`` too, until it lands or its reservation lapses (so at most the
        reservation's life): it has not started, and erasing the reservation from under it was what
        let it land after the erasure and run. One that lands is waited for like the others, ``wait_s``
        from when it landed."""
        running: list[str] = []
        seen: set[str] = set()
        relist, admitting = True, None  # list the log's requests: the first round, and while a request is admitted
        deadline = time.monotonic() + wait_s
        quiet = 0.0  # until then a step may work on an export of the tenant without a beat yet (see below)
        while True:
            for _, tenant, export in await requested(self.bus, self.settings, tenant_id) if relist else []:
                if export in seen:
                    continue
                seen.add(export)
                state = (await read(self.bus, tenant, export)).state
                if state.exists and not state.terminal:
                    try:
                        await actions.cancel(self.bus, tenant, export, who)
                    except actions.Refusal:
                        pass  # already cancelling, or finalizing: wait for it to finish either way
                if _working(state):
                    running.append(export)
                # A step beats one progress interval after it starts, so one that started before this
                # look or before the cancel just logged (in its first interval, or while the log
                # already said cancelled) has no heartbeat to find yet: the erasure went on, and the
                # run put its beat, snapshot and texts after it. Any such step has beaten by then.
                quiet = time.monotonic() + self.settings.progress_interval_s + QUIET_MARGIN_S
            looked = time.monotonic()  # what follows is looked at from now: quiet counts only when it is past
            states = [(await read(self.bus, tenant_id, e)).state for e in running]
            running = [s.export_id for s in states if _working(s)]
            busy = running + [e for e in await self._beating(tenant_id) if e not in running]
            was, (admitting, self.judged[tenant_id]) = admitting, await actions.reserving(
                self.bus, self.settings, tenant_id)
            if admitting is not None and admitting not in busy:
                busy.append(admitting)
            relist = admitting is not None or was is not None  # its request may have landed since the listing
            if was is not None and admitting is None:  # landed (or lapsed): waited for --wait from now on
                deadline = max(deadline, time.monotonic() + wait_s)
            if not busy and not relist and looked >= quiet:
                return busy
            if looked >= quiet and time.monotonic() >= deadline and not (erase_running and relist):
                return busy
            await asyncio.sleep(0.2)

    async def _beating(self, tenant_id: str) -> list[str]:
        """The tenant's exports a step still works on, by its heartbeat, whatever the log says: a
        cancel is logged as soon as the upload is aborted, and a catalog cancelled mid-read wrote the
        tenant's snapshot and texts after that (its ExportCataloged refused, the objects not), so after
        an erase that had found nothing to wait for."""
        from shared.bus.beats import beating
        from shared.core.steps import STEPS

        base = f"$KV.{self.heartbeats}."
        named: list[tuple[str, str]] = []
        for subject in await subject_counts(self.bus.js, f"KV_{self.heartbeats}",
                                            base + keys.heartbeat_key("*", tenant_id, "*")):
            step, _, export = subject[len(base):].split(".")
            if any(s.step == step for s in STEPS) and ev.is_valid_id(export):  # a key a worker could put
                named.append((step, export))
        # Each as the janitor asks it (shared/bus/beats.py): a value no worker put — a PubAck anyone can aim
        # at the key, again and again — stands over a catalog's beat, and the erase went on while it wrote
        # the tenant's snapshot. Asked all at once: such a key is listened to for two beat intervals.
        beats = await asyncio.gather(*(beating(self.bus, self.settings, step, tenant_id, export)
                                       for step, export in named))
        return list(dict.fromkeys(export for (_, export), beat in zip(named, beats, strict=True) if beat))

    async def overwrites(self) -> bool:
        """Whether the event stream lets its messages be deleted one by one, so written over on
        disk; a stream made before that was allowed was made with ``deny_delete``, which no update
        can clear: there the events are only purged (shared/eventlog/jetstream.py)."""
        return not (await self.bus.js.stream_info(self.settings.stream_name)).config.deny_delete

    async def _write_over(self, subject: str) -> None:
        """Delete the tenant's events with the server's message delete, which (unlike a purge, which
        leaves the bytes in the stream's block files) writes random bytes over the message —
        subject, headers and body — in its block. One request per event, and nats-server does them
        one at a time, each costing a reread of its block (2–30 ms here): the assembler's
        ``PartUploaded`` events — ids, offsets, digests and counts, most of a big export's events —
        are left to the purge. Rounds until a listing finds nothing more to write over (an event
        appended meanwhile)."""
        stream, done = self.settings.stream_name, set[int]()
        for _ in range(ROUNDS):
            seqs = [m.seq async for m in every_stored(self.bus.js, stream, subject)
                    if m.seq not in done and not _progress(m.subject)]
            if not seqs:
                return
            for i in range(0, len(seqs), IN_FLIGHT):
                await asyncio.gather(*(self._delete(stream, s) for s in seqs[i:i + IN_FLIGHT]))
            done.update(seqs)

    async def _delete(self, stream: str, seq: int) -> None:
        try:
            await self.bus.js.delete_msg(stream, seq)  # no_erase false: the server's secure erase
        except APIError as e:  # gone since the listing (the stream's max age): nothing to write over
            if not _gone(e):
                raise

    async def erase(self, tenant_id: str, found: Holdings) -> None:
        await faults.slow("erase.erasing")  # tests: hold an erase between its wait and its erasure
        for key, upload_id in found.uploads:  # first, so no part lands after the objects are gone
            await self.store.abort_multipart(self.bucket, key, upload_id)
        events = self._subjects(tenant_id)[self.settings.stream_name][0]
        if await self.overwrites():
            await self._write_over(events)
        slot = self._subjects(tenant_id)[f"KV_{self.admission}"][0]
        for stream, filters in self._subjects(tenant_id).items():
            for subject in filters:  # the KV keys; on the stream, what a refused delete or a late append left
                if subject == slot and tenant_id in self.judged:
                    await self._purge_judged_slot(stream, subject, self.judged[tenant_id])
                else:
                    await self.bus.js.purge_stream(stream, subject=subject)
        await self.store.delete_many(self.bucket, [*found.archives, *found.work_objects])
        # then the temp files (and the emptied folders' names), or the versions a versioned bucket kept
        if found.leftovers_unseen is None:
            await self.store.remove_leftovers(self.bucket, keys.tenant_prefix(tenant_id))
        for path in self.read_models:
            _rows(path, tenant_id, delete=True)
            remove_left_rebuilds(path)  # a killed replay's; a running one's is still there: "still holds"
        for email in found.emails:
            email.unlink(missing_ok=True)

    async def _purge_judged_slot(self, stream: str, subject: str, revision: int) -> None:
        """Purge the tenant's admission slot up to the revision :meth:`stop_running` judged, no further:
        a reservation written since is a request admitted after that judgement, whose ExportRequested
        may land after the erasure — purged with the rest, the erase said "nothing left" and the
        export ran. Left in place, the last look finds it ("something was written meanwhile")."""
        if revision:  # 0: the tenant had no slot (the API's seq 0 purges everything)
            await self.bus.js.purge_stream(stream, subject=subject, seq=revision + 1)


def _gone(e: APIError) -> bool:
    """The message delete found no message at that sequence: nats-server 2.10+ answers err_code 10057
    ("no message found"), the code it also gives a refused delete, so the text decides; older
    servers 10043 (sequence not found)."""
    return e.err_code == 10043 or (e.err_code == 10057 and (e.description or "").lower() == "no message found")


def _progress(subject: str) -> bool:
    """An assembler's progress event by its subject (``<prefix>.<tenant>.<export>.PartUploaded``):
    nothing of the requester in it, only the export's ids, byte offsets, digests and counts."""
    tokens = subject.split(".")
    return len(tokens) == 4 and tokens[3] == ev.PartUploaded.name()


def _working(state: ExportState) -> bool:
    """A step of the export may still act on it: it has not ended, or it ended with its email still
    to send — the notifier, retrying a mail server that is down, holds the requester's address and
    sent the email after the erasure (its NotificationSent was refused, the email was not)."""
    return state.exists and (not state.terminal or state.email_due)


def _rows(path: Path, tenant_id: str, *, delete: bool) -> int:
    """Rows of the tenant in one read-model file; the file is never created here (a missing one was
    refused by :func:`check_read_model`, and one gone since is an error, not "no rows")."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=10)
        try:
            (n,) = db.execute("SELECT COUNT(*) FROM storage_exports WHERE tenant_id = ?", (tenant_id,)).fetchone()
            if delete:
                # A deleted row's bytes stay in its page (and, with a gateway holding the file open in
                # WAL mode, in the main file until some later checkpoint): the requester's address was
                # still in read-model.db after the erasure. Overwritten with zeros, and moved out of
                # the WAL into the file at once.
                db.execute("PRAGMA secure_delete = ON")
                if n:
                    db.execute("DELETE FROM storage_exports WHERE tenant_id = ?", (tenant_id,))
                    db.commit()
                # secure_delete zeroes only what this connection deletes: each INSERT OR REPLACE of a
                # gateway whose SQLite was built without SQLITE_SECURE_DELETE (or from before it asked
                # for it) freed the row's former cell as it was. VACUUM writes every page afresh from
                # the rows that are left (the read model is one row per export) — also when no row is
                # left to delete: a run stopped after its DELETE committed (killed, a busy file) found
                # none when run again, and left those cells, the address in each, in the file.
                db.execute("VACUUM")
                (busy, _, _) = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy:
                    raise EraseError(f"the read model {path.resolve()}: its rows of the tenant are deleted, but "
                                     "a reader kept it from writing them over on disk; run erase-tenant again")
            return int(n)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise EraseError(f"the read model {path.resolve()}: {e}") from None


def _email_tenant(path: Path) -> str | None:
    """The tenant an outbox file was written for, from its Message-ID: the idempotency key
    ``export:kind:tenant[:aN][:rN]`` with ``:`` made ``.`` (services.notifier.mail.mime.message_id);
    ids hold no dot, so the third field is the tenant. None for a file that is not such an email."""
    try:
        with path.open("rb") as f:
            headers = BytesHeaderParser().parse(f)
    except (OSError, ValueError):
        return None
    left = str(headers.get("Message-ID", "")).strip().lstrip("<").partition("@")[0]
    fields = left.split(".")
    return fields[2] if len(fields) >= 3 and fields[1] in ("ready", "failed") else None


def tenant_emails(outbox: Path, tenant_id: str) -> list[Path]:
    """The outbox's files of the tenant's emails: ``<export>.<kind>.<tenant>[.aN][.rN].eml`` (before
    the names became one per key: ``_`` for ``.``), and the temp files of interrupted writes
    (``.<name>.<random>.tmp``). The name only preselects (it holds the tenant id): the Message-ID
    decides."""
    try:
        entries = list(os.scandir(outbox))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        name = entry.name
        if tenant_id not in name or not name.endswith((".eml", ".tmp")) or not entry.is_file(follow_symlinks=False):
            continue
        if _email_tenant(Path(entry.path)) == tenant_id:
            found.append(Path(entry.path))
    return sorted(found)
