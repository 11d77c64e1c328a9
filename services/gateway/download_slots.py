"""How many downloads each tenant has under way in this process, and the rule that bounds them.

One link — or one tenant's several links, one per finished export — could otherwise hold the whole
``GROVE_MAX_CONNECTIONS`` cap: a download in progress is never evicted for a newcomer (its reader may
be that slow), so about 400 slow downloads of one archive made every other user's connection a 503.
The bound is per tenant, not per link: a tenant has up to one finished archive per rate window
(168 a week at the default hour), each with its own link, so a per-link bound would multiply by
that. Counted per process: with several replicas, each holds at most this many of a tenant's.
Pure bookkeeping, no I/O: the download handler takes a slot and the response gives it back once
its send ends, however it ends.
"""

from __future__ import annotations

from collections import Counter


class DownloadSlots:
    """At most ``limit`` downloads at once per tenant."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: Counter[str] = Counter()

    def take(self, tenant: str) -> Slot | None:
        """A slot of ``tenant``'s, or None when it already holds ``limit`` of them."""
        if self._held[tenant] >= self.limit:
            return None
        self._held[tenant] += 1
        return Slot(self, tenant)

    def held(self, tenant: str) -> int:
        return self._held[tenant]

    def _give_back(self, tenant: str) -> None:
        self._held[tenant] -= 1
        if self._held[tenant] <= 0:
            del self._held[tenant]  # no entry per tenant that ever downloaded


class Slot:
    """One download's place; :meth:`release` gives it back (once, however often it is called)."""

    def __init__(self, slots: DownloadSlots, tenant: str) -> None:
        self._slots: DownloadSlots | None = slots
        self.tenant = tenant

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back(self.tenant)
