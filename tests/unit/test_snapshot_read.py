"""Reading the consumers a snapshot would restore, without a server: the S2 block decoder on each of
S2's copy forms, both archive formats nats-server restores (NATSARC1, and the tar of servers before
2.15), and everything nats-server never writes refused rather than read otherwise than the server."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from typing import Any

import pytest

from services.operator.snapshotread import NotASnapshot, consumers, s2_block
from tests.support.backups import NATSARC, archive_entry, archive_snapshot, s2_framed


def test_an_s2_block_decodes_literals_copies_and_repeats() -> None:
    ops = (b"\x0cabcd"  # literal of 4
           + b"\x01\x04"  # copy1: 4 bytes from 4 back
           + b"\x01\x00"  # S2 repeat: 4 more from the same offset
           + b"\x0a\x02\x00"  # copy2: 3 from 2 back, overlapping itself
           + b"\x07\x0c\x00\x00\x00"  # copy4: 2 from 12 back
           + b"\x15\x00\x02")  # S2 repeat, one extra length byte: 2 + 4 + 4 = 10 from 12 back
    want = b"abcdabcdabcdcdcda" + b"bcdabcdcdc"  # the last: 10 from position 5
    assert s2_block(bytes([len(want)]) + ops) == want


def _copy_a_byte_at_a_time(ops: list[tuple[int, int]], literal: bytes) -> bytes:
    """What S2 defines a block's copies as: each byte from ``offset`` back, one at a time."""
    dst = bytearray(literal)
    for offset, length in ops:
        for _ in range(length):
            dst.append(dst[-offset])
    return bytes(dst)


def test_overlapping_copies_decode_as_a_byte_at_a_time() -> None:
    literal = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ!?"  # 64 bytes
    ops = [(offset, length) for offset in (1, 2, 3, 7, 63, 64) for length in (4, 5, offset, offset + 1, 64, 200)]
    block = b"\xf0" + (len(literal) - 1).to_bytes(1, "little") + literal  # a literal, length in one byte after
    for offset, length in ops:  # copy2: length 1 to 64, a 16-bit offset
        while length:
            n = min(length, 64)
            block += bytes([(n - 1) << 2 | 2]) + offset.to_bytes(2, "little")
            length -= n
    want = _copy_a_byte_at_a_time(ops, literal)
    size = len(want)
    assert s2_block(bytes([size & 0x7F | 0x80, size >> 7]) + block) == want


def test_a_long_overlapping_run_decodes_in_a_moment() -> None:
    """A 4 MiB run of one byte, 14 bytes compressed: copied an offset at a time, each took a second or more."""
    size = 4 << 20
    run = (b"\x80\x80\x80\x02" + b"\x00 "  # 4 MiB: one literal byte,
           + b"\x0e\x01\x00"  # a copy2 of 4 from 1 back,
           + b"\x1d\x00" + (size - 1 - 4 - 4 - 65536).to_bytes(3, "little"))  # an S2 repeat of the rest
    started = time.monotonic()
    for _ in range(8):
        assert s2_block(run) == b" " * size
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("block", "says"), [
    (b"\x04\x01\x00", "a copy from outside its block"),  # a repeat before any offset
    (b"\x05\x0cabcd", "a block shorter than it says"),
    (b"\x02\x0cabcd", "a literal runs past its block"),
    (b"\x08\x0cabcd\x01\x09", "a copy from outside its block"),
])
def test_a_broken_s2_block_is_refused(block: bytes, says: str) -> None:
    with pytest.raises(NotASnapshot, match=says):
        s2_block(block)


PUSH = {"durable_name": "leak", "name": "leak", "deliver_subject": "leak.here", "ack_policy": "none"}


def test_the_archive_format_yields_its_consumers() -> None:
    assert consumers(io.BytesIO(archive_snapshot({"leak": PUSH}))) == {"leak": PUSH}
    pending = json.dumps({"config": PUSH, "state": {"pending": {"7": {"Sequence": 1, "Timestamp": 2}}}}).encode()
    data = s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":1}') + archive_entry("consumers/x", pending))
    assert consumers(io.BytesIO(data)) == {"x": PUSH}  # a consumer's pending messages: Go's own untagged keys


def _tar(entries: list[tuple[str, bytes]], **info: Any) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            member = tarfile.TarInfo(name)
            member.size, member.mtime = len(data), 1_700_000_000.25  # sub-second: a PAX mtime, as Go writes
            for k, v in info.items():
                setattr(member, k, v)
            tar.addfile(member, io.BytesIO(data))
    return s2_framed(out.getvalue())


def _old(consumer: dict[str, Any]) -> bytes:
    """A tar snapshot as nats-server before 2.15 writes one: messages, then obs/<name>/meta.inf."""
    meta = json.dumps({"Created": "2025-01-01T00:00:00Z", "Name": consumer["durable_name"], **consumer}).encode()
    return _tar([("meta.inf", b"{}"), ("meta.sum", b"0"), ("msgs/1.blk", os.urandom(300_000)),
                 ("msgs/index.db", b"x"), (f"obs/{consumer['durable_name']}/meta.inf", meta),
                 (f"obs/{consumer['durable_name']}/o.dat", b"state")])


def test_the_tar_format_yields_its_consumers_past_the_messages() -> None:
    assert consumers(io.BytesIO(_old(PUSH))) == {"leak": PUSH}


CONFIG_KEYS = json.dumps({"config": {"durable_name": "a"}, "Config": PUSH}).encode()
NOT_WRITTEN: dict[str, tuple[bytes, str]] = {
    "no S2 stream identifier": (b"\x01\x05\x00\x00\x00\x00\x00\x00x", "no S2 stream identifier"),
    "a tar symlink": (_tar([("obs/a/meta.inf", b"")], type=tarfile.SYMTYPE, linkname="/etc"), "a tar entry nats-server"),
    "a tar name leaving its folder": (_tar([("obs/../obs/a/meta.inf", b"{}")]), "a tar entry nats-server"),
    "a tar entry twice": (_tar([("meta.inf", b"{}"), ("meta.inf", b"{}")]), "a tar entry nats-server"),
    "a PAX path record": (_tar([("obs/" + "x" * 120 + "/meta.inf", b"{}")]), "a PAX record nats-server does not"),
    "a consumer key in another case": (_tar([("obs/a/meta.inf", json.dumps({"Deliver_Subject": "x"}).encode())]),
                                       "JSON keys nats-server does not write"),
    "a second config in another case": (s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":1}')
                                                  + archive_entry("consumers/a", CONFIG_KEYS)),
                                        "consumers/a: JSON keys nats-server does not write"),
    "a consumer config key twice": (s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":1}')
                                              + archive_entry("consumers/a", b'{"config":{"name":"a","name":"b"}}')),
                                    "consumers/a: JSON keys nats-server does not write"),
    "a consumer twice": (s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":2}')
                                   + archive_entry("consumers/a", json.dumps({"config": PUSH}).encode()) * 2), "twice"),
    "fewer consumers than state.json says": (s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":2}')
                                                       + archive_entry("consumers/a", b'{"config":{}}')),
                                             "cut short in an entry header"),
    "a message where a consumer was due": (s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":1}')
                                                     + archive_entry("x.y", b"{}", seq=1)), "where a consumer was due"),
}


@pytest.mark.parametrize("case", NOT_WRITTEN)
def test_what_nats_server_never_writes_is_refused(case: str) -> None:
    data, says = NOT_WRITTEN[case]
    with pytest.raises(NotASnapshot, match=says):
        consumers(io.BytesIO(data))


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def _run_chunk(size: int) -> bytes:
    """An S2 chunk of ``size`` spaces in a few bytes: one literal, a copy2 from 1 back, a long S2 repeat."""
    block = (_varint(size) + b"\x00 " + b"\x0e\x01\x00"
             + b"\x1d\x00" + (size - 1 - 4 - 4 - 65536).to_bytes(3, "little"))
    return b"\x00" + (len(block) + 4).to_bytes(3, "little") + b"\x00" * 4 + block


def _plain_chunk(data: bytes) -> bytes:
    return b"\x01" + (len(data) + 4).to_bytes(3, "little") + b"\x00" * 4 + data


def _whitespace_consumers(count: int, entries: int) -> bytes:
    """A NATSARC1 snapshot whose state.json counts ``count`` consumers, then ``entries`` of them, each
    1 MiB of JSON: a consumer, then whitespace a few compressed bytes long."""
    state = json.dumps({"consumer_count": count}).encode()
    out = s2_framed(NATSARC + archive_entry("state.json", state))
    js = b'{"config":{"durable_name":"x"},"state":{}}'
    for i in range(entries):
        name = f"consumers/c{i}".encode()
        out += _plain_chunk(_varint(len(name)) + b"\x00\x00\x00" + _varint(1 << 20) + name + js)
        out += _run_chunk((1 << 20) - len(js))
    return out


def test_more_consumers_than_the_step_table_has_are_refused_at_the_first_extra_one() -> None:
    """state.json may count up to 100,000 consumers of 1 MiB each: a 9 MB file was read for hours."""
    data = _whitespace_consumers(100_000, 300)
    with pytest.raises(NotASnapshot, match="more consumers than the 10 durables the set-up makes"):
        consumers(io.BytesIO(data))
    read: list[str] = []
    started = time.monotonic()
    with pytest.raises(NotASnapshot, match="more consumers than the 10 durables the set-up makes"):
        consumers(io.BytesIO(data), lambda name, config: read.append(name))
    assert time.monotonic() - started < 2
    assert len(read) == 11  # the extra one is checked (restore names it when it is foreign), then refused


def test_each_consumer_is_checked_as_it_is_read() -> None:
    """A checker refusing the first consumer stops the reading there: what follows is never decoded."""
    data = s2_framed(NATSARC + archive_entry("state.json", b'{"consumer_count":2}')
                     + archive_entry("consumers/leak", json.dumps({"config": PUSH}).encode())
                     + archive_entry("consumers/b", b"not JSON"))
    seen: list[str] = []

    def refuse(name: str, config: dict[str, Any]) -> None:
        seen.append(name)
        raise LookupError(f"{name} refused")

    with pytest.raises(LookupError, match="leak refused"):
        consumers(io.BytesIO(data), refuse)
    assert seen == ["leak"]


def _tar_header(name: bytes, size: int, kind: bytes) -> bytes:
    header = bytearray(512)
    header[:len(name)] = name
    header[100:108], header[108:116], header[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    header[124:136], header[136:148] = b"%011o\0" % size, b"00000000000\0"
    header[156:157], header[257:263], header[263:265] = kind, b"ustar\0", b"00"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_a_pax_header_too_big_is_refused_before_it_is_read() -> None:
    """A PAX header saying 8 GiB, then 256 MiB of compressed runs: all of it was decoded into memory first."""
    data = s2_framed(_tar_header(b"PaxHeader", (8 << 30) - 1, b"x")) + _run_chunk(4 << 20) * 64
    started = time.monotonic()
    with pytest.raises(NotASnapshot, match="a PAX header nats-server does not write"):
        consumers(io.BytesIO(data))
    assert time.monotonic() - started < 2


def test_an_entry_in_tiny_chunks_is_read_in_linear_time() -> None:
    """A 1 MiB state.json in 4-byte chunks: the buffer rebuilt at each chunk made it quadratic."""
    state = b'{"consumer_count":0}'.ljust(1 << 20)
    body = NATSARC + archive_entry("state.json", state)
    data = s2_framed(b"") + b"".join(_plain_chunk(body[i:i + 4]) for i in range(0, len(body), 4))
    started = time.monotonic()
    assert consumers(io.BytesIO(data)) == {}
    assert time.monotonic() - started < 2


BIG = 4 << 20  # s2's largest block


def _big_block(prefix: bytes) -> bytes:
    """A 4 MiB S2 block of a few bytes: ``prefix`` as a literal, then the rest as one long run."""
    rest = BIG - len(prefix) - 4 - 4 - 65536
    body = (_varint(BIG) + bytes([61 << 2]) + (len(prefix) - 1).to_bytes(2, "little") + prefix
            + b"\x0e\x01\x00" + b"\x1d\x00" + rest.to_bytes(3, "little"))
    return b"\x00" + (len(body) + 4).to_bytes(3, "little") + b"\x00" * 4 + body


def test_a_tar_whose_every_header_opens_a_big_block_is_refused_at_the_decoding_budget() -> None:
    """Each 512-byte header is a literal at the start of a 4 MiB block of a few bytes (the rest one run),
    its entry taking the rest of the block: every header decoded 4 MiB, 1,000 of them in a 540 KB file."""
    data = s2_framed(b"") + b"".join(_big_block(_tar_header(b"msgs/%d.blk" % i, BIG - 512, b"0")) for i in range(1000))
    started = time.monotonic()
    with pytest.raises(NotASnapshot, match="over 64 MiB and 32 times its size to decode for its headers and consumers"):
        consumers(io.BytesIO(data))
    assert time.monotonic() - started < 2


def test_a_tar_whose_every_entry_ends_just_inside_a_big_block_is_refused_at_the_decoding_budget() -> None:
    """Review rev3: each entry ended 512 bytes into the next 4 MiB block of a few bytes, the next header
    right after, so skipping decoded every block and counted none: 4,000 MiB from a 1 MB file, 2.7 s."""
    data = s2_framed(b"") + _big_block(_tar_header(b"msgs/0.blk", BIG, b"0")) + b"".join(
        _big_block(bytes(512) + _tar_header(b"msgs/%d.blk" % i, BIG - 512, b"0")) for i in range(1, 1000))
    data += _plain_chunk(bytes(512 + 1024))
    started = time.monotonic()
    with pytest.raises(NotASnapshot, match="over 64 MiB and 32 times its size to decode"):
        consumers(io.BytesIO(data))
    assert time.monotonic() - started < 1
