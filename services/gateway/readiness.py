"""The object store's part of ``/readyz``: at most one HEAD a second, however many ask.

``/readyz`` needs no token, and each call made the gateway HEAD the store: anyone who could reach it
could make it send the store as many requests as they sent it (a request each on S3's bill, and the
store's rate limits shared with the exports). A store's answer now stands for :data:`FRESH_S`, and
callers who ask while a HEAD is under way wait for that one.

What went wrong is the gateway's log's to say (the exception, once a probe), never the answer's:
``/readyz`` answers anyone, and an exception's class or message names the store's client library,
its host or its bucket.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from shared.objectstore.port import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)

FRESH_S = 1.0
PROBE_KEY = ".readyz-probe"


class StoreProbe:
    def __init__(self) -> None:
        self._at = -math.inf  # monotonic time of the last answer
        self._failing = False
        self._running: asyncio.Future[bool] | None = None

    async def failing(self, store: ObjectStore, bucket: str) -> bool:
        """Whether the store did not answer (what went wrong is logged, not returned: see the module)."""
        if time.monotonic() - self._at < FRESH_S:
            return self._failing
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._probe(store, bucket))
        return await asyncio.shield(self._running)  # one caller gone does not stop the others' HEAD

    async def _probe(self, store: ObjectStore, bucket: str) -> bool:
        try:
            await store.head(bucket, PROBE_KEY)
            failure = False
        except ObjectNotFound:
            failure = False  # the store answered
        except Exception as exc:  # noqa: BLE001 - any other: not ready; what it was, in the log only
            log.warning("readiness: the object store did not answer a HEAD of %s/%s: %r", bucket, PROBE_KEY, exc)
            failure = True
        self._at, self._failing = time.monotonic(), failure
        return failure
