from __future__ import annotations

import io
import random
import zlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_zip import ZIP_32, ZIP_64, stream_zip

from shared.archive import zipmember
from shared.archive.blocks import BlockDeflate
from shared.archive.stored import MAX_STORED
from shared.archive.trailer import parse_trailer
from shared.archive.zipmember import (
    BLOCK,
    MODE,
    MemberEncoder,
    SourceSizeMismatch,
    clamp_time,
    encode_member,
    fingerprint,
    reblock,
)
from tests.unit.archive.builders import WHEN
from tests.unit.archive.reference_stored import compressobj_for
from tests.unit.archive.zipparse import parse_cd_record

TEXT = b"".join(b"line %d of a compressible text member\n" % i for i in range(80_000))  # ~3 MB
RANDOM = random.Random(7).randbytes(3_000_000)


def split_randomly(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("level", [0, 6])
@pytest.mark.parametrize("data", [RANDOM, TEXT], ids=["random", "text"])
def test_member_bytes_do_not_depend_on_input_chunking(level: int, data: bytes) -> None:
    reference, _ = encode_member("m.bin", WHEN, len(data), level, [data])
    chunkings = [chunked(data, 3_000_000), chunked(data, BLOCK + 1), chunked(data, 65_536)]
    chunkings += [split_randomly(data, seed) for seed in range(3)]
    for chunks in chunkings:
        assert encode_member("m.bin", WHEN, len(data), level, chunks)[0] == reference


@pytest.mark.parametrize("level", [0, 6])
def test_one_and_seven_byte_chunks_give_the_same_member_bytes(level: int) -> None:
    data = RANDOM[:150_000] + TEXT[:150_000]
    reference, _ = encode_member("m", WHEN, len(data), level, [data])
    assert encode_member("m", WHEN, len(data), level, chunked(data, 1))[0] == reference
    longer = RANDOM[: BLOCK + 100_000]  # crosses a block boundary
    reference, _ = encode_member("m", WHEN, len(longer), level, [longer])
    assert encode_member("m", WHEN, len(longer), level, chunked(longer, 7))[0] == reference


def test_member_bytes_match_what_stream_zip_writes_after_another_member() -> None:
    first, second = b"first member " * 1000, RANDOM[:200_000]
    leading, _ = encode_member("a.txt", WHEN, len(first), 0, [first])
    alone, _ = encode_member("b.bin", WHEN, len(second), 0, [second])
    both = b"".join(stream_zip(
        [("a.txt", WHEN, MODE, ZIP_32, reblock([first])), ("b.bin", WHEN, MODE, ZIP_32, reblock([second]))],
        get_compressobj=lambda: compressobj_for(0),  # what the encoder uses for level 0
    ))
    assert both[: len(leading)] == leading
    assert both[len(leading): len(leading) + len(alone)] == alone


def stream_zip_member(name: str, when: datetime, data: bytes, zip64: bool,
                      level: int = 0) -> tuple[bytes, zipmember.EncodedMember]:
    """A member as the encoder wrote it through stream-zip before it wrote them itself (level 0, and
    deflated members under one block): the member alone, its trailer parsed off. From one block on,
    a deflated member's compressobj is the block runs' (shared/archive/blocks.py), in this thread."""
    def compressobj() -> object:
        return compressobj_for(level) if level == 0 or len(data) < BLOCK else BlockDeflate(level, len(data))

    output = b"".join(stream_zip([(name, clamp_time(when), MODE, ZIP_64 if zip64 else ZIP_32, reblock([data]))],
                                 chunk_size=256 * 1024, get_compressobj=compressobj))
    t = parse_trailer(output[-4096:], len(output[:-4096]), zip64)
    return output[:t.member_length], zipmember.EncodedMember(t.crc32, t.compressed_size, t.uncompressed_size,
                                                              t.member_length, zip64, t.cd_record)


EDGES = [0, 1, MAX_STORED - 1, MAX_STORED, MAX_STORED + 1, BLOCK, BLOCK + 1, 3 * MAX_STORED]


@settings(max_examples=120, deadline=None)
@given(name=st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=40),
       when=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)),
       size=st.sampled_from(EDGES) | st.integers(0, 3 * MAX_STORED), zip64=st.booleans(),
       cuts=st.lists(st.integers(0, 3 * MAX_STORED), max_size=6))
def test_level_0_members_are_byte_for_byte_what_stream_zip_wrote(name: str, when: datetime, size: int,
                                                                  zip64: bool, cuts: list[int]) -> None:
    data = RANDOM[:size]
    points = sorted(c for c in cuts if c <= size)
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, size], strict=True)]
    encoder = MemberEncoder(f"media/{name}", when, size, 0, chunks)
    encoder.zip64 = zip64  # the layout the size would choose above 4 GiB, without 4 GiB of bytes
    assert (b"".join(encoder), encoder.result) == stream_zip_member(f"media/{name}", when, data, zip64)


SMALL_EDGES = [0, 1, 2, 100, 4096, BLOCK - 1]
PROSE = b"".join(b"%d: a post about the garden, line after line of it\n" % i for i in range(30_000))


@settings(max_examples=120, deadline=None)
@given(name=st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=40),
       when=st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2045, 1, 1), timezones=st.just(UTC)),
       size=st.sampled_from(SMALL_EDGES) | st.integers(0, BLOCK - 1), level=st.integers(1, 9),
       text=st.booleans(), zip64=st.booleans(), cuts=st.lists(st.integers(0, BLOCK - 1), max_size=6))
def test_deflated_members_under_one_block_are_byte_for_byte_what_stream_zip_wrote(
        name: str, when: datetime, size: int, level: int, text: bool, zip64: bool, cuts: list[int]) -> None:
    data = (PROSE if text else RANDOM)[:size]
    points = sorted(c for c in cuts if c <= size)
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, size], strict=True)]
    encoder = MemberEncoder(f"posts/{name}", when, size, level, chunks)
    encoder.zip64 = zip64  # the layout above 4 GiB, held here too
    assert (b"".join(encoder), encoder.result) == stream_zip_member(f"posts/{name}", when, data, zip64, level)


@pytest.mark.parametrize("size", [BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK])
def test_deflated_members_either_side_of_one_block_match_stream_zip(size: int) -> None:
    data = (PROSE * 2)[:size]
    encoder = MemberEncoder("posts/long.md", WHEN, size, 6, chunked(data, 65_536))
    assert (b"".join(encoder), encoder.result) == stream_zip_member("posts/long.md", WHEN, data, False, 6)


@pytest.mark.parametrize("declared", [999, 1001])
def test_a_small_deflated_member_whose_source_differs_in_size_yields_nothing(declared: int) -> None:
    closed = []

    def source():
        try:
            yield PROSE[:600]
            yield PROSE[600:1000]
        finally:
            closed.append(True)

    out = []
    with pytest.raises(SourceSizeMismatch):
        for chunk in MemberEncoder("posts/a.md", WHEN, declared, 6, source()):
            out.append(chunk)
    assert out == [] and closed == [True]


def test_a_small_member_deflated_ahead_is_framed_from_those_bytes_and_checked_against_its_source() -> None:
    data = PROSE[:300_000]
    ahead = zipmember.deflate(data, 6)
    alone, result = encode_member("index.json", WHEN, len(data), 6, [data])
    encoder = MemberEncoder("index.json", WHEN, len(data), 6, [data], ahead)
    assert (b"".join(encoder), encoder.result) == (alone, result)
    changed = data[:-1] + b"!"
    with pytest.raises(SourceSizeMismatch, match="deflated ahead"):
        b"".join(MemberEncoder("index.json", WHEN, len(data), 6, [changed], ahead))


def test_result_reports_crc_sizes_length_and_an_offset_zero_cd_template() -> None:
    data, result = encode_member("dir/ünïcode.txt", WHEN, len(TEXT), 6, [TEXT])
    assert result.crc32 == zlib.crc32(TEXT)
    assert result.uncompressed_size == len(TEXT)
    assert result.length == len(data)
    assert not result.zip64
    record = parse_cd_record(result.cd_template)
    assert record.length == len(result.cd_template)
    assert (record.offset, record.crc32, record.name) == (0, result.crc32, "dir/ünïcode.txt".encode())
    assert (record.compressed_size, record.uncompressed_size) == (result.compressed_size, len(TEXT))
    assert data.endswith(b"PK\x07\x08" + result.crc32.to_bytes(4, "little")
                         + result.compressed_size.to_bytes(4, "little") + len(TEXT).to_bytes(4, "little"))


def test_a_300_byte_name_and_an_empty_member_encode_fine() -> None:
    name = "é" * 150
    data, result = encode_member(name, WHEN, 0, 6, [])
    assert result.length == len(data) and result.uncompressed_size == 0
    assert parse_cd_record(result.cd_template).name == name.encode()


def test_declared_size_above_the_zip_auto_bound_selects_zip64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 10)
    data, result = encode_member("big.bin", WHEN, 11, 0, [b"x" * 11])
    record = parse_cd_record(result.cd_template)
    assert result.zip64 and record.version_needed == 45
    assert (record.offset, record.uncompressed_size) == (0, 11)
    assert data.endswith(b"PK\x07\x08" + result.crc32.to_bytes(4, "little")
                         + result.compressed_size.to_bytes(8, "little") + (11).to_bytes(8, "little"))


def test_a_shorter_source_raises_before_the_members_last_bytes_are_yielded() -> None:
    full, _ = encode_member("m", WHEN, len(RANDOM), 0, [RANDOM])
    encoder = MemberEncoder("m", WHEN, len(RANDOM) + 1, 0, [RANDOM])
    out = io.BytesIO()
    with pytest.raises(SourceSizeMismatch):
        for chunk in encoder:
            out.write(chunk)
    assert len(out.getvalue()) < len(full)
    with pytest.raises(RuntimeError):
        _ = encoder.result


def test_a_longer_source_raises_as_soon_as_it_passes_the_declared_size() -> None:
    fed = []

    def source():
        for block in chunked(RANDOM, BLOCK):
            fed.append(len(block))
            yield block

    with pytest.raises(SourceSizeMismatch) as raised:
        b"".join(MemberEncoder("m", WHEN, BLOCK + 10, 0, source()))
    assert isinstance(raised.value, ValueError)
    assert len(fed) == 2  # stopped at the block that overflowed, not at the end of the source


def test_closing_the_encoder_early_closes_the_source_at_once() -> None:
    closed = []

    def endless_source():
        try:
            while True:
                yield RANDOM[:BLOCK]
        finally:
            closed.append(True)

    chunks = iter(MemberEncoder("m", WHEN, 50 * BLOCK, 0, endless_source()))
    while not closed and len(next(chunks)) < 1000:  # past the header: the source is being read
        pass
    chunks.close()  # what cancelling an export does
    assert closed == [True]


@pytest.mark.parametrize("name", ["", "folder/", "bad\ud800"])
def test_empty_directory_like_or_unencodable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        MemberEncoder(name, WHEN, 0, 6, [])


def test_an_encoder_cannot_be_iterated_twice() -> None:
    encoder = MemberEncoder("m", WHEN, 1, 6, [b"x"])
    b"".join(encoder)
    with pytest.raises(RuntimeError):
        iter(encoder)


def test_times_are_clamped_to_what_the_zip_headers_can_hold() -> None:
    assert clamp_time(datetime(1970, 1, 1, tzinfo=UTC)) == datetime(1980, 1, 1, tzinfo=UTC)
    assert clamp_time(datetime(2200, 1, 1, tzinfo=UTC)) == datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC)
    assert clamp_time(datetime(2024, 1, 1, 12, 0, 0, 999, tzinfo=UTC)).microsecond == 0
    with pytest.raises(ValueError):
        clamp_time(datetime(2024, 1, 1))


def test_the_same_instant_in_another_zone_gives_the_same_bytes() -> None:
    elsewhere = WHEN.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert encode_member("m", elsewhere, 1, 6, [b"x"]) == encode_member("m", WHEN, 1, 6, [b"x"])


def test_out_of_range_times_still_encode() -> None:
    for moment in (datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)):
        _, result = encode_member("m", moment, 1, 6, [b"x"])
        assert result.uncompressed_size == 1


def test_fingerprint_names_everything_that_can_change_member_bytes() -> None:
    stamp = fingerprint()
    assert stamp == fingerprint((0, 6))
    assert zlib.ZLIB_RUNTIME_VERSION in stamp and "stream-zip0.0." in stamp and f"B{BLOCK}" in stamp
    assert " P32K " in stamp  # large deflated members: block runs primed with 32 KiB (blocks.py)
    assert fingerprint((0, 9)) != stamp
    assert len(stamp) < 120
