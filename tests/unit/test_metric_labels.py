"""Every metric label takes its value from a closed set of this code's own names, never from a message
or a request: the bus and the gateway are open to any publisher and client, and each distinct label
value is a time series kept for the life of the process and sent on every Prometheus scrape."""

from __future__ import annotations

import json

from prometheus_client import REGISTRY

from shared.core import events as ev
from shared.eventlog.jetstream import reject
from shared.runtime import metrics

HOSTILE = [f"x{i}\u202e{'y' * 50}" for i in range(500)]


def series(name: str) -> int:
    """How many series of metric family ``name`` the process keeps (and a scrape would send)."""
    return sum(len(family.samples) for family in REGISTRY.collect() if family.name == name)


def test_a_flood_of_hostile_events_adds_no_series() -> None:
    """Seen as a question, not a bug: 500 messages of distinct unknown types, forged subjects and
    malformed bodies, read by a step worker and the log, are counted under the same few series."""
    before = series("grove_events_rejected")
    for i, word in enumerate(HOSTILE):
        for subject, body in ((f"exports.t{i}.exp_{i}.{word}", b"{}"),            # unknown type
                              (f"exports.{word}.exp_{i}.ExportRequested", b"{}"),  # not an export subject
                              (f"exports.t{i}.exp_{i}.ExportRequested", json.dumps({"type": word}).encode())):
            try:
                ev.decode("exports", subject, body)
            except ev.BadEvent as e:
                reject("catalog", subject, e)
                reject("log", subject, e)
    assert series("grove_events_rejected") - before <= 2 * 3 * 2  # consumers × reasons × (_total, _created)


def test_a_label_value_from_outside_the_closed_set_is_counted_as_other() -> None:
    """Seen: nothing but each call site's care kept a label closed — ``labels(value)`` took any string,
    so one call site handing on a message's field would grow every service's memory and every scrape
    by one series per distinct value. Unknown values now fold into ``other``."""
    families = ("grove_step_runs", "grove_step_retries", "grove_exports_finished", "grove_events_rejected",
                "grove_consumer_pending_messages")
    before = {name: series(name) for name in families}
    for word in HOSTILE:
        metrics.STEP_RUNS.labels(word, word).inc()
        metrics.STEP_RETRIES.labels(word).inc()
        metrics.EXPORTS_FINISHED.labels(word).inc()
        metrics.EVENTS_REJECTED.labels(word, word).inc()
        metrics.CONSUMER_LAG.labels(word).set(1)
    grown = {name: series(name) - before[name] for name in families}
    assert all(n <= 2 for n in grown.values()), grown  # at most one new series (+ its _created sample)
    assert metrics.STEP_RUNS.labels("nope", "nope")._value.get() >= len(HOSTILE)
    assert metrics.STEP_RUNS.labels(metrics.OTHER, metrics.OTHER)._value.get() >= len(HOSTILE)


def test_the_names_this_code_uses_are_kept_as_they_are() -> None:
    assert metrics.STEP_RUNS.labels("catalog", "ok") is not metrics.STEP_RUNS.labels(metrics.OTHER, "ok")
    assert metrics.EVENTS_REJECTED.labels("read-model", "forged") is not \
        metrics.EVENTS_REJECTED.labels(metrics.OTHER, "forged")
    assert metrics.CONSUMER_LAG.labels("notifier-resend") is not metrics.CONSUMER_LAG.labels(metrics.OTHER)
    assert metrics.EXPORTS_FINISHED.labels("cancelled") is not metrics.EXPORTS_FINISHED.labels(metrics.OTHER)


def test_every_reason_an_event_is_dropped_for_is_in_the_closed_set() -> None:
    kinds = [ev.BadEvent, *ev.BadEvent.__subclasses__()]
    for kind in kinds:
        assert metrics.EVENTS_REJECTED.labels("log", kind.reason) is not \
            metrics.EVENTS_REJECTED.labels("log", metrics.OTHER), kind
