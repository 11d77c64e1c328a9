"""The per-tenant download bound as bookkeeping: no server, no I/O."""

from __future__ import annotations

from services.gateway.download_slots import DownloadSlots


def test_a_tenant_gets_at_most_the_limit_and_other_tenants_are_counted_apart() -> None:
    slots = DownloadSlots(2)
    held = [slots.take("a"), slots.take("a")]
    assert all(held) and slots.take("a") is None
    assert slots.take("b") is not None and slots.held("b") == 1


def test_a_slot_given_back_twice_frees_one_place_only() -> None:
    slots = DownloadSlots(2)
    first, second = slots.take("a"), slots.take("a")
    assert first is not None and second is not None
    first.release()
    first.release()  # the send's end and an error path may both give it back
    assert slots.held("a") == 1
    assert slots.take("a") is not None and slots.take("a") is None
    second.release()
    assert slots.held("a") == 1
