from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.archive import zipmember
from shared.archive.central import CDEntry, central_directory, end_records, patch_offset
from tests.unit.archive.builders import WHEN
from tests.unit.archive.zipparse import parse_cd_record

FOUR_GIB = 1 << 32


def template(name: str = "posts/hello.md", data: bytes = b"hello") -> bytes:
    return zipmember.encode_member(name, WHEN, len(data), 6, [data])[1].cd_template


TEMPLATE = template()


def zip64_template(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 1)
    return template("media/big.mp4", b"big!")


def test_a_small_offset_is_written_into_the_32_bit_field_and_nothing_else_changes() -> None:
    original = template()
    patched = patch_offset(original, 0x12345678)
    assert len(patched) == len(original)
    assert patched[42:46] == struct.pack("<I", 0x12345678)
    assert patched[:42] == original[:42] and patched[46:] == original[46:]


def test_an_offset_past_4_gib_moves_into_a_zip64_extra_holding_only_the_offset() -> None:
    original = template()
    record = parse_cd_record(patch_offset(original, 5 * FOUR_GIB + 17))
    before = parse_cd_record(original)
    assert record.offset == 5 * FOUR_GIB + 17
    assert record.extras[1] == struct.pack("<Q", 5 * FOUR_GIB + 17)  # no sizes in it
    assert record.extra_order == [1, *before.extra_order]
    assert record.extras[0x5455] == before.extras[0x5455]  # the UT timestamp survives
    assert (record.crc32, record.compressed_size, record.uncompressed_size, record.name) == (
        before.crc32, before.compressed_size, before.uncompressed_size, before.name)
    assert record.version_needed == 45 and record.version_made_by & 0xFF == 45
    assert record.version_made_by >> 8 == before.version_made_by >> 8  # host system kept (Unix)


@pytest.mark.parametrize(("offset", "zip64"), [(0xFFFFFFFE, False), (0xFFFFFFFF, True), (FOUR_GIB, True)])
def test_the_0xffffffff_sentinel_itself_needs_zip64(offset: int, zip64: bool) -> None:
    record = parse_cd_record(patch_offset(template(), offset))
    assert record.offset == offset
    assert (1 in record.extras) == zip64


@pytest.mark.parametrize("offset", [0, 1234, FOUR_GIB + 1, 2**64 - 1])
def test_a_zip64_member_gets_its_offset_patched_inside_its_own_zip64_extra(
    monkeypatch: pytest.MonkeyPatch, offset: int,
) -> None:
    original = zip64_template(monkeypatch)
    record = parse_cd_record(patch_offset(original, offset))
    assert len(patch_offset(original, offset)) == len(original)
    assert (record.offset, record.uncompressed_size, record.compressed_size) == (
        offset, 4, parse_cd_record(original).compressed_size)
    assert len(record.extras[1]) == 24


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_any_offset_reads_back_from_the_patched_record(offset: int) -> None:
    assert parse_cd_record(patch_offset(TEMPLATE, offset)).offset == offset


def test_negative_or_too_large_offsets_are_refused() -> None:
    for offset in (-1, 2**64):
        with pytest.raises(ValueError):
            patch_offset(TEMPLATE, offset)


def test_a_member_at_or_after_the_central_directory_is_refused() -> None:
    with pytest.raises(ValueError):
        b"".join(central_directory([CDEntry(TEMPLATE, 100)], cd_offset=100))


def test_small_archives_get_only_the_classic_eocd() -> None:
    records = list(central_directory([CDEntry(TEMPLATE, 0), CDEntry(TEMPLATE, 50)], cd_offset=100))
    assert len(records) == 3  # one chunk per record, then the end records
    assert records[-1] == struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 2, 2, 2 * len(TEMPLATE), 100, 0)


@pytest.mark.parametrize(
    ("count", "cd_size", "cd_offset"),
    [
        (0xFFFF, 100, 100), (70_000, 100, 100), (1, 0xFFFFFFFF, 100), (1, 100, 0xFFFFFFFF),
        (1, 100, 9 * FOUR_GIB),
    ],
)
def test_zip64_end_records_appear_when_a_classic_field_would_overflow(
    count: int, cd_size: int, cd_offset: int,
) -> None:
    tail = end_records(count, cd_size, cd_offset)
    assert len(tail) == 56 + 20 + 22
    sig, size, made, needed, _, _, on_disk, total, z_size, z_offset = struct.unpack_from("<4sQHHIIQQQQ", tail)
    assert (sig, size, made, needed) == (b"PK\x06\x06", 44, 45, 45)
    assert (on_disk, total, z_size, z_offset) == (count, count, cd_size, cd_offset)
    assert struct.unpack_from("<4sIQI", tail, 56) == (b"PK\x06\x07", 0, cd_offset + cd_size, 1)
    eocd = struct.unpack_from("<4sHHHHIIH", tail, 76)
    assert eocd[3:7] == (min(count, 0xFFFF), min(count, 0xFFFF), min(cd_size, 0xFFFFFFFF),
                         min(cd_offset, 0xFFFFFFFF))


def test_65534_entries_still_fit_the_classic_eocd() -> None:
    assert len(end_records(0xFFFE, 100, 100)) == 22
