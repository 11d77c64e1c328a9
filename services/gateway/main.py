"""Serve the gateway on ``settings.host:settings.port`` until stopped (SIGINT/SIGTERM or ``stop``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterable
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.web_log import AccessLogger

from services.gateway.app import init_app
from services.gateway.problems import ProblemRunner
from shared.core.keys import path_without_usernames
from shared.runtime.settings import Settings, SettingsProblem

log = logging.getLogger(__name__)


# Query parameters whose value is a credential, by lower-case name: a download link's signature, and a
# bearer token sent the way RFC 6750 2.3 allows (the gateway refuses it there, with a 401).
SECRET_PARAMS = frozenset({"sig", "access_token", "token"})


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with credentials (:data:`SECRET_PARAMS`) left out of the request line: the
    whole line (``GET /api/export/download/<key>?exp=…&sig=… HTTP/1.1``) was a working link to that
    archive for anyone who reads the logs, for the link's hour; ``?access_token=<JWT>`` a working token.
    The path (as sent, encoded; a download's archive name, which holds the requester's username, as
    ``ARCHIVE``) and the other parameters (encoded again) stay."""

    def _format_line(self, request: web.BaseRequest, response: web.StreamResponse,
                     time: float) -> Iterable[tuple[str | tuple[str, str], str]]:
        line = super()._format_line(request, response, time)
        if request is None:
            return line
        # The path as sent, still percent-encoded (as aiohttp's own line has it): request.path is
        # decoded, and a %0a, %1b or %e2%80%ae in it wrote a line break, an escape sequence or a bidi
        # control into the log — anyone, no token needed, could forge access lines.
        path = request.rel_url.raw_path
        shown = path_without_usernames(path)  # the archive's name holds the requester's username; the ids stay
        if shown == path and not any(k.lower() in SECRET_PARAMS for k in request.query):
            return line
        path = shown
        query = urlencode([(k, "REDACTED" if k.lower() in SECRET_PARAMS else v) for k, v in request.query.items()])
        first = (f"{request.method} {path}{'?' if query else ''}{query} "
                 f"HTTP/{request.version.major}.{request.version.minor}")
        return [(key, first if key == "first_request_line" else value) for key, value in line]


# How long a stopping gateway lets the requests under way (a download) end before it cuts them and closes
# its bus, store and read model: aiohttp's default, 60 s, was past the Kubernetes grace (30 s, of which the
# preStop sleep takes 5), whose SIGKILL came first. As the notifier's 20 s send, inside that grace.
DRAIN_S = 20.0


def runner_for(settings: Settings) -> ProblemRunner:
    # lingering: how long a body no handler read is read and dropped before the connection closes.
    # max_headers: aiohttp's 128 fields of up to 8,190 bytes each let one request head reach 1 MiB,
    # held (about twice over, parsed) while it arrives: 200 connections sending such heads took 400 MiB.
    return ProblemRunner(init_app(settings), handle_signals=False, head_timeout=settings.read_timeout_s,
                         keepalive_timeout=settings.keepalive_timeout_s, lingering_time=settings.read_timeout_s,
                         max_headers=settings.max_headers, max_connections=settings.max_connections,
                         access_log_class=RedactingAccessLogger, shutdown_timeout=DRAIN_S)


async def run(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, or, without one, until SIGINT or SIGTERM."""
    runner = runner_for(settings)
    try:
        await runner.setup()
    except BaseException:  # a context after the bus and the store failed (the read model): close those two
        with contextlib.suppress(Exception):  # aiohttp leaves the contexts it entered open when startup fails
            await runner.app.cleanup()
        raise
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as e:  # the gateway's own address: said as such, never as NATS's
            if e.errno == errno.EADDRINUSE:
                raise  # the command line names the port another program holds
            why = f"unknown host ({e.strerror})" if isinstance(e, socket.gaierror) else (e.strerror or str(e))
            raise SettingsProblem(f"GROVE_HOST: the gateway cannot listen on {settings.host}:{settings.port} "
                                  f"({why})") from None
        log.info("gateway listening on http://%s:%s", settings.host, settings.port)
        await stop.wait()
    finally:
        for sig in installed:
            asyncio.get_running_loop().remove_signal_handler(sig)
        await runner.cleanup()
