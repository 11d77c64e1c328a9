"""Whole archives (concat of members + our central directory) against real readers."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest
from stream_unzip import stream_unzip

from shared.archive import level_for, zipmember
from shared.archive.central import CDEntry, central_directory
from shared.archive.zipmember import EncodedMember
from tests.unit.archive.builders import assemble, build_archive, encode_all
from tests.unit.archive.tools import READERS, check_with_reader, check_with_zipfile

CONTENTS = {
    "README.md": b"# Export\n" * 50,
    "posts/héllo wörld.md": "---\ntitle: 'yes'\n---\nbody ✓\n".encode() * 100,
    "media/photo.jpg": random.Random(1).randbytes(1_500_000),
    "media/empty.png": b"",
    "files/docs/notes.txt": b"a" * 2_200_000,
    "manifest.json": b"[]",
}


def members(contents: dict[str, bytes]) -> list[tuple[str, bytes, int]]:
    levels = {name: level_for("", name) for name in contents}
    return [(name, data, levels[name]) for name, data in contents.items()]


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "grove-export-ada-2024-05-01.zip"
    path.write_bytes(build_archive(members(CONTENTS)))
    return path


@pytest.fixture(scope="module")
def many_members() -> list[tuple[bytes, EncodedMember]]:
    return encode_all((f"posts/{i:05d}.md", b"post %d" % i, 6) for i in range(65_536))


@pytest.fixture(scope="module")
def many_archive(tmp_path_factory: pytest.TempPathFactory, many_members: list) -> Path:
    path = tmp_path_factory.mktemp("many") / "many.zip"
    path.write_bytes(assemble(many_members))
    return path


@pytest.fixture(scope="module")
def sparse_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two members near the start, three past 4 GiB; the hole between is never written (sparse)."""
    path = tmp_path_factory.mktemp("sparse") / "sparse.zip"
    entries = []
    with path.open("wb") as out:
        for index, (data, result) in enumerate(encode_all(members(CONTENTS))[:5]):
            if index == 2:
                out.seek((1 << 32) + 4093)
            entries.append(CDEntry(result.cd_template, out.tell()))
            out.write(data)
        for chunk in central_directory(entries, out.tell()):
            out.write(chunk)
    return path


def test_an_assembled_archive_opens_in_zipfile_with_the_same_contents(small_archive: Path) -> None:
    infos = check_with_zipfile(small_archive)
    assert [info.filename for info in infos] == list(CONTENTS)
    with zipfile.ZipFile(small_archive) as opened:
        assert {name: opened.read(name) for name in CONTENTS} == CONTENTS
        assert opened.getinfo("media/photo.jpg").date_time == (2024, 5, 1, 12, 30, 4)
        assert opened.getinfo("README.md").external_attr >> 16 == 0o100644


def test_a_streaming_reader_that_ignores_the_central_directory_gets_the_same_contents(
    small_archive: Path,
) -> None:
    data = small_archive.read_bytes()
    chunks = (data[i:i + 65_536] for i in range(0, len(data), 65_536))
    read = {name.decode(): b"".join(body) for name, _, body in stream_unzip(chunks)}
    assert read == CONTENTS


def test_the_bytes_of_a_member_are_the_same_wherever_it_sits_in_the_archive() -> None:
    alone = build_archive([("b.txt", b"bee" * 999, 6)])
    member_b = alone[: alone.index(b"PK\x01\x02")]
    after_others = build_archive(
        [("a.txt", b"ay", 6), ("c/d.bin", b"\0" * 5000, 0), ("b.txt", b"bee" * 999, 6)]
    )
    assert member_b in after_others


def test_a_zip64_member_opens_in_zipfile_and_streaming_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipmember, "ZIP64_THRESHOLD", 100)
    archive = build_archive([("small.txt", b"s" * 100, 6), ("big.bin", b"b" * 101, 0), ("after", b"x", 6)])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.testzip() is None
        assert opened.read("big.bin") == b"b" * 101
    read = {name: b"".join(body) for name, _, body in stream_unzip([archive])}
    assert read == {b"small.txt": b"s" * 100, b"big.bin": b"b" * 101, b"after": b"x"}


def test_65536_members_get_a_zip64_end_record_and_open_in_zipfile(many_archive: Path) -> None:
    tail = many_archive.read_bytes()[-98:]
    assert tail.startswith(b"PK\x06\x06")
    infos = check_with_zipfile(many_archive)
    assert len(infos) == 65_536 and infos[-1].filename == "posts/65535.md"


def test_exactly_65535_members_also_open_in_zipfile(many_members: list) -> None:
    with zipfile.ZipFile(io.BytesIO(assemble(many_members[:65_535]))) as opened:
        assert len(opened.infolist()) == 65_535
        assert opened.read("posts/65534.md") == b"post 65534"


def test_members_past_4_gib_are_found_through_the_zip64_offset_extra(sparse_archive: Path) -> None:
    infos = check_with_zipfile(sparse_archive)
    assert [info.header_offset > 1 << 32 for info in infos] == [False, False, True, True, True]
    with zipfile.ZipFile(sparse_archive) as opened:
        assert opened.read("media/photo.jpg") == CONTENTS["media/photo.jpg"]
        assert opened.read("files/docs/notes.txt") == CONTENTS["files/docs/notes.txt"]


@pytest.mark.parametrize("reader", list(READERS))
def test_the_small_archive_passes_third_party_readers(reader: str, small_archive: Path) -> None:
    check_with_reader(reader, small_archive)


@pytest.mark.parametrize("reader", list(READERS))
def test_the_65536_member_archive_passes_third_party_readers(reader: str, many_archive: Path) -> None:
    check_with_reader(reader, many_archive)


@pytest.mark.parametrize("reader", list(READERS))
def test_the_archive_with_offsets_past_4_gib_passes_third_party_readers(
    reader: str, sparse_archive: Path,
) -> None:
    check_with_reader(reader, sparse_archive)
