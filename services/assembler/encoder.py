"""The archive stream: the snapshot's members in the order given, then the layout's generated
members (manifest.json, errors.json) and the central directory — a deterministic function of the
snapshot and the skip decisions. Paths, order and the generated members' content are the layout's
(shared/archive/layout.py); this module only encodes.

Runs in a worker thread (zlib, CRC and SHA-256 stay off the event loop). It yields archive bytes
and, right after a member's last byte, that member's record; skipped members yield only a record.
Starting from a :class:`ResumePoint` it re-encodes the straddling member and yields only bytes
at or after ``offset``, so an interrupted run continues into exactly the bytes an uninterrupted
run would have produced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field

from services.assembler.ahead import DeflateAhead
from services.assembler.hashing import Hasher, InlineHasher
from services.assembler.plan import MemberRecord, ResumePoint
from services.assembler.spill import RecordSpill
from shared.archive import jsontext, layout
from shared.archive.central import central_directory
from shared.archive.zipmember import MemberEncoder, SourceSizeMismatch
from shared.core.snapshot import Snapshot, SnapshotMember
from shared.objectstore import ObjectNotFound, PreconditionFailed, StoreError, StoreRefused, StoreUnavailable

# Archive bytes (level-0 members yield views of their sources' immutable chunks) or a record.
Item = bytes | memoryview | MemberRecord
SMALL_MEMBER = 1 << 20
INLINE = InlineHasher()
SourceOpener = Callable[[SnapshotMember], Iterator[bytes]]


class Rewind(Exception):
    """A member's bytes were already (partly) emitted when its source turned out different from
    the snapshot: redo the stream from the part holding its start, without it."""

    def __init__(self, index: int, member_offset: int, reason: str) -> None:
        super().__init__(f"member {index}: {reason}")
        self.index = index
        self.member_offset = member_offset
        self.reason = reason


class Stopped(Exception):
    """The assembly was cancelled."""


@dataclass
class Progress:
    """Read by the uploader (another thread) for progress; plain ints are safe to share."""

    members_done: int = 0
    source_bytes: int = 0


@dataclass
class ArchiveStream:
    snapshot: Snapshot
    open_source: SourceOpener
    start: ResumePoint
    skips: dict[int, str] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)
    hasher: Hasher = field(default_factory=InlineHasher)  # a ThreadHasher moves SHA-256 to another core
    ahead: DeflateAhead | None = None  # large deflated members compressed on another core

    # On disk as they finish (memory stays flat in the number of members); set when iteration starts.
    records: RecordSpill = field(init=False)

    def __iter__(self) -> Iterator[Item]:
        records = self.records = RecordSpill(self.snapshot)
        records.extend(self.start.records)
        self._pending: deque[MemberRecord | Deferred] = deque()
        pos = self.start.member_offset
        self.progress.members_done = self.start.member_index
        self.progress.source_bytes = sum(m.size for m in self.snapshot.members[: self.start.member_index])
        n = len(self.snapshot.members)
        generated = layout.GENERATED
        for index in range(self.start.member_index, n + len(generated) + 1):
            if self.stop.is_set():
                raise Stopped()
            if index < n:
                member = self.snapshot.members[index]
                record = yield from self._member(member, pos)
            elif index < n + len(generated):
                yield from self.settle()  # manifest.json and errors.json read every member's record
                record = yield from self._generated(generated[index - n], index, records, pos)
            else:
                yield from self._emit(pos, self._central(records, pos))
                return
            self._pending.append(record)
            pos = record.end if record.status == "ok" else pos
            self.progress.members_done = min(index + 1, n)  # of the snapshot's members (not manifest/errors)
            yield from self.settle(block=False)

    def settle(self, block: bool = True) -> list[MemberRecord]:
        """The records of the members encoded so far, in member order, each added to the spill as it
        is returned: those whose SHA-256 is done, or (``block``) all of them, waiting for the hashing
        thread. Iteration yields them as they become ready; the pump settles before it cuts a part,
        so a member's record still goes with the part holding its last byte — and the encoder does
        not wait for each large member's hash to catch up (a quarter of its time, measured)."""
        out = []
        while self._pending:
            item = self._pending[0]
            if isinstance(item, Deferred):
                if not block and not item.ready():
                    break
                item = item.record()
            self._pending.popleft()
            self.records.append(item)
            out.append(item)
        return out

    def _emit(self, pos: int, chunks: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
        """Yield the bytes of ``chunks`` (which start at archive offset ``pos``) from ``start.offset`` on."""
        skip_until = self.start.offset
        for chunk in chunks:
            end = pos + len(chunk)
            if end > skip_until:
                yield chunk if pos >= skip_until else chunk[skip_until - pos:]
            pos = end

    def _member(self, m: SnapshotMember, pos: int) -> Generator[Item, None, MemberRecord | Deferred]:
        if m.index in self.skips:
            return _skipped(m, self.skips[m.index])
        try:
            source = self.open_source(m)
            first = next(source, b"")  # the GET (with If-Match) happens here
        except (StoreUnavailable, StoreRefused):
            raise  # the store, not this file: retried (transient) or the step fails at once (refused)
        except (ObjectNotFound, PreconditionFailed, StoreError) as e:
            reason = _reason(e)
            if pos < self.start.offset:  # part of it is already uploaded: drop it from there on
                raise Rewind(m.index, pos, reason) from None
            return _skipped(m, reason)
        sha = hashlib.sha256()
        # A small member is hashed here: waiting for the hashing thread would cost more than the hash.
        hasher = self.hasher if m.size >= SMALL_MEMBER else INLINE

        def chunks() -> Iterator[bytes]:
            for chunk in _chain(first, source):
                if self.stop.is_set():
                    raise Stopped()
                hasher.update(sha, chunk)
                self.progress.source_bytes += len(chunk)
                yield chunk

        deflated = self.ahead.take(m) if self.ahead is not None else None
        encoder = MemberEncoder(m.path, m.modified_at, m.size, m.level, chunks(), deflated)
        try:
            yield from self._emit(pos, encoder)
        except SourceSizeMismatch as e:
            raise Rewind(m.index, pos, f"changed: {e}") from None
        except PreconditionFailed:
            raise Rewind(m.index, pos, "changed: the file was modified while it was read") from None
        r = encoder.result
        upto = hasher.mark()
        record = MemberRecord(
            index=m.index, path=m.path, source_id=m.source_id, offset=pos, length=r.length, size=m.size,
            crc32=r.crc32, sha256="" if upto else sha.hexdigest(), content_type=m.content_type,
            cd=base64.b64encode(r.cd_template).decode(),
        )
        # hashed in this thread (a small member): done; else the hashing thread may still be at it
        return record if upto is None else Deferred(record, lambda: hasher.hexdigest(sha, upto), upto)

    def _generated(self, g: layout.Generated, index: int, records: RecordSpill,
                   pos: int) -> Generator[Item, None, MemberRecord]:
        if g.path == layout.MANIFEST_PATH:  # streamed from the spill: never the whole document in memory
            size, parts = manifest_stream(self.snapshot, records)
        else:  # errors.json needs only the skipped members' records (kept in memory)
            data = g.render(self.snapshot, records.skipped if g.path == layout.ERRORS_PATH else list(records))
            size, parts = len(data), iter([data])
        sha = hashlib.sha256()

        def hashed() -> Iterator[bytes]:
            for chunk in parts:
                sha.update(chunk)
                yield chunk

        encoder = MemberEncoder(g.path, g.modified_at(self.snapshot), size, g.level, hashed())
        yield from self._emit(pos, encoder)
        r = encoder.result
        return MemberRecord(
            index=index, path=g.path, source_id=g.path, offset=pos, length=r.length, size=size, crc32=r.crc32,
            sha256=sha.hexdigest(), content_type=g.content_type,
            cd=base64.b64encode(r.cd_template).decode(),
        )

    @staticmethod
    def _central(records: RecordSpill, pos: int) -> Iterator[bytes]:
        return central_directory(records.cd_entries(), pos)


@dataclass(frozen=True)
class Deferred:
    """A member's record whose SHA-256 the hashing thread is still computing."""

    known: MemberRecord  # everything but sha256
    digest: Callable[[], str]
    upto: threading.Event  # set once the hashing thread has read all of the member

    status = "ok"

    @property
    def end(self) -> int:
        return self.known.end

    def ready(self) -> bool:
        return self.upto.is_set()

    def record(self) -> MemberRecord:
        return self.known.model_copy(update={"sha256": self.digest()})


def _skipped(m: SnapshotMember, reason: str) -> MemberRecord:
    return MemberRecord(index=m.index, path=m.path, source_id=m.source_id, status="skipped", reason=reason,
                        size=m.size, content_type=m.content_type)


def _reason(e: Exception) -> str:
    if isinstance(e, ObjectNotFound):
        return "missing: the file was deleted from storage after the export began"
    if isinstance(e, PreconditionFailed):
        return "changed: the file was modified after the export began"
    return "unreadable: the storage service returned an error for this file"


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


MANIFEST_NOTES = (f"Checksums are SHA-256 of each file's bytes. {layout.MANIFEST_PATH} and {layout.ERRORS_PATH} are "
                  f"not listed. item_counts are what this archive holds; {layout.ERRORS_PATH} lists what it does not.")


def manifest_stream(snapshot: Snapshot, records: RecordSpill) -> tuple[int, Iterator[bytes]]:
    """manifest.json as (size, chunks), byte for byte what :func:`layout.manifest_json` writes (a unit
    test holds them together), with the member entries read from the spill:
    ``json.dumps(doc, indent=2)`` around the list."""
    h = snapshot.header
    head_doc = {
        "export_id": h.export_id, "tenant_id": h.tenant_id, "mode": h.mode, "username": h.username,
        "created_at": layout.utc_text(h.created_at), "generator": h.generator,
        "format_version": 1, "item_counts": layout.held_counts(snapshot, records.skipped),
    }
    head_text = jsontext.dumps(head_doc)
    head = (head_text[:-2] + ',\n  "members": ' + ("[\n    " if records.entries else "[]")).encode()
    tail = (("\n  ]" if records.entries else "") + ',\n  "notes": '
            + json.dumps(MANIFEST_NOTES, ensure_ascii=False) + "\n}\n").encode()

    def chunks() -> Iterator[bytes]:
        yield head
        yield from records.entries_chunks()
        yield tail

    return len(head) + records.entries_bytes + len(tail), chunks()
