"""NATS's part of every ``/readyz`` (the gateway's, each step service's): a round trip, at most one a second.

``is_connected`` says only what the client last knew. A server that stops answering without closing the
connection (frozen; a partition that drops packets) leaves it "connected" until nats-py's own pings go
stale — one each ``ping_interval`` (nats-py's 120 s: the bus sets none), the connection given up after
``max_outstanding_pings`` (2) unanswered — some 4 minutes in which ``/readyz`` said ready and a load
balancer kept sending the gateway requests that each waited and failed. Ready now also means NATS
answered a PING within :data:`TIMEOUT_S`.

``/readyz`` needs no token, so a PING is sent at most once a second however many ask, callers who ask
while one is out waiting for it (:mod:`shared.runtime.probe`). What went wrong is logged, never returned.

nats-py's ``rtt`` is the round trip, not ``flush``: with its read loop ended, ``flush`` only writes out
and returns as if answered. Its PONG futures given up on (a timeout) stay in the client's queue until the
server answers; ``shared.bus.connect._Client._process_pong`` takes them off. The whole probe is bounded
by :data:`TIMEOUT_S` too: sending the PING can itself wait (nats-py's flush queue is bounded, and a
frozen server stops reading), and an answer must not wait on the server it is about.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.aio.client import Client

from shared.runtime.probe import TIMEOUT_S, Probe

log = logging.getLogger(__name__)

class BusProbe(Probe):
    """Whether NATS answers; one per process (its answer is shared by every caller)."""

    async def failing(self, nc: Client) -> bool:
        """Whether NATS did not answer (not connected, or no PONG within :data:`TIMEOUT_S`)."""
        if not nc.is_connected:
            return True  # said at once, no PING: nats-py is reconnecting, or has closed the connection
        return await self._shared(lambda: self._probe(nc))

    @staticmethod
    async def _probe(nc: Client) -> bool:
        try:
            # This bound, not rtt's own, is the one that holds: rtt's wait_for starts only once the PING
            # is sent. A PONG that lands as it expires may be taken as answered (3.11's wait_for returns
            # a result its cancel raced with): it did answer, so ready is right either way.
            async with asyncio.timeout(TIMEOUT_S):
                await nc.rtt(timeout=TIMEOUT_S)  # type: ignore[arg-type]  # typed int, used as seconds
        except (TimeoutError, nats.errors.TimeoutError):
            log.warning("readiness: NATS did not answer a PING within %g s", TIMEOUT_S)
            return True
        except Exception as exc:  # noqa: BLE001 - any other: not ready; what it was, in the log only
            log.warning("readiness: NATS did not answer a PING: %r", exc)
            return True
        return False
