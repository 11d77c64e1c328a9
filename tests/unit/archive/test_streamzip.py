"""The encoder's copy of stream-zip writes exactly what the installed stream-zip writes, and it is
the copy that skips evaluating annotations (so the per-member saving cannot silently go)."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import stream_zip as installed
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive import streamzip, zipmember
from shared.archive.zipmember import MODE
from tests.unit.archive.reference_stored import compressobj_for

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def _zip(module, files: list[tuple[str, bytes, int, bool]]) -> bytes:  # type: ignore[no-untyped-def]
    levels = iter([level for _, _, level, _ in files])
    return b"".join(module.stream_zip(
        [(name, WHEN, MODE, module.ZIP_64 if zip64 else module.ZIP_32, [data[:7], data[7:]])
         for name, data, _, zip64 in files],
        chunk_size=256 * 1024, get_compressobj=lambda: compressobj_for(next(levels)), extended_timestamps=True))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20),
                          st.binary(max_size=3000) | st.just(b"text " * 20_000), st.sampled_from([0, 6]),
                          st.booleans()), min_size=1, max_size=4))
def test_the_copy_writes_the_installed_modules_bytes(files: list[tuple[str, bytes, int, bool]]) -> None:
    files = [(f"{i}/{name}", data, level, zip64) for i, (name, data, level, zip64) in enumerate(files)]
    assert _zip(streamzip, files) == _zip(installed, files)


def test_the_encoder_uses_the_copy_and_the_copy_defers_annotations() -> None:
    assert zipmember.stream_zip is streamzip.stream_zip
    assert streamzip.stream_zip is not installed.stream_zip
    assert streamzip.stream_zip.__annotations__ == {
        "files": "Iterable[MemberFile]", "chunk_size": "int", "get_compressobj": "_CompressObjGetter",
        "extended_timestamps": "bool", "password": "Optional[str]",
        "get_crypto_random": "Callable[[int], bytes]", "return": "Iterable[bytes]"}
    assert installed.stream_zip.__annotations__["chunk_size"] is int  # the installed module: evaluated


def test_installed_stream_zip_is_left_as_it_was() -> None:
    assert installed.zlib is zlib  # only the copy computes CRCs through ISA-L
