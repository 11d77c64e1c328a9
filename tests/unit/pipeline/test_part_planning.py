"""Part size, the part budget, and where a restarted assembler resumes."""

from __future__ import annotations

import pytest

from services.assembler.plan import (
    MemberRecord,
    MiB,
    PartPlanError,
    ResumeFold,
    check_part_budget,
    part_size,
    resume_point,
    rewind_target,
)


def test_part_size_is_at_least_the_minimum_and_keeps_s3_under_9000_parts() -> None:
    assert part_size(0) == 8 * MiB
    assert part_size(100 * MiB) == 8 * MiB
    big = 200 * 1024**3  # 200 GiB
    p = part_size(big)
    assert p == -(-big // 9000) and big / p <= 9000
    assert part_size(10 * MiB, min_part=256 * 1024) == 256 * 1024


def test_a_stream_that_outgrows_its_part_budget_fails_early() -> None:
    check_part_budget(9500)
    with pytest.raises(PartPlanError):
        check_part_budget(9501)


def rec(i: int, offset: int, length: int, status: str = "ok") -> MemberRecord:
    return MemberRecord(index=i, path=f"f{i}", source_id=str(i), status=status, offset=offset,  # type: ignore[arg-type]
                        length=length if status == "ok" else 0)


def test_resume_starts_at_the_straddling_member_after_the_last_logged_part() -> None:
    # members: 0 [0,40) 1 [40,95) 2 skipped, 3 [95, ...) ; parts of 50 bytes
    parts = [(1, 50, [rec(0, 0, 40)]), (2, 100, [rec(1, 40, 55), rec(2, 95, 0, "skipped")])]
    rp = resume_point(parts)
    assert (rp.next_part, rp.offset, rp.member_index, rp.member_offset) == (3, 100, 3, 95)
    assert [r.index for r in rp.records] == [0, 1, 2]


def test_resume_from_nothing_starts_at_zero() -> None:
    rp = resume_point([])
    assert (rp.next_part, rp.offset, rp.member_index, rp.member_offset, list(rp.records)) == (1, 0, 0, 0, [])


def test_parts_must_be_contiguous() -> None:
    with pytest.raises(ValueError):
        resume_point([(1, 10, []), (3, 30, [])])


@pytest.mark.parametrize("second", [[rec(0, 40, 10)], [rec(1, 40, 10), rec(1, 50, 10)]], ids=["earlier", "twice"])
def test_a_record_out_of_member_order_or_twice_is_refused(second: list[MemberRecord]) -> None:
    # the encoder writes each member's record once, in member order: anything else is a corrupt log,
    # and resuming from it would build a central directory with a member missing or listed twice
    with pytest.raises(ValueError, match="out of order or twice"):
        resume_point([(1, 40, [rec(0, 0, 40)]), (2, 80, second)])


def test_records_go_to_the_sink_as_each_part_is_folded() -> None:
    seen: list[int] = []

    class Sink(list[MemberRecord]):
        def append(self, r: MemberRecord) -> None:
            seen.append(r.index)
            super().append(r)

    fold = ResumeFold(Sink())
    fold.part(1, 50, [rec(0, 0, 40)])
    assert seen == [0]  # not held back until every part is read
    fold.part(2, 100, [rec(1, 40, 55)])
    rp = fold.point()
    assert seen == [0, 1] and [r.index for r in rp.records] == [0, 1]
    assert (rp.next_part, rp.offset, rp.member_index, rp.member_offset) == (3, 100, 2, 95)


def test_rewind_goes_back_to_the_part_holding_the_members_first_byte() -> None:
    assert rewind_target(member_offset=95, part=50, logged=5) == 2
    assert rewind_target(member_offset=0, part=50, logged=5) == 1
    assert rewind_target(member_offset=400, part=50, logged=3) == 4  # not logged yet: continue after
