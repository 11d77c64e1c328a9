"""Per-member state on disk, not in memory: memory stays flat in the number of members.

An export of 65,536 small files would otherwise hold ~3 KB per member as parsed snapshot members and
~2.4 KB per member record until the central directory and manifest.json are written (measured: +26 MB
per 8,192 members for the snapshot alone). Here both live in anonymous temporary files:

* :class:`SpilledMembers` — the snapshot's member lines in a file plus one 8-byte offset per member;
  a member is parsed when it is asked for (the stream asks for each once, in order).
* :class:`SpilledRecords` — a resume's records of the logged parts, read back once by the stream.
* :class:`RecordSpill` — the member records as they finish: the central-directory templates with
  their offsets (binary), manifest.json's ``members`` entries already formatted, and the records as
  JSON lines (for resume tools and tests). Only skipped members' records stay in memory (they are
  few, and errors.json and the counts need them).

Each spill stays in memory until it passes ``SPOOL`` bytes (a small export's spills never reach
it); then it moves to a file unlinked at creation (``TemporaryFile``), so a killed process leaves
nothing behind.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import tempfile
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import IO, overload

from pydantic_core import from_json

from services.assembler.plan import MemberRecord
from shared.archive import jsontext
from shared.archive.central import CDEntry
from shared.archive.layout import manifest_entry
from shared.core.snapshot import Snapshot, SnapshotError, SnapshotHeader, SnapshotMember

READ = 1 << 20
_CD = struct.Struct("<QI")  # offset, template length
_MEMBER_PREFIX = b'{"member": '
# Each spill stays in memory up to this many bytes: a small export's four spills (snapshot, records,
# central directory, manifest entries) cost no temporary file (creating and dropping one is ~0.5 ms
# of CPU on ext4 — most of the spill's cost for a 30-member export); a big one rolls over early.
SPOOL = 64 * 1024


class Spool:
    """Bytes appended in memory up to ``SPOOL``, then in an unlinked temporary file; read back by
    position. (``tempfile.SpooledTemporaryFile`` rolls over on ``fileno()``, which positional
    reads need.)"""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._mem: io.BytesIO | None = io.BytesIO()
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._mem is not None:
            if self._mem.tell() + len(data) <= SPOOL:
                self._mem.write(data)
                return
            self._file = tempfile.TemporaryFile(prefix=self._prefix)
            self._file.write(self._mem.getbuffer())
            self._mem = None
        assert self._file is not None
        self._file.write(data)

    def pread(self, size: int, pos: int) -> bytes:
        if self._mem is not None:
            return bytes(self._mem.getbuffer()[pos:pos + size])
        assert self._file is not None
        self._file.flush()
        return os.pread(self._file.fileno(), size, pos)

    def lines(self) -> Iterator[bytes]:
        """Every line from the start (a reader of its own: writing may go on afterwards)."""
        if self._mem is not None:
            yield from io.BytesIO(self._mem.getvalue())
            return
        assert self._file is not None
        self._file.flush()
        with open(os.dup(self._file.fileno()), "rb", closefd=True) as f:
            f.seek(0)
            yield from f

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._mem = None


class SpilledMembers(Sequence[SnapshotMember]):
    """A read-only sequence of snapshot members parsed on access from a file of JSON lines."""

    def __init__(self, file: Spool, offsets: array, lo: int = 0, hi: int | None = None) -> None:
        self._file = file
        self._offsets = offsets  # len(members) + 1 byte offsets: line i is offsets[i]..offsets[i + 1]
        self._lo = lo
        self._hi = len(offsets) - 1 if hi is None else hi
        self._last: tuple[int, SnapshotMember] | None = None

    def __len__(self) -> int:
        return self._hi - self._lo

    @overload
    def __getitem__(self, i: int) -> SnapshotMember: ...
    @overload
    def __getitem__(self, i: slice) -> SpilledMembers: ...

    def __getitem__(self, i: int | slice) -> SnapshotMember | SpilledMembers:
        if isinstance(i, slice):
            lo, hi, step = i.indices(len(self))
            if step != 1:
                raise ValueError("spilled snapshot members are sliced with step 1 only")
            return SpilledMembers(self._file, self._offsets, self._lo + lo, self._lo + max(lo, hi))
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        at = self._lo + i
        last = self._last  # read once: a view read by two threads must never mix two entries
        if last is not None and last[0] == at:
            return last[1]
        start, end = self._offsets[at], self._offsets[at + 1]
        line = self._file.pread(end - start, start).rstrip()
        if line.startswith(_MEMBER_PREFIX) and line.endswith(b"}"):  # as Snapshot.dumps writes it
            # pydantic's JSON parser: 2.5x json.loads; caching only keys (values would fill its
            # 16K-string cache with paths and ids: a bounded but needless ~1 MB)
            member = SnapshotMember.model_validate(from_json(line[len(_MEMBER_PREFIX):-1], cache_strings="keys"))
        else:
            member = SnapshotMember.model_validate(json.loads(line)["member"])
        self._last = (at, member)
        return member

    def __iter__(self) -> Iterator[SnapshotMember]:
        for i in range(len(self)):
            yield self[i]


async def load_snapshot(chunks: AsyncIterator[bytes], expected_sha256: str) -> Snapshot | None:
    """Read a snapshot (JSON Lines) from ``chunks`` into a :class:`Spool`, checking its SHA-256 on
    the way; None when the checksum does not match. Members stay in the spool (:class:`SpilledMembers`);
    the header and catalog-time errors are parsed."""
    file = Spool("grove-snapshot-")
    sha = hashlib.sha256()
    async for chunk in chunks:
        sha.update(chunk)
        file.write(chunk)
    if sha.hexdigest() != expected_sha256:
        file.close()
        return None
    header: SnapshotHeader | None = None
    errors: list[SnapshotError] = []
    offsets = array("Q")  # start of each member line, then the end of the last one
    pos = 0
    previous_was_member = False
    end = 0
    for line in file.lines():  # buffered, one line at a time
        is_member = line.startswith(b'{"member"')
        if not is_member and line.strip():
            obj = json.loads(line)
            if "header" in obj:
                header = SnapshotHeader.model_validate(obj["header"])
            elif "error" in obj:
                errors.append(SnapshotError.model_validate(obj["error"]))
            is_member = "member" in obj
        if is_member:
            if offsets and not previous_was_member:
                file.close()
                raise ValueError("snapshot member lines are not contiguous")
            offsets.append(pos)
        previous_was_member = is_member
        pos += len(line)
        if is_member:
            end = pos
    if header is None:
        file.close()
        raise ValueError("snapshot has no header line")
    offsets.append(end)
    members = SpilledMembers(file, offsets)
    # A Sequence where a tuple is declared: every reader indexes, slices, iterates or takes len().
    return Snapshot.model_construct(header=header, members=members, errors=tuple(errors))  # type: ignore[arg-type]


class SpilledRecords:
    """Member records kept as JSON lines in a :class:`Spool` and read back in order: a resume's
    record sink (:class:`~services.assembler.plan.ResumeFold`), one record in memory at a time."""

    def __init__(self) -> None:
        self._lines = Spool("grove-resume-")
        self.count = 0

    def append(self, record: MemberRecord) -> None:
        self._lines.write(record.model_dump_json().encode() + b"\n")
        self.count += 1

    def __iter__(self) -> Iterator[MemberRecord]:
        for line in self._lines.lines():
            yield MemberRecord.model_validate_json(line)

    def __len__(self) -> int:
        return self.count


class RecordSpill:
    """The member records of one stream, in order, spilled to temporary files as they arrive."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._n = len(snapshot.members)
        self._records = Spool("grove-records-")
        self._cd = Spool("grove-cd-")
        self._entries = Spool("grove-manifest-")
        self.count = 0
        self.ok_count = 0
        self.entries = 0  # manifest entries written (ok members of the snapshot)
        self.entries_bytes = 0
        self.skipped: list[MemberRecord] = []
        self.last: MemberRecord | None = None

    def append(self, record: MemberRecord) -> None:
        self._records.write(record.model_dump_json().encode() + b"\n")
        self.count += 1
        self.last = record
        if record.status != "ok":
            self.skipped.append(record)
            return
        self.ok_count += 1
        cd = record.cd.encode()
        self._cd.write(_CD.pack(record.offset, len(cd)) + cd)
        if record.index < self._n:
            text = manifest_entry_text(self._snapshot, record)
            self._entries.write(text if not self.entries else b",\n    " + text)
            self.entries_bytes += len(text) + (6 if self.entries else 0)
            self.entries += 1

    def extend(self, records: Iterable[MemberRecord]) -> None:
        for r in records:
            self.append(r)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[MemberRecord]:
        for line in self._records.lines():
            yield MemberRecord.model_validate_json(line)

    @overload
    def __getitem__(self, i: int) -> MemberRecord: ...
    @overload
    def __getitem__(self, i: slice) -> list[MemberRecord]: ...

    def __getitem__(self, i: int | slice) -> MemberRecord | list[MemberRecord]:
        """Like a list of the records (reads them all back: for tools and tests, not the stream)."""
        return list(self)[i]

    def cd_entries(self) -> Iterator[CDEntry]:
        """The ok members' central-directory templates with their offsets, in order."""
        pos = 0
        buf = b""
        while True:
            more = self._cd.pread(READ, pos)
            if not more:
                break
            pos += len(more)
            buf += more
            at = 0
            while len(buf) - at >= _CD.size:
                offset, length = _CD.unpack_from(buf, at)
                if len(buf) - at - _CD.size < length:
                    break
                start = at + _CD.size
                yield CDEntry(base64.b64decode(buf[start:start + length]), offset)
                at = start + length
            buf = buf[at:]
        if buf:
            raise ValueError("truncated central-directory spill")

    def entries_chunks(self) -> Iterator[bytes]:
        """manifest.json's member entries, formatted and joined as ``json.dumps(indent=2)`` would."""
        pos = 0
        while True:
            more = self._entries.pread(READ, pos)
            if not more:
                return
            pos += len(more)
            yield more

    def close(self) -> None:
        for f in (self._records, self._cd, self._entries):
            f.close()


def manifest_entry_text(snapshot: Snapshot, r: MemberRecord) -> bytes:
    """One entry of manifest.json's ``members`` list as ``json.dumps(doc, indent=2)`` writes it
    there (two levels deep: every line after the first indented by four more spaces; JSON strings
    hold no raw newline, so splitting on newlines is exact)."""
    text = jsontext.dumps(manifest_entry(snapshot, r))
    return text.replace("\n", "\n    ").encode()
