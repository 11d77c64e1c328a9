"""Connecting to NATS: one connection per process, as this service's NATS user.

Services only bind to what the admin set-up created (``shared/bus/topology.py``); ``ensure=True`` runs
that set-up first (``grove-export setup``, tests). Each user's inboxes live under
``_INBOX_<user>``, which only that user may subscribe to (see ``shared/bus/permissions.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.transport import WebSocketTransport
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from shared.bus import permissions, ready, topology
from shared.bus.answers import ANSWER_HEADERS, STORED_ANSWER
from shared.bus.permissions import SERVICE_ACCOUNT_PREFIX, STORE_ACCOUNT, js_domain
from shared.bus.topology import TopologyMissing
from shared.core import steps
from shared.core.printable import printable
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings, nats_servers

log = logging.getLogger(__name__)


@dataclass
class Bus:
    nc: Client
    js: JetStreamContext
    log: EventLog
    heartbeats: KeyValue
    admission: KeyValue

    async def close(self) -> None:
        """Drain the connection (what was published goes out, each subscription ends) and close it.

        nats-py's ``drain()`` ends a cancellation of its caller quietly: cancelled while its subscriptions
        drain, it catches the CancelledError and returns; cancelled before (a service's ``finally:``),
        its last flush can time out and raise in the cancellation's place. Either way a service told to
        stop while it closed its bus went on: ``grove-export run janitor`` took its next run, and the
        next, and whatever waited for it (SIGTERM, an event loop closing) waited for good. A close that
        was cancelled, before or during the drain, ends in CancelledError here; a drain that fails or is
        cancelled before its own close still closes the connection (nats-py left it open, its tasks
        running)."""
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            await self.nc.drain()
        except BaseException as e:  # a CancelledError too: nats-py's own close was not reached
            if not self.nc.is_closed:
                with contextlib.suppress(Exception):
                    await self.nc.close()
            if isinstance(e, Exception) and task is not None and task.cancelling():
                raise asyncio.CancelledError from e  # the cancellation the caller is unwinding wins
            raise
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError  # nats-py's drain() caught it and returned


ACCOUNTS = f"{STORE_ACCOUNT} and {SERVICE_ACCOUNT_PREFIX}_<service>"
_SPACE = re.compile(r"\s")  # str.isspace's characters, as nats-py's own check


# The names nats-py keeps the server's inline status under (``NATS/1.0 503 No Responders``: "Status",
# "Description") — in the same dict as the message's own header lines, which it adds after. A stored
# message whose publisher set ``Status: 503`` therefore read back as the server's status: a direct get
# of it raised or ended the read there (the gateway's projector stopped at it for every tenant), and a
# pull consumer's fetch discarded it without an ack (it stayed in the durable's pending acks for ever).
# The server never sends these names as header lines; a message's own lines of that name are dropped.
STATUS_NAMES = frozenset({"Status", "Description"})


class TlsNotOffered(nats.errors.Error):
    """A ``tls://`` server whose INFO offers no TLS: refused before CONNECT, which carries the password."""

    def __str__(self) -> str:
        return ("nats: the server offers no TLS, which a tls:// URL requires: nothing was sent to it (use "
                "nats:// for a server without TLS)")


class _Client(Client):
    """nats-py's client with a faster header parser and the same result. Every stored message we
    read carries headers, and nats-py tests each header name for spaces with a generator over its
    characters: about 14 us per direct-get message, most of a replay's message handling. The parse
    gives nats-py's result (tests/unit/bus/test_header_parser.py holds the two equal), plus one
    mark: STORED_ANSWER when a header of ANSWER_HEADERS comes twice; and one refusal: a header line
    named like the server's status (STATUS_NAMES) is not the message's to set.
    Every connection of a service uses it, its step consumers' too (shared/runtime/service.py)."""

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Callable[[bytes, dict[str, str] | None, bytes], None]] = {}

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        # A tls:// URL means TLS, as in NATS's Go client: nats-py upgrades only when the server's INFO
        # says tls_required, so a server without TLS (or anyone in between answering INFO without it)
        # was sent CONNECT — user and password — in the clear, and the connection went on unencrypted.
        # Here that server is refused before CONNECT, and one that merely offers TLS (allow_non_tls) is
        # upgraded. ``info`` is the client's own server info (the INFO read at connect, or a later one).
        if initial_connection and self._current_server is not None and self._current_server.uri.scheme == "tls" \
                and not info.get("tls_required"):
            if not info.get("tls_available"):
                raise TlsNotOffered()
            info["tls_required"] = True
        await super()._process_info(info, initial_connection)

    def deliver_directly(self, sid: int, handler: Callable[[bytes, dict[str, str] | None, bytes], None]) -> None:
        """Hand subscription ``sid``'s messages to ``handler(subject, headers, data)`` as the read loop
        parses them: no Msg, no queue and no callback task per message. For the direct get's replies
        (shared/eventlog/directget.py), which arrive a batch at a time and are only collected: the
        queue's hop and the task's wake-up were a fifth of a replay's time on the event loop. The
        handler must not raise or block; the headers are read as every message's are."""
        self._direct[sid] = handler

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        handler = self._direct.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]  # its parser passes None
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(subject, await self._process_headers(headers), data)

    async def _process_pong(self) -> None:
        # The server answers PINGs in order, one PONG each; nats-py sets the oldest PING's future without
        # looking, and a flush given up on (its timeout, its caller cancelled: a drain cancelled while its
        # subscriptions flush) left that future cancelled in the queue. The InvalidStateError ended the
        # read loop for good: the connection stayed "connected" and read nothing more, every later flush
        # and request waited out its timeout (a service's bus.close() then took 10 s more). That PONG
        # is its future's, answered too late: taken off the queue, counted, and no future set.
        if self._pongs and self._pongs[0].done():
            self._pongs.pop(0)
            self._pongs_received += 1
            self._pings_outstanding = 0
            return
        await super()._process_pong()

    def _build_message(self, sid: int, subject: bytes, reply: bytes, data: bytes,
                       headers: dict[str, str] | None) -> Any:
        # A subject is any bytes but spaces to the server, so a wildcard permission lets a user publish
        # on ``exports.\xff.x.NotificationSent`` (and anyone can aim a reply there): nats-py decoded
        # it as strict UTF-8, and the UnicodeDecodeError ended the client's read loop for good — the
        # connection stayed "connected" and read nothing more (every request timed out, every
        # subscription went deaf) until its pings went stale, minutes later. Read as UTF-8 with each
        # byte that is not as U+FFFD: no export's subject (its tokens are [A-Za-z0-9_-]), so every
        # reader drops it as it drops any other subject that is not an export's.
        if not (subject.isascii() and reply.isascii()):  # every subject of ours is ASCII: no copies for it
            subject, reply = (b.decode("utf-8", "replace").encode() for b in (subject, reply))
        return super()._build_message(sid, subject, reply, data, headers)

    async def _process_headers(self, headers: bytes | None) -> dict[str, str] | None:
        # A message's own header lines, with no status from the server (every stored message we
        # read): straight to the parser below. nats-py would hand them to fast_mail_parser instead
        # when that is installed (nats-py's fast_parse extra), and the mark and refusal would go.
        if headers and headers.startswith(_PLAIN_HEAD):
            return self._parse_header_lines(headers[len(_PLAIN_HEAD):]) or None
        if not headers:
            return None
        # A status line: the server's (ASCII: 404, 408, 503, a heartbeat's 100), or one a publisher
        # wrote itself (HPUB takes any header block, and subscribers get it as sent). nats-py decoded
        # its status and description as strict UTF-8: a byte that is not (``NATS/1.0 \xff``) ended the
        # read loop for good, as a subject's did (_build_message). Read such bytes as U+FFFD; a block
        # nats-py cannot parse at all is no headers.
        try:
            return await super()._process_headers(headers.decode("utf-8", "replace").encode())  # type: ignore[no-any-return]
        except (ValueError, IndexError):  # UnicodeError is a ValueError
            return {}

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        # The block is decoded once, not each name and value apart: UTF-8's replacement never takes
        # in an ASCII byte, so lines, colons and the spaces strip() takes are where they were, a
        # name that is not ASCII still is not, and a value decodes as its own bytes would.
        out: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = _NAMES.get(name)
            if key is None:  # not a name seen before: check it (a few per connection, then cached)
                key = name.strip(_BYTE_SPACES)
                if not key.isascii() or _SPACE.search(key) or key in STATUS_NAMES:
                    continue
                if len(name) <= _NAME_KEPT_LENGTH:  # bounded in size: a made-up name may be max_payload long
                    if len(_NAMES) >= _NAMES_KEPT:  # and in count, emptied when full: made-up names that
                        _NAMES.clear()  # filled it for good would leave the real ones checked every time
                    _NAMES[name] = key
            if key in ANSWER_HEADERS and key in out:
                out[STORED_ANSWER] = key
            out[key] = value.strip(_BYTE_SPACES)
        return out


_PLAIN_HEAD = b"NATS/1.0\r\n"  # a header block that opens with no status
_BYTE_SPACES = " \t\n\r\x0b\x0c"  # what bytes.strip() takes, as nats-py strips the raw bytes
_NAMES: dict[str, str] = {}  # a header line's name part → its checked name (valid names only)
_NAMES_KEPT = 256
_NAME_KEPT_LENGTH = 64  # a real header name is a few dozen characters; a longer one is checked each time


def new_client() -> Client:
    """A NATS client that reads headers as every reader of ours must (:class:`_Client`), not yet connected."""
    return _Client()


def kv_names(settings: Settings) -> tuple[str, str]:
    return f"{settings.kv_prefix}_heartbeats", f"{settings.kv_prefix}_admission"


def inbox_prefix(user: str | None) -> str:
    """Where a user's replies and pull deliveries arrive: ``_INBOX_<user>`` (``_INBOX`` without a user)."""
    return f"_INBOX_{user}" if user else "_INBOX"


async def _bind_kv(js: JetStreamContext, bucket: str, used: bool) -> KeyValue:
    """A bucket this service uses is checked (it must exist); another is a handle never called
    (its user may not even read that bucket's stream info)."""
    if not used:
        return KeyValue(name=bucket, stream=f"KV_{bucket}", pre=f"$KV.{bucket}.", js=js, direct=True)
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        raise topology.BucketMissing(bucket) from None


async def _messages_in(js: JetStreamContext, stream: str) -> int | None:
    """How many messages ``stream`` holds; None when it does not exist or the server does not say."""
    try:
        return int((await js.stream_info(stream)).state.messages)
    except Exception:  # noqa: BLE001  (only a better line depends on it: the bucket is missing either way)
        return None


def _buckets_of(producer: str) -> set[str]:
    known = {s.name: s for s in steps.SERVICES}
    if producer not in known:  # the admin's tools, tests
        return set(steps.KV_ROLES)
    return {*known[producer].kv_write, *known[producer].kv_read}


class NatsUnreachable(ConnectionError):
    """A one-shot command could not connect to NATS; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# What the server refused a one-shot command's connection (a "Permissions Violation"): nats-py hands it
# only to the error callback, and the request it refused simply times out, so the command said "no
# answer in time" — seen with an operator command run with a service's credentials inside its pod.
_refused: list[str] = []


# Whether the server this process last connected to said in its INFO that it runs no JetStream (started
# without -js): every JetStream request then meets "no responders", which nats-py says as
# "ServiceUnavailableError: code=None err_code=None description='None'" or "no responders available for
# request". Said of the latest connection, not of the process for good: set once and never cleared, a
# process that met such a server (the test process, a service started before its server got -js) then
# blamed every "no responders" of a server with JetStream on "JetStream is not enabled there".
_no_jetstream: list[bool] = []


def refused_lately() -> bool:
    """Whether the server refused this process's connection something (a permissions violation): a
    request that then timed out was refused, not left unanswered."""
    return bool(_refused)


def unreachable_reason(error: BaseException, user: str | None = None) -> str:
    """Why a connection to NATS failed, in words (nats-py's own error says only "no servers")."""
    text = str(error).removeprefix("nats: ").strip()
    if _no_jetstream and (isinstance(error, nats.errors.NoRespondersError) or (
            isinstance(error, nats.js.errors.ServiceUnavailableError) and error.err_code is None)):
        # the server's own 503 "no responders", from a server whose INFO said it runs no JetStream (as
        # setup tells it apart from a cluster still electing its JetStream leader)
        return ("nothing answers its JetStream API: JetStream is not enabled there — start nats-server with -js, "
                "or give its config a jetstream { } block — or it is not the server meant")
    if isinstance(error, nats.js.errors.ServiceUnavailableError) and error.err_code == ready.JS_NOT_ENABLED_FOR_ACCOUNT:
        who = f"user {user!r}'s account" if user else "the account of a connection without a user"
        return (f"JetStream is not enabled for {who} (the server said: {error.description}): give that account a "
                "jetstream block in the server's config, or run as a user of one that has it (GROVE_NATS_USER)")
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is nats-server running there?)"
    if isinstance(error, socket.gaierror):
        return f"unknown host ({error.strerror or text})"
    if isinstance(error, TimeoutError) or "timeout" in text.lower():
        if _refused:  # the request timed out because the server refused it
            who = f"user {user!r}" if user else "this connection"
            return (f"the server refused {who}: {_refused[-1]} (operator commands and setup run as the NATS admin "
                    "user: GROVE_NATS_USER=admin and its password)")
        return "no answer in time"
    if _refused_login(error):
        who = f"user {user!r} and its password (GROVE_NATS_USER, GROVE_NATS_PASSWORD)" if user \
            else "connection without a user (set GROVE_NATS_USER and GROVE_NATS_PASSWORD)"
        return f"the server refused the {who}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, aiohttp.ClientResponseError):  # a ws:// or wss:// URL whose port answers no WebSocket
        # its message quotes what the port sent, over lines (a nats:// port's whole INFO): one line here
        return (f"no NATS WebSocket there (the port answered the upgrade with HTTP {error.status}): ws:// and "
                "wss:// need the server's websocket port, nats:// its client port")
    return " ".join(text.split()) or type(error).__name__


def _refused_login(error: BaseException) -> bool:
    text = str(error).lower()
    return "authorization" in text or "authentication" in text


def failure_reason(failures: Sequence[BaseException], error: BaseException, user: str | None = None) -> str:
    """Why a one-shot connection failed, from every failure its tries met: a login the server refused
    wins over what came after it. The server closes the connection once it has said so, and nats-py's
    next try could meet that close: a wrong password was now and then "Connection reset by peer"."""
    refused = [f for f in failures if _refused_login(f)]
    return unreachable_reason(refused[0] if refused else failures[-1] if failures else error, user)


def _log_briefly(user: str | None) -> Callable[[Exception], Awaitable[None]]:
    """A service's error callback: one line with the reason, not nats-py's traceback per attempt."""
    async def error_cb(e: Exception) -> None:
        log.warning("NATS connection error: %s", unreachable_reason(e, user))
    return error_cb


async def wait_for_nats(settings: Settings, producer: str, *, first_delay: float = 0.5, max_delay: float = 5.0,
                        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Until NATS answers: one log line per try, with the reason, waiting twice as long after each
    (``first_delay`` up to ``max_delay``). A service started before its server (compose, a reboot)
    then connects as soon as it is up, without a traceback every half second meanwhile."""
    delay = first_delay
    while True:
        try:
            nc = await open_nats(settings, producer, persistent=False, attempts=1,  # 0 would be "for ever"
                                 jetstream=False)  # only whether it answers: the service binds JetStream itself
        except NatsUnreachable as e:
            log.warning("NATS at %s: %s; trying again in %g s", settings.nats_url_shown, e.reason, delay)
            await sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        await nc.close()
        return


async def open_nats(settings: Settings, producer: str, *, name: str | None = None, persistent: bool = True,
                    attempts: int = 2, jetstream: bool = True,
                    waiting: Callable[[str], None] | None = None) -> Client:
    """A connection as this process's NATS user, with that user's inbox prefix. Services are
    ``persistent`` (they retry and reconnect forever); one-shot commands give up after a few
    seconds with :class:`NatsUnreachable`, not a stream of tracebacks (nats-py's default error
    callback prints one per attempt). A one-shot connection that will call ``jetstream`` as the
    admin (or without a user) is returned once JetStream answers, after up to
    GROVE_NATS_JETSTREAM_WAIT_S with one ``waiting`` line (stderr by default) while it does not
    (:mod:`shared.bus.ready`); a service user may not ask the account's info (its own first calls say
    what they meet; a service's :func:`connect` waits asking its own streams' info instead)."""
    failures: list[Exception] = []

    async def note(e: Exception) -> None:
        failures.append(e)
        if "permissions violation" in str(e).lower():
            _refused.append(str(e).removeprefix("nats: ").strip())

    opts: dict[str, object] = {"error_cb": _log_briefly(settings.nats_user) if persistent else note}
    if settings.nats_user:
        opts["user"] = settings.nats_user
        opts["password"] = settings.nats_password.get_secret_value() if settings.nats_password else ""
    nc = new_client()
    try:
        await nc.connect(
            nats_servers(settings.nats_url), name=name or f"grove-{producer}",
            max_reconnect_attempts=-1 if persistent else attempts, reconnect_time_wait=0.5, connect_timeout=5,  # type: ignore[arg-type]
            allow_reconnect=True, inbox_prefix=inbox_prefix(settings.nats_user).encode(), **opts,  # type: ignore[arg-type]
        )
    except (OSError, TimeoutError, nats.errors.Error) as e:
        if isinstance(nc._transport, WebSocketTransport):  # nats-py leaves its aiohttp session open on failure:
            with contextlib.suppress(Exception):  # "Unclosed client session" on stderr at exit, after the line
                await nc._transport.wait_closed()
        if persistent:
            raise
        raise NatsUnreachable(failure_reason(failures, e, settings.nats_user)) from None
    _no_jetstream[:] = [] if (getattr(nc, "_server_info", None) or {}).get("jetstream") else [True]
    if not persistent and jetstream and js_domain(settings.nats_user) is None:
        try:
            await ready.jetstream_answers(nc, wait_s=settings.nats_jetstream_wait_s, waiting=waiting or _on_stderr,
                                          refused=refused_lately, where=settings.nats_url_shown)
        except BaseException:
            with contextlib.suppress(Exception):
                await nc.close()
            raise
    return nc


def _on_stderr(line: str) -> None:
    """A one-shot command's line, as the CLI says its own (``grove-export: …``, escaped)."""
    print(printable(f"grove-export: {line}"), file=sys.stderr, flush=True)


_REFUSED = re.compile(r'permissions violation for publish to "([^"]+)"', re.IGNORECASE)


def _refused_what_the_accounts_allow(nc: Client, settings: Settings) -> bool:
    """Whether the server's last error refused this service user a subject its generated allow-list
    gives it: a server still on an older block (nats-py reports the subject in lower case)."""
    found = _REFUSED.search(str(nc.last_error or ""))
    if found is None or settings.nats_user is None:
        return False
    allowed = permissions.allowed_publish(settings.nats_user, prefix=settings.subject_prefix,
                                          kv_prefix=settings.kv_prefix, stream=settings.stream_name)
    return any(permissions.within(found.group(1), pattern.lower()) for pattern in allowed)


def _refused_now(nc: Client) -> bool:
    """Whether the server refused this connection something (a "Permissions Violation", its last error)."""
    return "permissions violation" in str(nc.last_error or "").lower()


def _own_streams_answer(nc: Client, settings: Settings, producer: str,
                        used: set[str]) -> Callable[[], Awaitable[object]]:
    """A service's question whether JetStream answers: the info of its own buckets' streams, of its own
    durables and, where it may ask it (the gateway), of the log's stream — what its allow-list gives it
    (it binds them next), not the account's info, which no service user is given. Each has a leader of
    its own, elected after the cluster's: a service that went on once one answered met the next one's
    "JetStream system temporarily unavailable". One not there is an answer too: the bind then says so."""
    js = nc.jetstream(timeout=ready.ASK_S, domain=js_domain(settings.nats_user))
    buckets = dict(zip(steps.KV_ROLES, kv_names(settings), strict=True))
    spec = next((s for s in steps.SERVICES if s.name == producer), None)
    streams = [f"KV_{buckets[role]}" for role in sorted(used)]
    streams += [settings.stream_name] if spec is not None and spec.reads_stream_info else []

    async def ask() -> None:
        for stream in streams:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.stream_info(stream)
        for consumer in steps.consumers_of(producer):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.consumer_info(settings.stream_name, consumer.durable)

    return ask


async def connect(settings: Settings, producer: str, *, ensure: bool = False, name: str | None = None,
                  persistent: bool = True) -> Bus:
    """Connect and bind the log and the buckets; ``ensure`` first creates them (the admin set-up)."""
    nc = await open_nats(settings, producer, name=name, persistent=persistent)
    try:
        return await _bound(nc, settings, producer, ensure=ensure, persistent=persistent)
    except BaseException:  # a bucket missing, a bind unanswered, JetStream not ready, a cancel: not left open
        # (the janitor's `run janitor` connects once a run: a connection a failed run left open stayed for good)
        with contextlib.suppress(Exception):
            await nc.close()
        raise


async def _bound(nc: Client, settings: Settings, producer: str, *, ensure: bool, persistent: bool) -> Bus:
    """:func:`connect`'s binds on ``nc``, which the caller closes when they fail."""
    js = nc.jetstream(timeout=10, domain=js_domain(settings.nats_user))  # a service user's: $JS.STORE.API
    event_log = EventLog(js, settings.stream_name, settings.subject_prefix, producer,
                         indexed_reads=settings.stream_replicas == 1)
    hb_name, adm_name = kv_names(settings)
    if ensure:
        await topology.ensure(js, settings)
    used = _buckets_of(producer)
    try:
        if persistent or js_domain(settings.nats_user) is not None:  # the admin's one-shot waited in open_nats
            # a service waits however long it takes; a one-shot command as a service's user (the janitor's
            # CronJob) up to GROVE_NATS_JETSTREAM_WAIT_S, as the admin's do
            await ready.jetstream_answers(nc, wait_s=None if persistent else settings.nats_jetstream_wait_s,
                                          waiting=log.warning if persistent else _on_stderr,
                                          where=settings.nats_url_shown, refused=lambda: _refused_now(nc),
                                          ask=_own_streams_answer(nc, settings, producer, used))
        heartbeats = await _bind_kv(js, hb_name, "heartbeats" in used)
        admission = await _bind_kv(js, adm_name, "admission" in used)
    except topology.BucketMissing as e:
        if js_domain(settings.nats_user) is None:  # admin (a service user may not ask the stream's info)
            e.stream_messages = await _messages_in(js, settings.stream_name)
        raise
    except (TimeoutError, nats.errors.TimeoutError, nats.errors.NoRespondersError):
        domain = js_domain(settings.nats_user)
        # its first JetStream call (every service binds a bucket) unanswered: a server still configured
        # as before the accounts split refuses $JS.STORE.API.… ("permissions violation", then "no answer
        # in time" with nothing to say why). Only that refusal is named so: a slow answer from a server
        # of this release (a cluster electing its leader, a loaded server) stays the timeout it is, and
        # so does a call this user may not make under the new block either (an operator command run
        # with a service's credentials: its own line says to run it as admin).
        if domain is None or not _refused_what_the_accounts_allow(nc, settings):
            raise
        raise TopologyMissing(
            f"NATS did not answer user {settings.nats_user!r}'s first JetStream call (under $JS.{domain}.API) in time: "
            f"a server whose config predates the {ACCOUNTS} accounts of this release refuses it — regenerate that "
            "config (README, Upgrading)") from None
    return Bus(nc, js, event_log, heartbeats, admission)
