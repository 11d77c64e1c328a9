"""Pure decisions of the assembler: part size, member records, and where to resume.

A member record is written to the part that holds the member's last byte (a skipped member: to
the part being filled when it was skipped). So after parts 1..k are logged, every member whose
bytes end at or before part k's end is known, and exactly one member — the straddler — may have
begun before that point without being finished: resume re-encodes it and drops the bytes that
are already uploaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

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
    emit only bytes from ``offset`` on, as part ``next_part``."""

    next_part: int
    offset: int
    member_index: int
    member_offset: int
    records: tuple[MemberRecord, ...]


def resume_point(parts: list[tuple[int, int, list[MemberRecord]]]) -> ResumePoint:
    """From logged parts ``(number, byte_end, records)`` numbered 1..k contiguously."""
    records: list[MemberRecord] = []
    end = 0
    for expected, (number, byte_end, recs) in enumerate(parts, start=1):
        if number != expected:
            raise ValueError(f"parts are not contiguous at {number}")
        records.extend(recs)
        end = byte_end
    records.sort(key=lambda r: r.index)
    last_ok_end = max((r.end for r in records if r.status == "ok"), default=0)
    next_index = records[-1].index + 1 if records else 0
    return ResumePoint(len(parts) + 1, end, next_index, last_ok_end, tuple(records))


def rewind_target(member_offset: int, part: int, logged: int) -> int:
    """Number of the first part to redo when the member starting at ``member_offset`` must go."""
    return min(member_offset // part + 1, logged + 1)
