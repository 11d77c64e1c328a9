"""Reading the stream without a consumer: JetStream batched direct get (nats-server ≥ 2.11).

A request on ``$JS.API.DIRECT.GET.<stream>`` (under the connection's JetStream API prefix: a service
user's is ``$JS.STORE.API``, shared/bus/permissions.py) with ``{"seq", "next_by_subj", "batch", "max_bytes"}``
is answered by the stream (any replica) with one message per stored message, in sequence order,
then an end-of-batch status message (``204 EOB``); ``404`` means nothing matched. Nothing is
created on the server, so a service user needs no CONSUMER.CREATE permission to read — and it is
cheaper than an ordered consumer per read.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from shared.bus.answers import STORED_ANSWER

BATCH = 512
MAX_BYTES = 4 * 1024 * 1024
MULTI_LAST_MAX = 1024  # the server's cap on one multi-last answer


class DirectGetError(Exception):
    """The stream answered a direct get with an error status."""


class DirectGetUnavailable(DirectGetError):
    """No server answered for the stream: the "no responders" status (503) the server sends to the
    reply subject of a request nothing listens for — the stream's replicas down, or the stream gone."""


NO_RESPONDERS = "503"


@dataclass(frozen=True)
class Stored:
    """One stored message: its stream sequence, subject and body. ``answer``: the server stored it as
    its answer to someone's request (shared/bus/answers.py), not a publisher: every
    reader drops it, and its sequence still counts (the fence compares with it)."""

    seq: int
    subject: str
    data: bytes
    answer: bool = False


@dataclass(frozen=True)
class Batch:
    messages: list[Stored]
    pending: int  # matching messages after the last one returned (0: the batch reached the end)


def _status(msg: Msg) -> str | None:
    return (msg.headers or {}).get("Status")


class _Get:
    """One batched get's answer as it arrives: the stored messages so far, and ``done`` once the
    end-of-batch status (its headers; {} for 404) or an error has come. Collected as the client's
    read loop parses each reply (:meth:`_Replies.take`): one wake-up of the asker per batch."""

    __slots__ = ("done", "out")

    def __init__(self) -> None:
        self.out: list[Stored] = []
        self.done: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    def take(self, headers: dict[str, str] | None, data: bytes) -> None:
        if self.done.done():
            return  # after its end: a stray or repeated answer
        h = headers or {}
        status = h.get("Status")
        try:
            if status is None:
                self.out.append(Stored(int(h["Nats-Sequence"]), h["Nats-Subject"], data, STORED_ANSWER in h))
            elif status == "404":
                self.done.set_result({})
            elif status == "204":  # end of batch
                self.done.set_result(dict(h))
            elif status == NO_RESPONDERS:
                raise DirectGetUnavailable(f"{status} no server answers for the stream")
            else:
                raise DirectGetError(f"{status} {h.get('Description')}")
        except Exception as e:  # noqa: BLE001  (no sequence, not a number: the asker raises it, not nats-py)
            self.done.set_exception(e)


class _Replies:
    """One wildcard subscription per connection for every batched get's replies, told apart by the
    last token of the reply subject: a get costs no SUB/UNSUB round of its own (each of which also
    makes the server rebuild its subject cache). On our own client (shared/bus/connect.py) the
    replies go straight from its read loop to :meth:`take`; on another, through the callback."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()  # under this connection's inbox prefix: only this user may listen there
        self.gets: dict[bytes, _Get] = {}
        self.sub: Subscription | None = None
        self.lock = asyncio.Lock()
        self.next = 0

    async def open(self) -> tuple[str, _Get]:
        if self.sub is None:
            async with self.lock:
                if self.sub is None:
                    sub = await self.nc.subscribe(f"{self.prefix}.*", cb=self._deliver)
                    directly = getattr(self.nc, "deliver_directly", None)
                    if directly is not None:
                        directly(sub._id, self.take)
                    self.sub = sub
        self.next += 1
        token = str(self.next)
        get = self.gets[token.encode()] = _Get()
        return f"{self.prefix}.{token}", get

    def close(self, inbox: str) -> None:
        get = self.gets.pop(inbox.rsplit(".", 1)[-1].encode(), None)
        if get is not None and get.done.done() and not get.done.cancelled():
            get.done.exception()  # seen: an error that came as the asker gave up is not "never retrieved"

    def take(self, subject: bytes, headers: dict[str, str] | None, data: bytes) -> None:
        get = self.gets.get(subject.rpartition(b".")[2])
        if get is not None:  # a late reply to a get that timed out is dropped
            get.take(headers, data)

    async def _deliver(self, msg: Msg) -> None:
        self.take(msg.subject.encode(), msg.headers, msg.data)


_replies: weakref.WeakKeyDictionary[Client, _Replies] = weakref.WeakKeyDictionary()


def _api(js: JetStreamContext) -> tuple[Client, str]:
    """The connection and the JetStream API prefix a context calls (``$JS.API``, or a domain's)."""
    return js._nc, js._prefix


async def _exchange(js: JetStreamContext, stream: str, request: dict[str, object], timeout: float,
                    ) -> tuple[list[Stored], dict[str, str]]:
    """One batched direct get: the stored messages and the end-of-batch headers ({} for 404)."""
    nc, api = _api(js)
    replies = _replies.get(nc)
    if replies is None:
        replies = _replies[nc] = _Replies(nc)
    inbox, get = await replies.open()
    try:
        await nc.publish(f"{api}.DIRECT.GET.{stream}", json.dumps(request).encode(), reply=inbox)
        try:
            async with asyncio.timeout(timeout):
                eob = await get.done
        except DirectGetError as e:
            raise type(e)(f"direct get on {stream}: {e}") from None
        return get.out, eob
    finally:
        replies.close(inbox)


async def get_batch(js: JetStreamContext, stream: str, *, seq: int, subject: str, batch: int = BATCH,
                    max_bytes: int = MAX_BYTES, timeout: float = 5.0) -> Batch:
    """Stored messages on ``subject`` (wildcards allowed) from sequence ``seq`` on, at most ``batch``.

    The server walks the stream from ``seq`` until it has ``batch`` matches or reaches the end,
    message by message when the subjects are mostly distinct (ours are): a batch larger than what
    is there costs a walk to the end of the stream."""
    request = {"seq": max(1, seq), "next_by_subj": subject, "batch": batch, "max_bytes": max_bytes}
    out, eob = await _exchange(js, stream, request, timeout)
    return Batch(out, int(eob.get("Nats-Num-Pending", "0") or 0))


async def every_stored(js: JetStreamContext, stream: str, subject: str) -> AsyncIterator[Stored]:
    """Every message stored on ``subject`` (wildcards allowed), in sequence order, a :func:`get_batch`
    at a time: each batch asked for once the one before it is taken, the last when nothing is pending."""
    seq = 1
    while True:
        batch = await get_batch(js, stream, seq=seq, subject=subject)
        for m in batch.messages:
            yield m
        if not batch.messages or not batch.pending:
            return
        seq = batch.messages[-1].seq + 1


async def count_and_first(js: JetStreamContext, stream: str, subject: str, timeout: float = 5.0) -> tuple[Stored | None, int]:
    """The first stored message on ``subject`` and how many there are now. From the stream's
    per-subject index: no walk over other subjects' messages."""
    out, eob = await _exchange(js, stream, {"seq": 1, "next_by_subj": subject, "batch": 1}, timeout)
    if not out:
        return None, 0
    return out[0], 1 + int(eob.get("Nats-Num-Pending", "0") or 0)


async def last_per_subject(js: JetStreamContext, stream: str, subject: str, timeout: float = 5.0) -> list[Stored] | None:
    """The last stored message of each subject matching ``subject``, in sequence order, from the
    stream's per-subject index (no walk over other subjects' messages); None when the server
    refuses (more than 1,024 subjects) or they hold more than one answer's ``MAX_BYTES``: any user
    can have the server store a message of up to 256 KiB on a new subject of an export (a direct
    get's copy aimed there), and one answer without a byte limit held them all at once."""
    request = {"multi_last": [subject], "batch": MULTI_LAST_MAX, "max_bytes": MAX_BYTES}
    try:
        out, eob = await _exchange(js, stream, request, timeout)
    except DirectGetError:
        return None
    if int(eob.get("Nats-Num-Pending", "0") or 0) > 0:
        return None  # cut at max_bytes: the caller walks the history a batch at a time instead
    return sorted(out, key=lambda m: m.seq)


async def last_of_each(js: JetStreamContext, stream: str, subjects: list[str], timeout: float = 5.0) -> list[Stored]:
    """The last stored message of each of ``subjects`` (literal subjects, at most ``MULTI_LAST_MAX``)
    from the stream's per-subject index, in one request: as many as one answer holds (``MAX_BYTES``);
    a subject missing from the answer (cut there, or nothing stored) is the caller's to ask again."""
    request = {"multi_last": subjects, "batch": len(subjects), "max_bytes": MAX_BYTES}
    out, _ = await _exchange(js, stream, request, timeout)
    return out


async def get_seq(js: JetStreamContext, stream: str, seq: int, timeout: float = 5.0) -> Stored | None:
    """The message stored at ``seq``, or None when there is none (deleted, or past the end)."""
    nc, api = _api(js)
    reply = await nc.request(f"{api}.DIRECT.GET.{stream}", json.dumps({"seq": seq}).encode(), timeout=timeout)
    status = _status(reply)
    if status == "404":
        return None
    if status is not None:
        raise DirectGetError(f"direct get on {stream}: {status}")
    h = reply.headers or {}
    return Stored(int(h["Nats-Sequence"]), h["Nats-Subject"], reply.data, STORED_ANSWER in h)


async def subject_counts(js: JetStreamContext, stream: str, subject: str, timeout: float = 10.0) -> dict[str, int]:
    """Stored messages per subject matching ``subject`` (wildcards allowed): every subject. The
    server answers stream info's subject details a page at a time (100,000 subjects, sorted, with
    ``total``), and nats-py's ``stream_info`` reads only the first page: a tenant with more subjects
    was counted short, and the exports past them were not seen at all."""
    from nats.js.errors import APIError

    nc, api = _api(js)
    counts: dict[str, int] = {}
    while True:
        request = {"subjects_filter": subject, "offset": len(counts)}
        reply = await nc.request(f"{api}.STREAM.INFO.{stream}", json.dumps(request).encode(), timeout=timeout)
        info = json.loads(reply.data)
        if "error" in info:
            raise APIError.from_error(info["error"])
        page = (info.get("state") or {}).get("subjects") or {}
        counts.update(page)
        if not page or len(counts) >= int(info.get("total") or 0):
            return counts
