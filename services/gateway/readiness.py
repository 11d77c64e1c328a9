"""The object store's part of ``/readyz``: a HEAD answered within 2 s, at most one a second however
many ask (:mod:`shared.runtime.probe`). What went wrong is logged, never returned.
"""

from __future__ import annotations

import asyncio
import logging

from shared.objectstore.port import ObjectNotFound, ObjectStore
from shared.runtime.probe import TIMEOUT_S, Probe

log = logging.getLogger(__name__)

PROBE_KEY = ".readyz-probe"


class StoreProbe(Probe):
    async def failing(self, store: ObjectStore, bucket: str) -> bool:
        """Whether the store did not answer (what went wrong is logged, not returned)."""
        return await self._shared(lambda: self._probe(store, bucket))

    @staticmethod
    async def _probe(store: ObjectStore, bucket: str) -> bool:
        try:
            async with asyncio.timeout(TIMEOUT_S):  # the store's client would wait its read timeout (60 s)
                await store.head(bucket, PROBE_KEY)
        except ObjectNotFound:
            pass  # the store answered
        except TimeoutError:
            log.warning("readiness: the object store did not answer a HEAD of %s/%s within %g s",
                        bucket, PROBE_KEY, TIMEOUT_S)
            return True
        except Exception as exc:  # noqa: BLE001 - any other: not ready; what it was, in the log only
            log.warning("readiness: the object store did not answer a HEAD of %s/%s: %r", bucket, PROBE_KEY, exc)
            return True
        return False
