"""The object store's part of ``/readyz``: the exports bucket is there for the gateway to use
(:meth:`ObjectStore.check_bucket <shared.objectstore.port.ObjectStore.check_bucket>`: S3's HeadBucket,
the filesystem store's folder checks), answered within 2 s, at most once a second however many ask
(:mod:`shared.runtime.probe`). What went wrong is logged, never returned.

A HEAD of an object, which this was, said "ready" of a bucket that is not there: S3 answers it with the
bodiless 404 of a missing key, and the filesystem store a bucket folder that is a file (or one it may
not write) with ObjectNotFound; every export then failed.
"""

from __future__ import annotations

import asyncio
import logging

from shared.objectstore.port import ObjectStore
from shared.runtime.probe import TIMEOUT_S, Probe

log = logging.getLogger(__name__)


class StoreProbe(Probe):
    async def failing(self, store: ObjectStore, bucket: str) -> bool:
        """Whether the store did not answer, or cannot use ``bucket`` (what went wrong is logged, not returned)."""
        return await self._shared(lambda: self._probe(store, bucket))

    @staticmethod
    async def _probe(store: ObjectStore, bucket: str) -> bool:
        try:
            async with asyncio.timeout(TIMEOUT_S):  # the store's client would wait its read timeout (60 s)
                await store.check_bucket(bucket)
        except TimeoutError:
            log.warning("readiness: the object store did not answer a check of bucket %s within %g s",
                        bucket, TIMEOUT_S)
            return True
        except Exception as exc:  # noqa: BLE001 - any: not ready; what it was, in the log only
            log.warning("readiness: the object store cannot be used for bucket %s: %r", bucket, exc)
            return True
        return False
