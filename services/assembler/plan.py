"""Pure decisions of the assembler: part size, member records, and where to resume.

A member record is written to the part that holds the member's last byte (a skipped member: to
the part being filled when it was skipped). So after parts 1..k are logged, every member whose
bytes end at or before part k's end is known, and exactly one member — the straddler — may have
begun before that point without being finished: resume re-encodes it and drops the bytes that
are already uploaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

MiB = 1024 * 1024
MAX_PARTS = 10_000
FAIL_PARTS = 9_500


class PartPlanError(ValueError):
    """The archive cannot fit S3's 10,000-part limit with this part size."""


def part_size(total_bytes: int, min_part: int = 8 * MiB) -> int:
    """P = max(min_part, ceil(total / 9000)): leaves 10% headroom under S3's 10,000 parts."""
    return max(min_part, math.ceil(total_bytes / 9000))


def check_part_budget(part_number: int) -> None:
    if part_number > FAIL_PARTS:
        raise PartPlanError(
            f"the archive would need more than {FAIL_PARTS} parts; it is larger than the snapshot said"
        )


class MemberRecord(BaseModel):
    """Everything the central directory and manifest.json need about one member."""

    model_config = ConfigDict(frozen=True)

    index: int
    path: str
    source_id: str
    status: Literal["ok", "skipped"] = "ok"
    reason: str | None = None
    offset: int = 0
    length: int = 0
    size: int = 0
    crc32: int = 0
    sha256: str = ""
    content_type: str = ""
    cd: str = ""  # stream-zip's central-directory record for this member (base64), offset 0

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class ResumePoint:
    """Where the stream restarts: encode from ``member_index`` at archive offset ``member_offset``,
    emit only bytes from ``offset`` on, as part ``next_part``. ``records``: the logged parts' member
    records in member order, iterated once by the stream (the service keeps them in a spill file:
    65,536 records as models were 116 MB)."""

    next_part: int
    offset: int
    member_index: int
    member_offset: int
    records: Iterable[MemberRecord]


class RecordSink(Protocol):
    def append(self, record: MemberRecord, /) -> None: ...
    def __iter__(self) -> Iterator[MemberRecord]: ...


class ResumeFold:
    """Folds the logged parts, one at a time and in order, into a :class:`ResumePoint`; their records
    go to ``sink`` as they come (a list by default), so nothing holds every part's records at once."""

    def __init__(self, sink: RecordSink | None = None) -> None:
        self.sink: RecordSink = [] if sink is None else sink
        self.parts = self.end = self.next_index = self.last_ok_end = 0

    def part(self, number: int, byte_end: int, records: Iterable[MemberRecord]) -> None:
        if number != self.parts + 1:
            raise ValueError(f"parts are not contiguous at {number}")
        for r in records:
            # each member's record goes to one part, in member order (the encoder settles them in order)
            if r.index < self.next_index:
                raise ValueError(f"part {number}: member {r.index}'s record is out of order or twice")
            self.next_index = r.index + 1
            if r.status == "ok":
                self.last_ok_end = max(self.last_ok_end, r.end)
            self.sink.append(r)
        self.parts, self.end = number, byte_end

    def point(self) -> ResumePoint:
        return ResumePoint(self.parts + 1, self.end, self.next_index, self.last_ok_end, self.sink)


def resume_point(parts: Iterable[tuple[int, int, Iterable[MemberRecord]]],
                 sink: RecordSink | None = None) -> ResumePoint:
    """From logged parts ``(number, byte_end, records)`` numbered 1..k contiguously."""
    fold = ResumeFold(sink)
    for number, byte_end, records in parts:
        fold.part(number, byte_end, records)
    return fold.point()


def rewind_target(member_offset: int, part: int, logged: int) -> int:
    """Number of the first part to redo when the member starting at ``member_offset`` must go."""
    return min(member_offset // part + 1, logged + 1)
