"""An export is failed at a step only by the service that gives up there: each publisher has a failure
type of its own (ExportFailedAtCatalog, …AtAssemble, …AtFinalize, ExportFailedByJanitor: its subject
names the step, and the generated permissions let only that service's user publish it), and a body
naming another step than its type's is forged. The older ``ExportFailed``, whose subject named no
step, is still read from logs written before and still reaches the notifier. Pure: no server."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from pydantic import ValidationError

from shared.bus.permissions import USERS
from shared.bus.topology import consumer_config
from shared.core import events as ev
from shared.core import steps
from shared.core.lifecycle import fold
from shared.core.retry import can_fail_export
from shared.runtime.settings import Settings
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, UPLOAD, requested

E = {"export_id": "exp_1", "tenant_id": "t1"}
GIVERS_UP = sorted(ev.EXPORT_FAILED)  # assemble, catalog, finalize, janitor
NAMED = [*get_args(ev.Step), "janitor"]


def _subject(type_name: str) -> str:
    return f"exports.t1.exp_1.{type_name}"


def _body(type_name: str, **fields: object) -> bytes:
    return json.dumps({**E, "type": type_name, "reason": "x", **fields}).encode()


@pytest.mark.parametrize("step", GIVERS_UP)
def test_a_failure_on_its_own_subject_decodes_as_that_publishers(step: str) -> None:
    event = ev.export_failed(step, **E, reason="The content database did not answer.")
    name = ev.EXPORT_FAILED[step].name()
    assert event.name() == name and event.step == step and isinstance(event, ev.ExportFailed)
    assert ev.decode("exports", _subject(name), event.to_json()) == event


@pytest.mark.parametrize(("step", "other"), [(s, o) for s in GIVERS_UP for o in [*NAMED, "gateway", 7, None]
                                             if o != s])
def test_a_body_naming_another_step_than_its_subject_is_forged(step: str, other: object) -> None:
    """The catalog's user may publish on ExportFailedAtCatalog only; a body there saying the assemble
    step gave up is its password failing an export at a step that is not its own: dropped, counted forged."""
    name = ev.EXPORT_FAILED[step].name()
    with pytest.raises(ev.ForgedEvent) as info:
        ev.decode("exports", _subject(name), _body(name, step=other))
    assert info.value.reason == "forged"


@pytest.mark.parametrize("step", GIVERS_UP)
def test_a_body_without_a_step_is_its_subjects_step(step: str) -> None:
    name = ev.EXPORT_FAILED[step].name()
    assert ev.decode("exports", _subject(name), _body(name)).step == step  # type: ignore[attr-defined]


def test_a_failure_that_does_not_parse_is_malformed_not_forged() -> None:
    for body in (json.dumps({**E, "step": "assemble"}).encode(), b"[]", b"{not json"):  # no reason; no object
        with pytest.raises(ev.BadEvent) as info:
            ev.decode("exports", _subject("ExportFailedAtAssemble"), body)
        assert info.value.reason == "malformed"


def test_a_body_naming_another_export_or_type_is_still_forged() -> None:
    with pytest.raises(ev.ForgedEvent):
        ev.decode("exports", _subject("ExportFailedAtAssemble"), _body("ExportFailedAtAssemble", export_id="exp_2"))
    with pytest.raises(ev.ForgedEvent):  # the older type's body on a new subject
        ev.decode("exports", _subject("ExportFailedAtAssemble"), _body("ExportFailed", step="assemble"))


def test_no_publisher_can_write_another_ones_failure_type() -> None:
    with pytest.raises(ValidationError):
        ev.ExportFailedAtAssemble(**E, step="catalog", reason="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ev.ExportFailedByJanitor(**E, step="assemble", reason="x")  # type: ignore[arg-type]
    for step in ("notify", "cancel"):  # neither ever fails the export
        with pytest.raises(KeyError):
            ev.export_failed(step, **E, reason="x")


def test_each_failure_type_names_the_step_it_is_for() -> None:
    assert GIVERS_UP == ["assemble", "catalog", "finalize", "janitor"]
    for step, cls in ev.EXPORT_FAILED.items():
        assert cls.of_step == step and cls.model_fields["step"].default == step and issubclass(cls, ev.ExportFailed)
        assert ev.EVENT_TYPES[cls.name()] is cls and cls.name().startswith("ExportFailed")
    assert ev.ExportFailed.of_step is None


@pytest.mark.parametrize("step", NAMED)
def test_an_older_export_failed_is_still_read_and_still_fails_the_export(step: str) -> None:
    """Logs written before hold ExportFailed for every step and the janitor: those exports stay failed,
    with the step and reason the event names (retry and resend work on them as before)."""
    event = ev.decode("exports", _subject("ExportFailed"), _body("ExportFailed", step=step, reason="old"))
    assert type(event) is ev.ExportFailed and event.step == step  # type: ignore[attr-defined]
    s = fold([requested(), event])
    assert s.status == "failed" and s.failure == event and s.email_due


# An export's log up to each step: where that step's failure counts.
AT_STEP: dict[str, list[ev.Event]] = {
    "catalog": [requested(), ev.CatalogStarted(**E)],
    "assemble": [requested(), CATALOGED, UPLOAD],
    "finalize": [requested(), CATALOGED, UPLOAD, ASSEMBLED, ev.FinalizeStarted(**E)],
    "janitor": [requested(), CATALOGED, UPLOAD],
}


@pytest.mark.parametrize("step", GIVERS_UP)
def test_each_publishers_failure_fails_the_export_at_its_step_as_the_older_type_did(step: str) -> None:
    s = fold([*AT_STEP[step], ev.export_failed(step, **E, reason="why")])
    assert (s.status, s.failure.step if s.failure else None, s.step) == ("failed", step, step)
    assert s.email_due and s.last_event == ev.EXPORT_FAILED[step].name()


@pytest.mark.parametrize(("step", "at"), [(step, at) for step in ("catalog", "assemble", "finalize")
                                          for at in AT_STEP if at not in (step, "janitor")])
def test_a_steps_failure_of_an_export_at_another_step_is_ignored(step: str, at: str) -> None:
    """Each step's user may publish its own failure on any export's subject: the catalog's password
    failed an export waiting for its assembly — or being finalized — and the failure email went out.
    A step's failure counts only while the export is at that step; elsewhere the fold ignores it
    (no failure, no email due, not the last event that moved the export), and the export goes on."""
    before = fold(AT_STEP[at])
    s = fold([*AT_STEP[at], ev.export_failed(step, **E, reason="forged")])
    assert (s.status, s.failure, s.email_due, s.last_event) == (before.status, None, False, before.last_event)
    assert s.step == before.step == ("assemble" if at == "janitor" else at)


@pytest.mark.parametrize(("step", "at"), [(step, at) for step in ("catalog", "assemble", "finalize")
                                          for at in AT_STEP if at not in (step, "janitor")])
def test_a_steps_failed_attempt_at_an_export_at_another_step_is_ignored(step: str, at: str) -> None:
    """Likewise a failed attempt: its count would use up the step's retries if the export comes back
    to it, and its reason would be shown as the export's last error."""
    s = fold([*AT_STEP[at], ev.ATTEMPT_FAILED[step](**E, attempt=99, reason="forged")])
    assert (s.attempts_of(step), s.last_step_error, s.last_event) == (0, None, fold(AT_STEP[at]).last_event)


def test_the_janitors_failure_and_the_older_types_count_at_any_step() -> None:
    for at in ("catalog", "assemble", "finalize"):
        assert fold([*AT_STEP[at], ev.export_failed("janitor", **E, reason="dead")]).status == "failed"
        assert fold([*AT_STEP[at], ev.ExportFailed(**E, step="catalog", reason="old")]).status == "failed"
        assert fold([*AT_STEP[at], ev.StepFailed(**E, step="catalog", attempt=2, reason="old")]).attempts_of(
            "catalog") == 2


@pytest.mark.parametrize("at", ["catalog", "assemble"])
def test_while_a_cancel_can_win_only_the_cancels_attempts_count(at: str) -> None:
    """A worker runs no step while a cancel wins (and its append is fenced on the log it read): a
    work step's failure then is a forgery — it failed the export the person was cancelling, with the
    failure email due. The cancel's own failed attempts count then, and only then."""
    cancelling = [*AT_STEP[at], ev.CancelRequested(**E)]
    assert fold([*cancelling, ev.CancelAttemptFailed(**E, attempt=1, reason="x")]).attempts_of("cancel") == 1
    assert fold([*AT_STEP[at], ev.CancelAttemptFailed(**E, attempt=1, reason="x")]).attempts_of("cancel") == 0
    s = fold([*cancelling, ev.export_failed(at, **E, reason="forged"), ev.ATTEMPT_FAILED[at](**E, attempt=9, reason="f")])
    assert (s.status, s.email_due, s.attempts_of(at), s.cancel_wins) == (fold(cancelling).status, False, 0, True)


@pytest.mark.parametrize("at", ["catalog", "assemble"])
def test_while_a_cancel_can_win_the_janitors_failure_is_ignored(at: str) -> None:
    """The janitor fails no export while a cancel can win (it completes a cancel nobody finishes as
    cancelled) and appends fenced on the log it read: its user's ExportFailedByJanitor there ended the
    export the person was cancelling 'failed' — not retryable, and the failure email instead of none.
    Ignored: the cancel goes on and ends the export cancelled."""
    cancelling = [*AT_STEP[at], ev.CancelRequested(**E)]
    before = fold(cancelling)
    s = fold([*cancelling, ev.export_failed("janitor", **E, reason="forged")])
    assert (s.status, s.failure, s.email_due, s.cancel_wins, s.last_event) == (
        before.status, None, False, True, before.last_event)
    done = fold([*cancelling, ev.export_failed("janitor", **E, reason="forged"),
                 ev.ExportCancelled(**E, aborted_upload=True)])
    assert (done.status, done.failure) == ("cancelled", None)
    # once FinalizeStarted is logged a late cancel loses, and a dead finalizer is the janitor's to fail
    late = [*AT_STEP["finalize"], ev.CancelRequested(**E), ev.export_failed("janitor", **E, reason="dead")]
    assert fold(late).status == "failed"


def test_once_finalize_started_a_late_cancel_leaves_the_finalizers_failure_counting() -> None:
    s = fold([*AT_STEP["finalize"], ev.CancelRequested(**E), ev.export_failed("finalize", **E, reason="why")])
    assert (s.status, s.step, s.email_due) == ("failed", "finalize", True)


def test_only_the_publisher_may_append_its_failure_and_nobody_the_older_type() -> None:
    """The step table generates the permissions: each failure type has one publisher."""
    for step, cls in ev.EXPORT_FAILED.items():
        owner = "janitor" if step == "janitor" else steps.step(step).service
        assert steps.publishers_of(cls.name()) == (owner,), cls.name()
    assert steps.publishers_of("ExportFailed") == () and "ExportFailed" in steps.RETIRED_EVENTS
    assert not any("ExportFailed" in u.events for u in USERS)
    # and the steps that fail exports are exactly those that may
    assert [s.step for s in steps.STEPS if can_fail_export(s.step)] == ["catalog", "assemble", "finalize"]


def test_the_failure_emails_durable_takes_every_failure_type_and_the_older_one() -> None:
    """notifier-failed filtered on ExportFailed alone would take none of the new types: no failure
    email would ever go out. It takes each type's subject, the older one's too (failures appended
    before the upgrade and not yet mailed)."""
    durable = next(c for c in steps.all_consumers() if c.durable == "notifier-failed")
    assert durable.triggers == ("ExportFailed", "ExportFailedAtCatalog", "ExportFailedAtAssemble",
                                "ExportFailedAtFinalize", "ExportFailedByJanitor")
    config = consumer_config(Settings(), durable)
    assert config.filter_subject is None
    assert config.filter_subjects == [f"exports.*.*.{name}" for name in durable.triggers]
    for other in steps.all_consumers():  # every other durable: one trigger, one filter subject as before
        if other is not durable:
            assert other.triggers == (other.trigger,)
            plain = consumer_config(Settings(), other)
            assert plain.filter_subject == f"exports.*.*.{other.trigger}" and not plain.filter_subjects
