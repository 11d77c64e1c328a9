"""An aiohttp runner whose connections are closed when their first request head is too slow to arrive.

aiohttp waits for a request line and headers for ever, so a client trickling header bytes (or sending
half a request line and nothing more) held thousands of connections, and their file descriptors, until
the server could accept no more. Used by the gateway and by every step service's metrics endpoint.
Later requests on a kept-alive connection are bounded by aiohttp's keep-alive timeout, and so is a
client that stops taking its answers (:meth:`HeadDeadlineHandler.pause_writing`).

With ``max_connections``, when that many are open a new connection first takes the place of the
kept-alive one idle longest (closed as the keep-alive timeout would, only sooner: clients reconnect);
with none idle, it is answered :attr:`HeadDeadlineHandler.refusal` at once and closed: aiohttp accepts every connection, and even with every deadline a client that
opens them faster than they expire held as many file descriptors (and request heads) as it liked.
A refused connection is half-closed after its answer and what the client sends is read and dropped
until it closes, for at most :data:`REFUSAL_LINGER_S`: closed at once with the client's request
unread, the socket sent a reset, and the client got ECONNRESET instead of the answer (seen under
load). At most ``max_connections`` refused ones linger; more are closed at once, unanswered.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

REFUSAL_LINGER_S = 1.0
STALLED_HEAD_S = 1.0  # at the cap, a connection whose first head has not arrived after this long makes way


class HeadDeadlineHandler(web_protocol.RequestHandler):
    """A connection whose first request line and headers have not all arrived ``head_timeout`` seconds
    after it opened is closed."""

    head_timeout: float = 10.0
    # what a connection over max_connections gets, before it is closed (unsolicited: no request read)
    refusal = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
               b"Connection: close\r\n\r\n")
    _head_deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None
    _refused: _DeadlineServer | None = None  # the server whose lingering refusals this one counts in
    _opened = 0.0  # the loop's time when the connection was taken
    _answered: float | None = None  # the loop's time its last answer was sent, until its next request begins
    _body: Any = None  # that request's body stream: only one not all arrived is lingering
    _began: float | None = None  # the loop's time the request being handled began (None between requests)
    _evicted = False  # made way for a newcomer (make_way): closing
    _unread_since: float | None = None  # the loop's time the answer under way stopped going out (see unread)
    patient = False  # the request under way may wait on its client as its own stall bound lets it (a download)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._manager
        if isinstance(server, _DeadlineServer) and server.full():  # never handed to aiohttp: no task, no parser
            assert isinstance(transport, asyncio.Transport)
            if server.lingering >= (server.max_connections or 0):
                transport.abort()
                return
            self._refused, server.lingering = server, server.lingering + 1
            transport.write(self.refusal)
            transport.write_eof()  # then read and drop until the client closes (eof_received)
            self._head_deadline = self._loop.call_later(REFUSAL_LINGER_S, transport.abort)  # its one timer
            return
        super().connection_made(transport)
        self._opened = self._loop.time()
        self._head_deadline = self._loop.call_later(self.head_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return
        super().data_received(data)
        if self._request_count and self._head_deadline is not None:  # a whole request head arrived
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused is not None:
            self._refused.lingering -= 1
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            return
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The client is not taking what was written (its buffers are full): unless it takes some
        within the keep-alive timeout, the connection is closed. A client that pipelined thousands of
        requests and read nothing held its handler, blocked writing, for good (aiohttp's drain has
        no bound; only downloads had one of their own)."""
        super().pause_writing()
        self.unread(True)
        if self._write_deadline is None:
            self._write_deadline = self._loop.call_later(self._keepalive_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.unread(False)
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def unread(self, waiting: bool) -> None:
        """Whether the answer under way waits for its client to take some of it: the transport's buffers
        full (:meth:`pause_writing`), or a slice of a file ``loop.sendfile`` has not put out (it writes
        past the transport, which never pauses for it)."""
        if not waiting:
            self._unread_since = None
        elif self._unread_since is None:
            self._unread_since = self._loop.time()

    def _write_stalled(self) -> None:
        self._write_deadline = None
        log.info("closed a connection whose client took none of its answer within %.0f s", self._keepalive_timeout)
        if self.transport is not None:
            self.transport.abort()  # and the handler's pending drain fails: it ends

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A request the client got wrong (a header line with no colon, a line too long: aiohttp
        answers 400) is one INFO line, not aiohttp's traceback at ERROR: anyone who can reach the
        port could otherwise fill the logs, 40 lines a request, and page whoever alerts on errors.
        A failure of ours (a handler raising) keeps its traceback. So is a body that does not decode
        (`Content-Encoding: gzip` over bytes that are not gzip): aiohttp reads the rest of a body no
        handler read, after the answer, to drop it, and the decoder's error there reached this log."""
        exc = kw.get("exc_info")
        if isinstance(exc, web_protocol.RequestPayloadError):
            peer = self.transport.get_extra_info("peername") if self.transport is not None else None
            remote = peer[0] if isinstance(peer, tuple) and peer else "?"
            cause = exc.__cause__ if isinstance(exc.__cause__, HttpProcessingError) else None
            reason = " ".join(str(cause.message if cause else exc).split())[:200]
            log.info("a request body from %s could not be read, after its answer: %s", remote, reason)
            return
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            remote = args[1] if len(args) > 1 else "?"
            log.info("bad request from %s: %s %s", remote, exc.code, reason_of(str(exc.message or type(exc).__name__)))
            return
        super().log_exception(*args, **kw)

    def idle(self) -> bool:
        """Kept alive after an answer and waiting for a whole next request: what aiohttp's keep-alive
        timeout closes."""
        # aiohttp internals, read defensively: a release renaming them makes no connection idle (the cap then
        # refuses) instead of raising inside connection_made for every connection over the cap
        waiter = getattr(self, "_waiter", None)
        return bool(self._request_count) and waiter is not None and not waiter.done() \
            and not getattr(self, "_force_close", True)

    async def _handle_request(self, request: Any, start_time: float | None, request_handler: Any) -> Any:
        self._answered, self._body, self._began = None, request.content, self._loop.time()
        self.patient = False
        try:
            result = await super()._handle_request(request, start_time, request_handler)
        finally:
            self._began = None
        self._answered = self._loop.time()  # until its next request: what follows is aiohttp's lingering
        return result

    def make_way(self) -> None:
        """Close this connection, mid-request, for a newcomer (:meth:`overstaying`). Its handler is
        cancelled first and the socket aborted only once it has unwound: closed under a file's
        sendfile, asyncio never woke it (it drops the socket's writer), and it held the task and the
        open file for the 75 s stall bound, or raised InvalidStateError in asyncio's own callback.
        Aborted, not closed: an answer its client is not reading would be waited for."""
        self._evicted = True
        if (task := getattr(self, "_task_handler", None)) is not None:
            task.cancel()
        transport = self.transport

        def close() -> None:
            if transport is not None:
                transport.abort()
            self.force_close()

        self._loop.call_soon(close)  # after the cancelled handler's own unwinding, queued before it

    def overstaying(self, now: float) -> bool:
        """Handling a request begun :data:`STALLED_HEAD_S` or more ago whose body is still arriving, with
        more requests pipelined behind it, or whose answer its client has taken none of for as long: held
        by its own client — one that sends a body that slowly, or asks for answers it does not read — not
        by the gateway. A request whose body has all come (a create waiting on the bus) is not, nor a
        download (:attr:`patient`) whose client reads slowly. Not pipelined alone: a client that asked
        one answer at a time, read none, and stopped asking once the buffers were full left the last one
        waiting with nothing behind it, and held the cap for the 75 s write stall bound (review rv1)."""
        if self._began is None or now - self._began < STALLED_HEAD_S or self._evicted \
                or getattr(self, "_force_close", True):
            return False
        if (self._body is not None and not self._body.is_eof()) or bool(getattr(self, "_messages", ())):
            return True
        return self._unread_since is not None and not self.patient and now - self._unread_since >= STALLED_HEAD_S

    def lingering(self, now: float) -> bool:
        """Answered :data:`STALLED_HEAD_S` or more ago and still reading the rest of that request's
        body only to drop it (aiohttp's lingering close, for up to ``lingering_time``), not waiting for
        a next request: its client has its answer, and a body that has not come in a second is one no
        client sends that slowly — heads with a Content-Length and no body held the cap (see
        :meth:`_DeadlineServer.full`)."""
        # The body not all here, too: between a kept-alive connection's next request arriving and its
        # handling starting, `_answered` is still the last answer's and no waiter is set — that
        # connection, its last body whole, holds a request that would go unanswered (review rev2).
        return self._answered is not None and getattr(self, "_waiter", True) is None \
            and not getattr(self, "_force_close", True) and now - self._answered >= STALLED_HEAD_S \
            and self._body is not None and not self._body.is_eof()

    def stalled(self, now: float) -> bool:
        """Open :data:`STALLED_HEAD_S` or longer and its first request head not all here: no client
        sends one that slowly, half-sent heads hold the cap (see :meth:`_DeadlineServer.full`)."""
        return not self._request_count and not getattr(self, "_force_close", True) \
            and now - self._opened >= STALLED_HEAD_S

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self._request_count:
            log.info("closed a connection whose request head did not arrive within %.0f s", self.head_timeout)
            self.force_close()


# aiohttp's parser quotes the bytes it refused after its reason (`Invalid char in url query:
# b'GET /…?exp=…&sig=… HTTP/1.1' ^`, `Invalid header value char: b'Authorization: Bearer …'`,
# `Bad status line 'GET …'`; a request target over its limit, compiled: `…when reading:
# bytearray(b'/…?sig=…')`; pure-Python: `Bad HTTP method in status line 'GET /…?sig=…'`); a header's
# own name it quotes in its words (`Duplicate 'Content-Length' header found.`), kept.
_QUOTED = re.compile(r"""(?::\s*(?:bytearray\()?b?|\s+b|(?<=status line)\s+)['"].*""", re.DOTALL)
_HEADER_NAME = re.compile(r"""(?::\s*b?|\s+b)['"]([!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}):""")


def reason_of(message: str) -> str:
    """What a parser error says, for a log, without the bytes it quotes: those are the request's own
    (a download link's `sig`, a bearer token whose payload names the requester's email and username),
    which the access log leaves out and a log outlives. A header line is named by its field name."""
    quoted = _QUOTED.search(message)
    reason = " ".join((message[:quoted.start()] if quoted else message).split())[:200]
    header = _HEADER_NAME.match(message, quoted.start()) if quoted else None
    return f"{reason} (in the {header.group(1)} field)" if header else reason


class _DeadlineServer(web.Server):
    head_timeout = 10.0
    max_connections: int | None = None
    handler_class: type[HeadDeadlineHandler] = HeadDeadlineHandler

    refusing = False
    lingering = 0  # refused connections not yet closed

    def __call__(self) -> web_protocol.RequestHandler:
        handler = self.handler_class(self, loop=self._loop, **self._kwargs)
        handler.head_timeout = self.head_timeout
        return handler

    def full(self) -> bool:
        """Whether ``max_connections`` are open and none of them can make way (a new one is then
        refused); said once when it fills. One makes way for the new one, closed as it arrives: the
        kept-alive one idle longest, else the one answered longest ago whose request's body is still
        arriving, else the one whose first request head has been arriving longest — those two
        :data:`STALLED_HEAD_S` or more. Without the last, one client with no token held the cap for
        as long as it liked by reopening half-sent heads as the head deadline closed them (400 per
        10 s): a normal request got 503 40 times out of 40 in 4 s. Without the second, it did the same
        with whole heads naming a body it never sent (``Content-Length: 16000``): each answered at
        once (401 without a token, 200 for /healthz), then held while aiohttp read for the body to
        drop it, ``lingering_time`` (10 s). Last, a request its own client holds (:meth:`HeadDeadlineHandler.
        overstaying`): 400 POSTs with a valid token and no body held the cap for the 10 s body wait, and
        400 connections pipelining requests they never read, with no token, for the 75 s keep-alive."""
        if self.max_connections is None or len(self.connections) < self.max_connections:
            self.refusing = False
            return False
        ours = [h for h in self.connections if isinstance(h, HeadDeadlineHandler)]
        # an evicted one is counted until its close is done, a moment later: up to one over the cap per
        # connection that can make way, meanwhile (force_close marks it: it is not picked twice)
        idle = [h for h in ours if h.idle()]
        if idle:
            min(idle, key=lambda h: getattr(h, "_next_keepalive_close_time", 0.0)).force_close()
            return False
        now = self._loop.time()
        lingering = [h for h in ours if h.lingering(now)]
        if lingering:
            oldest = min(lingering, key=lambda h: h._answered or 0.0)
            log.info("closed a connection answered %.1f s ago whose request's body had not all arrived: the "
                     "gateway is at its %d connections", now - (oldest._answered or now), self.max_connections)
            oldest.force_close()
            return False
        stalled = [h for h in ours if h.stalled(now)]
        if stalled:
            oldest = min(stalled, key=lambda h: h._opened)
            log.info("closed a connection whose request head had not arrived after %.1f s: the gateway is at "
                     "its %d connections", now - oldest._opened, self.max_connections)
            oldest.force_close()
            return False
        overstaying = [h for h in ours if h.overstaying(now)]
        if overstaying:
            oldest = min(overstaying, key=lambda h: h._began or 0.0)
            log.info("closed a connection whose request, begun %.1f s ago, its client held (a body still arriving, "
                     "answers pipelined, or an answer not read): the gateway is at its %d connections",
                     now - (oldest._began or now), self.max_connections)
            oldest.make_way()
            return False
        if not self.refusing:
            log.warning("%d connections open, the most allowed: more are answered 503 until some close",
                        len(self.connections))
            self.refusing = True
        return True


class HeadDeadlineRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`HeadDeadlineHandler` (or ``handler_class``), at
    most ``max_connections`` of them (None: no cap)."""

    handler_class: type[HeadDeadlineHandler] = HeadDeadlineHandler

    def __init__(self, app: web.Application, *, head_timeout: float = 10.0, max_connections: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_timeout, self.max_connections = head_timeout, max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _DeadlineServer  # only which RequestHandler a connection gets, its deadline and cap
        server.head_timeout = self.head_timeout  # type: ignore[attr-defined]
        server.max_connections = self.max_connections  # type: ignore[attr-defined]
        server.handler_class = self.handler_class  # type: ignore[attr-defined]
        return server
