"""An aiohttp runner whose connections are closed when their first request head is too slow to arrive.

aiohttp waits for a request line and headers for ever, so a client trickling header bytes (or sending
half a request line and nothing more) held thousands of connections, and their file descriptors, until
the server could accept no more. Used by the gateway and by every step service's metrics endpoint.
Later requests on a kept-alive connection are bounded by aiohttp's keep-alive timeout, and so is a
client that stops taking its answers (:meth:`HeadDeadlineHandler.pause_writing`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)


class HeadDeadlineHandler(web_protocol.RequestHandler):
    """A connection whose first request line and headers have not all arrived ``head_timeout`` seconds
    after it opened is closed."""

    head_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None
    _write_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline = self._loop.call_later(self.head_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count and self._head_deadline is not None:  # a whole request head arrived
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
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
        if self._write_deadline is None:
            self._write_deadline = self._loop.call_later(self._keepalive_timeout, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _write_stalled(self) -> None:
        self._write_deadline = None
        log.info("closed a connection whose client took none of its answer within %.0f s", self._keepalive_timeout)
        if self.transport is not None:
            self.transport.abort()  # and the handler's pending drain fails: it ends

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A request the client got wrong (a header line with no colon, a line too long: aiohttp
        answers 400) is one INFO line, not aiohttp's traceback at ERROR: anyone who can reach the
        port could otherwise fill the logs, 40 lines a request, and page whoever alerts on errors.
        A failure of ours (a handler raising) keeps its traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 0) < 500:
            remote = args[1] if len(args) > 1 else "?"
            reason = " ".join(str(exc.message or type(exc).__name__).split())[:200]
            log.info("bad request from %s: %s %s", remote, exc.code, reason)
            return
        super().log_exception(*args, **kw)

    def _head_late(self) -> None:
        self._head_deadline = None
        if not self._request_count:
            log.info("closed a connection whose request head did not arrive within %.0f s", self.head_timeout)
            self.force_close()


class _DeadlineServer(web.Server):
    head_timeout = 10.0
    handler_class: type[HeadDeadlineHandler] = HeadDeadlineHandler

    def __call__(self) -> web_protocol.RequestHandler:
        handler = self.handler_class(self, loop=self._loop, **self._kwargs)
        handler.head_timeout = self.head_timeout
        return handler


class HeadDeadlineRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`HeadDeadlineHandler` (or ``handler_class``)."""

    handler_class: type[HeadDeadlineHandler] = HeadDeadlineHandler

    def __init__(self, app: web.Application, *, head_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _DeadlineServer  # only which RequestHandler a connection gets, and its deadline
        server.head_timeout = self.head_timeout  # type: ignore[attr-defined]
        server.handler_class = self.handler_class  # type: ignore[attr-defined]
        return server
