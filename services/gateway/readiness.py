"""The object store's part of ``/readyz``: a HEAD, at most one a second however many ask
(:mod:`shared.runtime.probe`). What went wrong is logged, never returned.
"""

from __future__ import annotations

import logging

from shared.objectstore.port import ObjectNotFound, ObjectStore
from shared.runtime.probe import Probe

log = logging.getLogger(__name__)

PROBE_KEY = ".readyz-probe"


class StoreProbe(Probe):
    async def failing(self, store: ObjectStore, bucket: str) -> bool:
        """Whether the store did not answer (what went wrong is logged, not returned)."""
        return await self._shared(lambda: self._probe(store, bucket))

    @staticmethod
    async def _probe(store: ObjectStore, bucket: str) -> bool:
        try:
            await store.head(bucket, PROBE_KEY)
        except ObjectNotFound:
            pass  # the store answered
        except Exception as exc:  # noqa: BLE001 - any other: not ready; what it was, in the log only
            log.warning("readiness: the object store did not answer a HEAD of %s/%s: %r", bucket, PROBE_KEY, exc)
            return True
        return False
