"""The pure admission decision: one active export, then one new export per hour; failures are free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.admission import (
    SLOT_FIELDS,
    Admit,
    Conflict,
    Mismatch,
    RateLimited,
    Replay,
    Slot,
    being_admitted,
    decide,
    match_idempotency,
    rate_text,
)

NOW = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)
HOUR, TIMEOUT = 3600.0, 30.0


def run(slot: Slot | None, status: str | None, now: datetime = NOW, idem: str | None = None):
    return decide(now, slot, status, new_export_id="exp_new", window_s=HOUR, reservation_timeout_s=TIMEOUT,
                  idempotency=idem)


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def test_a_tenant_with_no_slot_is_admitted_and_the_slot_reserves_the_new_export():
    decision = run(None, None, idem="k:b")
    assert decision == Admit(Slot("exp_new", NOW, None, None, "k:b"))


@pytest.mark.parametrize("status", ["pending", "cataloging", "assembling", "uploading"])
def test_an_active_export_conflicts_with_its_id(status):
    assert run(Slot("exp_old", ago(hours=5)), status) == Conflict("exp_old")


def test_a_fresh_reservation_without_events_conflicts():
    assert run(Slot("exp_old", ago(seconds=29)), None) == Conflict("exp_old")


def test_a_reservation_without_events_frees_itself_after_the_timeout_and_does_not_count():
    decision = run(Slot("exp_old", ago(seconds=31), ago(hours=2), "exp_older"), None)
    assert decision == Admit(Slot("exp_new", NOW, ago(hours=2), "exp_older"))


@pytest.mark.parametrize("status", ["complete", "expired"])
def test_a_finished_export_within_the_hour_rate_limits_with_the_time_left(status):
    decision = run(Slot("exp_old", ago(minutes=20, seconds=0.5)), status)
    assert decision == RateLimited(ago(minutes=20, seconds=0.5) + timedelta(hours=1), 2400)


def test_a_finished_export_older_than_the_hour_counts_as_the_last_start():
    decision = run(Slot("exp_old", ago(minutes=61)), "complete")
    assert decision == Admit(Slot("exp_new", NOW, ago(minutes=61), "exp_old"))


def test_a_failed_export_does_not_use_up_the_hour():
    decision = run(Slot("exp_old", ago(minutes=5)), "failed")
    assert decision == Admit(Slot("exp_new", NOW, None, None))


@pytest.mark.parametrize("status", ["cancelled", "complete", "expired"])
def test_a_cancelled_export_uses_up_the_hour_like_a_complete_one(status):
    decision = run(Slot("exp_old", ago(minutes=5)), status)
    assert isinstance(decision, RateLimited) and decision.retry_after_s == 3300


def test_a_failure_does_not_hide_an_earlier_export_that_counts():
    decision = run(Slot("exp_failed", ago(minutes=5), ago(minutes=30), "exp_done"), "failed")
    assert isinstance(decision, RateLimited) and decision.retry_after_s == 1800


def test_retry_after_is_at_least_one_second():
    decision = run(Slot("exp_old", ago(seconds=3599.9)), "complete")
    assert isinstance(decision, RateLimited) and decision.retry_after_s == 1


def test_the_slot_survives_a_json_round_trip():
    slot = Slot("exp_a", NOW, ago(hours=3), "exp_b", "k:b")
    assert Slot.from_json(slot.to_json()) == slot
    assert set(slot.to_json()) >= {"activeExportId", "reservedAt", "lastStartedAt", "lastExportId"}


def test_the_same_idempotency_key_and_body_replays_the_active_export():
    slot = Slot("exp_a", ago(seconds=1), idempotency="k:b")
    assert match_idempotency(slot, None, NOW, TIMEOUT, "k:b") == Replay("exp_a", reserved_at=ago(seconds=1))
    assert match_idempotency(slot, "failed", NOW, TIMEOUT, "k:b") == Replay("exp_a")


def test_the_same_idempotency_key_with_another_body_is_a_mismatch():
    assert match_idempotency(Slot("exp_a", NOW, idempotency="k:b"), None, NOW, TIMEOUT, "k:c") == Mismatch("exp_a")


def test_other_keys_and_abandoned_reservations_do_not_match():
    slot = Slot("exp_a", ago(seconds=31), idempotency="k:b")
    assert match_idempotency(slot, "pending", NOW, TIMEOUT, "j:b") is None
    assert match_idempotency(slot, None, NOW, TIMEOUT, "k:b") is None
    assert match_idempotency(None, None, NOW, TIMEOUT, "k:b") is None
    assert match_idempotency(slot, "pending", NOW, TIMEOUT, None) is None


# -- a slot written by a publisher of its own (README, "Admission": steps 1–6 on the same key) ------
# The README gives the slot's fields, not their encoding, and a gateway of one's own writes them:
# a time without a zone, epoch milliseconds or text that is no time made every POST of the tenant a
# 500 (TypeError in ``now - reserved_at``) until someone rewrote the key — ``grove-export unlock`` too
# read it with the same Slot.from_json. A field that cannot be read is no value (and says so).
@pytest.mark.parametrize(("raw", "unreadable"), [
    ({"activeExportId": "exp_x", "reservedAt": "2026-02-22T10:30:00"}, ["reservedAt"]),
    ({"activeExportId": "exp_x", "reservedAt": 1771756200000}, ["reservedAt"]),
    ({"lastExportId": "exp_y", "lastStartedAt": "yesterday"}, ["lastStartedAt"]),
    ({"lastExportId": "exp_y", "lastStartedAt": "2026-02-22T10:00:00"}, ["lastStartedAt"]),
    ({"activeExportId": "*", "reservedAt": NOW.isoformat()}, ["activeExportId"]),
    ({"activeExportId": ["exp_x"], "idempotency": 7}, ["activeExportId", "idempotency"]),
])
def test_a_slot_field_that_cannot_be_read_is_no_value(raw: dict, unreadable: list[str]) -> None:
    slot = Slot.from_json(raw)
    assert sorted(slot.unreadable) == unreadable
    assert isinstance(run(slot, None, idem="k:b"), Admit)
    assert match_idempotency(slot, None, NOW, TIMEOUT, "k:b") is None


def test_a_slot_written_with_zoned_times_reads_as_before() -> None:
    raw = {"activeExportId": "exp_x", "reservedAt": "2026-02-22T10:29:50Z", "lastStartedAt": ago(minutes=5).isoformat(),
           "lastExportId": "exp_y", "idempotency": "k:b"}
    slot = Slot.from_json(raw)
    assert slot == Slot("exp_x", ago(seconds=10), ago(minutes=5), "exp_y", "k:b") and slot.unreadable == ()
    assert run(slot, None) == Conflict("exp_x")


def test_an_idempotency_key_is_honoured_for_24_hours_not_until_the_next_export():
    """Seen: the slot kept the reservation's key until the tenant's next export, so the same key
    sent again two days later (a client that reuses keys per day, say) got the two-day-old export
    back, and with another body a 422, never a new export — the README promises 24 h, which the
    remembered ``idem.`` entry keeps and the slot did not."""
    slot = Slot("exp_a", ago(hours=23, minutes=59), idempotency="k:b")
    assert match_idempotency(slot, "complete", NOW, TIMEOUT, "k:b") == Replay("exp_a")
    assert match_idempotency(slot, "complete", NOW, TIMEOUT, "k:c") == Mismatch("exp_a")
    old = Slot("exp_a", ago(hours=48), idempotency="k:b")
    assert match_idempotency(old, "complete", NOW, TIMEOUT, "k:b") is None
    assert match_idempotency(old, "complete", NOW, TIMEOUT, "k:c") is None
    assert isinstance(run(old, "complete", idem="k:b"), Admit)


def test_the_429_states_the_configured_window() -> None:
    # it said "One new export per hour." whatever GROVE_RATE_WINDOW_S was
    assert [rate_text(w) for w in (3600, 7200, 60, 600, 1, 90, 1.5, 5400)] == [
        "One new export per hour.", "One new export every 2 hours.", "One new export per minute.",
        "One new export every 10 minutes.", "One new export per second.", "One new export every 90 seconds.",
        "One new export every 1.5 seconds.", "One new export every 90 minutes."]


def test_the_fields_a_slot_is_known_by_are_those_it_is_written_with() -> None:
    # a stored object naming none of them is no gateway's slot (admission_kv: decided from the log)
    assert SLOT_FIELDS == set(Slot().to_json())


def test_a_reservation_whose_request_is_not_in_the_log_is_being_admitted_until_it_lapses() -> None:
    """One home for the rule unlock refuses by and erase waits for (services/operator/actions)."""
    slot = Slot("exp_1", NOW - timedelta(seconds=10))
    assert being_admitted(slot, None, NOW, 30) == "exp_1"
    assert being_admitted(slot, "pending", NOW, 30) is None  # its request is in the log: an export, not a request
    assert being_admitted(slot, None, NOW + timedelta(seconds=21), 30) is None  # lapsed
    assert being_admitted(Slot(), None, NOW, 30) is None
