"""One rule for every ``/readyz`` check (NATS, the object store): at most one a second, however many ask.

``/readyz`` needs no token, and each call made the gateway ask the store (a HEAD: one on S3's bill, and
the store's rate limits shared with the exports) or NATS (a PING): anyone who could reach it could make
it send as many as they sent it. An answer now stands for :data:`FRESH_S`, and callers who ask while a
check is under way wait for that one; one caller gone does not stop it for the others. A check not
answered within :data:`TIMEOUT_S` is not ready: a frozen NATS or a store that holds the HEAD open must
not make ``/readyz`` itself wait (a probe's own timeout, a second or a few, counts that as a failure
anyway, and the callers pile up).

What went wrong is the log's to say (the check's own line, once a check), never the answer's:
``/readyz`` answers anyone, and an exception's class or message names a client library, a host, a
bucket.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

FRESH_S = 1.0  # an answer stands this long: at most one check a second, whoever asks
TIMEOUT_S = 2.0  # a check not answered within this: not ready (an answer never waits on what it is about)


class Probe:
    """The shared answer of one check; subclasses give the check (``True``: it did not answer)."""

    def __init__(self) -> None:
        self._at = -math.inf  # monotonic time of the last answer
        self._failing = False
        self._running: asyncio.Future[bool] | None = None

    async def _shared(self, check: Callable[[], Awaitable[bool]]) -> bool:
        if time.monotonic() - self._at < FRESH_S:
            return self._failing
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._answer(check))
        return await asyncio.shield(self._running)  # one caller gone does not stop the others' check

    async def _answer(self, check: Callable[[], Awaitable[bool]]) -> bool:
        failure = await check()
        self._at, self._failing = time.monotonic(), failure
        return failure
