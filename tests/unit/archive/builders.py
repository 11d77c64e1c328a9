"""Build whole archives from in-memory members the way the assembler will: concat + our CD."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from shared.archive.central import CDEntry, central_directory
from shared.archive.zipmember import EncodedMember, encode_member

WHEN = datetime(2024, 5, 1, 12, 30, 4, tzinfo=UTC)


def encode_all(members: Iterable[tuple[str, bytes, int]]) -> list[tuple[bytes, EncodedMember]]:
    """Encode (name, content, level) members one by one, each from a single chunk."""
    return [encode_member(name, WHEN, len(data), level, [data]) for name, data, level in members]


def assemble(encoded: Iterable[tuple[bytes, EncodedMember]]) -> bytes:
    """concat(member bytes) + central_directory(entries at their offsets)."""
    parts: list[bytes] = []
    entries: list[CDEntry] = []
    offset = 0
    for data, result in encoded:
        entries.append(CDEntry(result.cd_template, offset))
        parts.append(data)
        offset += len(data)
    return b"".join(parts) + b"".join(central_directory(entries, offset))


def build_archive(members: Iterable[tuple[str, bytes, int]]) -> bytes:
    return assemble(encode_all(members))
