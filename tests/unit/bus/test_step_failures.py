"""A step's failed attempt is recorded only by that step's user: each step has a failure type of its
own (its subject names the step, and the generated permissions let only that step's user publish it),
and a body naming another step than its subject is forged. The older ``StepFailed``, whose subject
named no step, is still read from logs written before. Pure: no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from pydantic import ValidationError

from services.janitor.decide import is_dead
from shared.bus.permissions import USERS
from shared.core import events as ev
from shared.core import steps
from shared.core.lifecycle import fold
from shared.core.retry import GiveUp, Retry, after_failure
from tests.unit.test_state_fold import CATALOGED, UPLOAD, requested

E = {"export_id": "exp_1", "tenant_id": "t1"}
STEP_NAMES = get_args(ev.Step)
FAILING = sorted(ev.ATTEMPT_FAILED)  # the steps that record failed attempts: catalog, assemble, finalize, cancel


def _subject(type_name: str) -> str:
    return f"exports.t1.exp_1.{type_name}"


def _body(type_name: str, **fields: object) -> bytes:
    return json.dumps({**E, "type": type_name, "attempt": 1, "reason": "x", **fields}).encode()


@pytest.mark.parametrize("step", FAILING)
def test_a_steps_failure_on_its_own_subject_decodes_as_that_steps(step: str) -> None:
    event = ev.attempt_failed(step, **E, attempt=2, reason="boom")
    name = ev.ATTEMPT_FAILED[step].name()
    assert event.name() == name and event.step == step
    decoded = ev.decode("exports", _subject(name), event.to_json())
    assert decoded == event and isinstance(decoded, ev.StepFailed)


@pytest.mark.parametrize(("step", "other"), [(s, o) for s in FAILING for o in [*STEP_NAMES, "janitor", 7, None]
                                             if o != s])
def test_a_body_naming_another_step_than_its_subject_is_forged(step: str, other: object) -> None:
    """The catalog's user may publish on CatalogAttemptFailed only; a body there saying the assemble
    step failed is its password recording a failure that is not its step's: dropped, counted forged."""
    name = ev.ATTEMPT_FAILED[step].name()
    with pytest.raises(ev.ForgedEvent) as info:
        ev.decode("exports", _subject(name), _body(name, step=other, attempt=99))
    assert info.value.reason == "forged"


@pytest.mark.parametrize("step", FAILING)
def test_a_body_without_a_step_is_its_subjects_step(step: str) -> None:
    name = ev.ATTEMPT_FAILED[step].name()
    assert ev.decode("exports", _subject(name), _body(name)).step == step  # type: ignore[attr-defined]


def test_a_steps_failure_that_does_not_parse_is_malformed_not_forged() -> None:
    with pytest.raises(ev.BadEvent) as info:
        ev.decode("exports", _subject("AssembleAttemptFailed"), _body("AssembleAttemptFailed", attempt=-1))
    assert info.value.reason == "malformed"
    with pytest.raises(ev.BadEvent) as info:
        ev.decode("exports", _subject("AssembleAttemptFailed"), b"[]")
    assert info.value.reason == "malformed"


def test_no_step_can_write_another_steps_failure_type() -> None:
    with pytest.raises(ValidationError):
        ev.AssembleAttemptFailed(**E, step="catalog", attempt=1, reason="x")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        ev.attempt_failed("notify", **E, attempt=1, reason="x")  # the notifier records no failed attempt


def test_each_failure_type_names_the_step_it_is_for() -> None:
    for step, cls in ev.ATTEMPT_FAILED.items():
        assert cls.of_step == step and cls.model_fields["step"].default == step and issubclass(cls, ev.StepFailed)
        assert ev.EVENT_TYPES[cls.name()] is cls


@pytest.mark.parametrize("step", sorted(STEP_NAMES))
def test_an_older_step_failed_is_still_read_with_the_step_its_body_names(step: str) -> None:
    """Logs written before hold StepFailed for every step: exports in flight across the upgrade resume,
    retry and fail with the attempts those events counted."""
    old = _body("StepFailed", step=step, attempt=3)
    event = ev.decode("exports", _subject("StepFailed"), old)
    assert type(event) is ev.StepFailed and (event.step, event.attempt) == (step, 3)


def test_attempts_count_on_across_the_upgrade() -> None:
    """An export whose assembly failed twice under the older release (StepFailed) and once since
    (AssembleAttemptFailed) has used three attempts: its fourth failure fails the export."""
    old = [ev.StepFailed(**E, step="assemble", attempt=n, reason="x") for n in (1, 2)]
    s = fold([requested(), CATALOGED, UPLOAD, *old, ev.AssembleAttemptFailed(**E, attempt=3, reason="y")])
    assert s.attempts == (("assemble", 3),) and s.last_step_error == "y" and s.last_event == "AssembleAttemptFailed"
    assert isinstance(after_failure(s, "assemble", "z", 4, 1.0), GiveUp)
    assert isinstance(after_failure(fold([requested(), CATALOGED, UPLOAD, *old]), "assemble", "z", 4, 1.0), Retry)


@pytest.mark.parametrize("type_name", ["StepFailed", "AssembleAttemptFailed"])
def test_the_janitor_waits_out_the_retry_after_either_kind_of_failure(type_name: str) -> None:
    now = datetime(2031, 1, 1, tzinfo=UTC)
    failed = ev.parse_event(type_name, {**E, "step": "assemble", "attempt": 3, "reason": "x"})
    s = fold([requested(), CATALOGED, UPLOAD, failed])
    kw = {"retry_base_delay_s": 120.0, "max_attempts": 4}  # the retry waits 480 s
    assert not is_dead(s, type_name, now - timedelta(seconds=700), False, 300, now, **kw)
    assert is_dead(s, type_name, now - timedelta(seconds=781), False, 300, now, **kw)


def test_only_a_steps_own_user_may_publish_its_failure_and_nobody_the_older_type() -> None:
    """The step table generates the permissions: each failure type has one publisher, its step's."""
    for step, cls in ev.ATTEMPT_FAILED.items():
        assert steps.publishers_of(cls.name()) == (steps.step(step).service,), cls.name()
    assert steps.publishers_of("StepFailed") == () and "StepFailed" in steps.RETIRED_EVENTS
    assert not any("StepFailed" in u.events for u in USERS)


async def test_a_step_run_after_the_upgrade_counts_on_from_the_older_failures_in_its_own_type() -> None:
    """An export in flight across the upgrade: its catalog failed twice under the older release. The
    next failure is the third attempt, recorded as CatalogAttemptFailed (the catalog's user may publish
    nothing else); the one after that is the last of four and fails the export."""
    import asyncio

    from shared.bus.connect import Bus
    from shared.eventlog.memory import InMemoryEventLog
    from shared.runtime.settings import Settings
    from shared.runtime.worker import StepContext, StepError, StepWorker
    from tests.unit.test_worker_tenant_bound import Beats, FakeMsg

    req = requested()
    log = InMemoryEventLog()
    for seq, event in enumerate([req, *(ev.StepFailed(**E, step="catalog", attempt=n, reason="x") for n in (1, 2))]):
        await log.append(event, seq)
    bus = Bus(nc=None, js=None, log=log, heartbeats=Beats(), admission=None)  # type: ignore[arg-type]

    async def work(ctx: StepContext) -> None:
        raise StepError("The content database did not answer.")

    worker = StepWorker("catalog", bus, Settings(progress_interval_s=60, ack_wait_s=120, step_attempts=4), work,
                        lambda loaded: True)
    for _ in range(2):
        await worker.handle(FakeMsg("exports.t1.exp_1.ExportRequested", data=req.to_json()))  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.gather(*worker.running.values()), 5)
    events = [e async for _, e in log.history("t1", "exp_1")]
    assert [e.name() for e in events] == ["ExportRequested", "StepFailed", "StepFailed", "CatalogAttemptFailed",
                                          "ExportFailedAtCatalog"]
    assert events[3].attempt == 3 and "after 4 attempts" in events[4].reason  # type: ignore[attr-defined]
