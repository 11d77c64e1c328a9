"""Our NATS client parses message headers as nats-py does, only faster (shared/bus/connect.py)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from shared.bus.answers import ANSWER_HEADERS, STORED_ANSWER
from shared.bus.connect import STATUS_NAMES, _Client

# Header-ish bytes: names, separators, spaces of every kind, line ends, and a few non-ASCII bytes.
PIECES = st.sampled_from([b"Nats-Sequence", b"Nats-Subject", b"Status", b"Description", b"X", b":", b": ", b" ", b"\t", b"\x0b", b"\x1c",
                          b"\x85", b"\xc3\xa9", b"\xff", b"\r\n", b"\n", b"\r", b"12345", b"exports.t.e.Ev", b""])


@settings(max_examples=2000, deadline=None)
@given(st.lists(PIECES, max_size=30).map(b"".join))
def test_the_fast_parser_gives_what_nats_py_gives(raw: bytes) -> None:
    ours, theirs = _Client._parse_header_lines(raw), Client._parse_header_lines(raw)
    marked = ours.pop(STORED_ANSWER, None)
    # the one refusal: a line named like the server's status is not the message's (its own Status: 503
    # read back as the server's answer)
    assert ours == {k: v for k, v in theirs.items() if k not in STATUS_NAMES}
    # the one addition: the mark, exactly when a header the server adds to a copy comes twice
    kept = [line.partition(b":")[0].strip() for line in raw.split(b"\r\n") if b":" in line]
    names = [n.decode("ascii", "replace") for n in kept]
    assert (marked is not None) == any(names.count(h) > 1 for h in ANSWER_HEADERS)


def test_known_headers_and_the_ones_nats_py_drops() -> None:
    raw = (b"Nats-Stream: EXPORTS\r\nNats-Subject: exports.t.e.PartUploaded\r\nNats-Sequence: 42\r\n"
           b"Bad Name: x\r\nno colon\r\nNon-Ascii\xc3\xa9: y\r\nValue: caf\xc3\xa9 \r\n\r\n")
    want = {"Nats-Stream": "EXPORTS", "Nats-Subject": "exports.t.e.PartUploaded", "Nats-Sequence": "42",
            "Value": "café"}
    assert _Client._parse_header_lines(raw) == Client._parse_header_lines(raw) == want



def test_names_made_up_by_publishers_do_not_grow_the_name_cache() -> None:
    from shared.bus import connect

    for i in range(5 * connect._NAMES_KEPT):
        assert _Client._parse_header_lines(f"X-Made-Up-{i}: v\r\n".encode()) == {f"X-Made-Up-{i}": "v"}
    assert len(connect._NAMES) <= connect._NAMES_KEPT


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=30).map(b"".join))
def test_a_plain_header_block_is_processed_as_nats_py_does(raw: bytes) -> None:
    block = b"NATS/1.0\r\n" + raw
    ours = asyncio.run(_Client()._process_headers(block))
    theirs = asyncio.run(Client()._process_headers(block))
    ours_marked = dict(ours or {})
    ours_marked.pop(STORED_ANSWER, None)
    assert ours_marked == {k: v for k, v in (theirs or {}).items() if k not in STATUS_NAMES}


def test_our_parser_reads_plain_blocks_even_with_nats_pys_email_parser_installed(monkeypatch) -> None:
    import nats.aio.client as nats_client

    # nats-py's fast_parse extra: its email parser would read the lines, with no mark and no refusal
    monkeypatch.setattr(nats_client, "parse_email", lambda raw: type("P", (), {"headers": {"Status": "503"}})(),
                        raising=False)
    block = b"NATS/1.0\r\nNats-Sequence: 1\r\nNats-Sequence: 2\r\nStatus: 503\r\n\r\n"
    got = asyncio.run(_Client()._process_headers(block))
    assert got == {"Nats-Sequence": "2", STORED_ANSWER: "Nats-Sequence"}


def test_long_made_up_names_are_not_kept_in_the_name_cache() -> None:
    """A header name may be as long as the server's max_payload (1 MB): 256 such names, from any user
    who can publish a message a service reads, were kept in every reader's cache for good (256 MB)."""
    from shared.bus import connect

    connect._NAMES.clear()
    for i in range(connect._NAMES_KEPT + 4):
        name = f"X-{i}-" + "a" * 10_000
        assert _Client._parse_header_lines(f"{name}: v\r\n".encode()) == {name: "v"}
    assert sum(map(len, connect._NAMES)) <= connect._NAMES_KEPT * connect._NAME_KEPT_LENGTH


def test_made_up_names_do_not_keep_the_real_ones_out_of_the_name_cache() -> None:
    """256 made-up names from one publisher filled the cache for the process's life: every real name
    after them (Nats-Sequence, Nats-Subject, ...) was checked again on every message of every replay."""
    from shared.bus import connect

    connect._NAMES.clear()
    for i in range(2 * connect._NAMES_KEPT):
        _Client._parse_header_lines(f"X-Filler-{i}: v\r\n".encode())
    assert _Client._parse_header_lines(b"Nats-Sequence: 7\r\n") == {"Nats-Sequence": "7"}
    assert connect._NAMES.get("Nats-Sequence") == "Nats-Sequence"
    assert len(connect._NAMES) <= connect._NAMES_KEPT
