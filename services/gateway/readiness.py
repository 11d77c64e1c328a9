"""The object store's part of ``/readyz``: at most one HEAD a second, however many ask.

``/readyz`` needs no token, and each call made the gateway HEAD the store: anyone who could reach it
could make it send the store as many requests as they sent it (a request each on S3's bill, and the
store's rate limits shared with the exports). A store's answer now stands for :data:`FRESH_S`, and
callers who ask while a HEAD is under way wait for that one.
"""

from __future__ import annotations

import asyncio
import math
import time

from shared.objectstore.port import ObjectNotFound, ObjectStore

FRESH_S = 1.0
PROBE_KEY = ".readyz-probe"


class StoreProbe:
    def __init__(self) -> None:
        self._at = -math.inf  # monotonic time of the last answer
        self._failure: str | None = None
        self._running: asyncio.Future[str | None] | None = None

    async def failure(self, store: ObjectStore, bucket: str) -> str | None:
        """None when the store answers, else what went wrong (an exception's type name)."""
        if time.monotonic() - self._at < FRESH_S:
            return self._failure
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe(store, bucket))
        return await asyncio.shield(self._running)  # one caller gone does not stop the others' HEAD

    async def _probe(self, store: ObjectStore, bucket: str) -> str | None:
        try:
            await store.head(bucket, PROBE_KEY)
            failure = None
        except ObjectNotFound:
            failure = None  # the store answered
        except Exception as exc:  # noqa: BLE001 - any other: not ready, said by its type
            failure = type(exc).__name__
        self._at, self._failure = time.monotonic(), failure
        return failure
