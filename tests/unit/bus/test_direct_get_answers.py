"""How one batched direct get's answer is collected (shared/eventlog/directget.py), message by message
as the client hands them over: no server needed to hold each kind of message to its outcome."""

from __future__ import annotations

import asyncio

import pytest

from shared.bus.answers import STORED_ANSWER
from shared.eventlog.directget import DirectGetError, Stored, _Get

Reply = tuple[dict[str, str], bytes]  # one reply's headers and body, as the client's read loop gives them


def stored(seq: int, subject: str = "exports.t.e.ExportRequested", **extra: str) -> Reply:
    return {"Nats-Sequence": str(seq), "Nats-Subject": subject, **extra}, b"{}"


def status(code: str, **extra: str) -> Reply:
    return {"Status": code, **extra}, b""


def collect(*replies: Reply) -> _Get:
    async def run() -> _Get:
        get = _Get()
        for headers, data in replies:
            get.take(headers, data)
        return get
    return asyncio.run(run())


def outcome(get: _Get) -> object:
    assert get.done.done()
    return get.done.exception() or get.done.result()


def test_the_messages_in_order_then_the_end_of_batch_headers() -> None:
    get = collect(stored(3), stored(5, **{STORED_ANSWER: "Nats-Sequence"}), status("204", **{"Nats-Num-Pending": "7"}))
    assert get.out == [Stored(3, "exports.t.e.ExportRequested", b"{}"),
                       Stored(5, "exports.t.e.ExportRequested", b"{}", answer=True)]
    assert outcome(get) == {"Status": "204", "Nats-Num-Pending": "7"}


def test_nothing_there_is_an_empty_answer_not_an_error() -> None:
    get = collect(status("404"))
    assert get.out == [] and outcome(get) == {}


def test_an_error_status_ends_the_get_with_its_description() -> None:
    error = outcome(collect(stored(1), status("408", Description="Request Timeout")))
    assert isinstance(error, DirectGetError) and "408 Request Timeout" in str(error)


def test_a_message_without_its_sequence_ends_the_get_with_the_error_not_inside_nats_py() -> None:
    broken = ({"Nats-Subject": "exports.t.e.X"}, b"")
    assert isinstance(outcome(collect(broken)), KeyError)
    assert isinstance(outcome(collect(stored(1), stored(2, **{"Nats-Sequence": "two"}))), ValueError)


def test_what_comes_after_the_end_changes_nothing() -> None:
    get = collect(stored(1), status("204"), stored(2), status("503"))
    assert [m.seq for m in get.out] == [1] and outcome(get) == {"Status": "204"}


def test_a_get_given_up_on_ignores_its_late_answer() -> None:
    async def run() -> _Get:
        get = _Get()
        get.done.cancel()  # the asker's timeout
        get.take(*stored(1))
        get.take(*status("204"))
        return get
    get = asyncio.run(run())
    assert get.out == [] and get.done.cancelled()


@pytest.mark.parametrize(("code", "end"), [("204", {"Status": "204"}), ("404", {})])
def test_the_end_comes_once(code: str, end: dict[str, str]) -> None:
    get = collect(status(code), status(code, **{"Nats-Num-Pending": "9"}))
    assert outcome(get) == end  # the first end, not the second
