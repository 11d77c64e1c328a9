"""What a failed step attempt leads to, decided from the fold alone (pure: no bus, no clock).

Attempts are counted in the log (each step's own ``…AttemptFailed``, ``StepFailed`` in older logs),
never by JetStream: the n-th failure of a step with ``max_attempts`` allowed is retried after
``base_delay * 2**(n-1)`` seconds until the last, which fails the export with a reason a person can
read. A permanent error (a store that refuses) gives up at once: retrying cannot help. A stopping
export (cancelled or ended) records nothing more, except for the step that runs *because* it is stopping (the cancel itself); nor does one
whose log is empty (erased by ``grove-export erase-tenant``). A step that may not fail the export
(the cancel: it always ends cancelled) is retried however many attempts it takes, the delay held at
the last retry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.core import events as ev
from shared.core import steps
from shared.core.lifecycle import ExportState

_DOING = {"catalog": "reading your content", "assemble": "building the archive", "finalize": "saving the archive",
          "notify": "sending the email", "cancel": "cancelling"}


@dataclass(frozen=True)
class Retry:
    attempt: int
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    attempt: int
    reason: str  # for the person: what failed, after how many attempts


@dataclass(frozen=True)
class Drop:
    """The export is stopping: ack the message, record nothing."""


def needs_the_step(state: ExportState, still_due: bool = False) -> bool:
    """Whether a failure of a step still counts for the export: not once it is erased (no first event),
    ended, or stopping (unless the step's own rule still holds: the cancel). The worker says a dropped
    failure as 'the export ended' only when this held as the run started."""
    return state.exists and not state.terminal and not (state.stopping and not still_due)


def after_failure(state: ExportState, step: str, reason: str, max_attempts: int,
                  base_delay_s: float, *, still_due: bool = False, permanent: bool = False) -> Retry | GiveUp | Drop:
    """``still_due``: the step's own should_run still holds (the cancel step runs while stopping)."""
    if not needs_the_step(state, still_due):
        return Drop()
    attempt = state.attempts_of(step) + 1
    if not can_fail_export(step):  # the cancel: it always ends cancelled, so it is retried, never given up
        return Retry(attempt, retry_delay(step, attempt, base_delay_s, max_attempts))
    doing = _DOING.get(step, step)
    if permanent:
        return GiveUp(attempt, f"Failed while {doing}: {reason} Retrying would not help until this is fixed; "
                               f"please contact support.")
    if attempt >= max_attempts:
        return GiveUp(attempt, f"Failed while {doing} after {attempt} attempts: {reason}")
    return Retry(attempt, retry_delay(step, attempt, base_delay_s, max_attempts))


def retry_delay(step: str, attempt: int, base_delay_s: float, max_attempts: int) -> float:
    """How long the next attempt waits after failed attempt ``attempt`` of ``step`` (its failure
    event says which): ``base_delay_s * 2**(attempt-1)``, held at the last retry's for a step retried without
    end (the cancel). The step worker naks with it; the janitor does not take an export waiting for it
    as dead. ``attempt`` is held to ``max_attempts`` (a failure event may say any count)."""
    n = max(1, min(attempt, max_attempts if can_fail_export(step) else max_attempts - 1))
    return base_delay_s * 2 ** (n - 1)


def can_fail_export(step: str) -> bool:
    """Whether ``step`` may fail the export (its own ``ExportFailed`` type, ``events.EXPORT_FAILED``,
    is in the step table, so its NATS user may publish it). The cancel may not: a cancel always ends
    cancelled."""
    spec = next((s for s in steps.STEPS if s.step == step), None)
    own = ev.EXPORT_FAILED.get(step)
    return spec is None or (own is not None and own.name() in spec.emits)


def deaths_before(beat: dict[str, Any] | None, last_seq: int | None = None) -> int:
    """How many runs of a step in a row ended with their process (a kill, out of memory, a crash),
    as the heartbeat a redelivered run finds tells it: a run that ends on its own deletes its
    heartbeat, so one still there was left by a run that died, and counts itself plus the deaths
    its own run had found (``beat``: as ``keys.parse_beat`` reads it). No heartbeat: none known (a
    run that dies before its first beat leaves none; a redelivered run beats at once).

    A dead run whose export's log moved after it started (``last_seq``, the log's sequence now,
    past the beat's ``since``) made progress: no crash loop, but a run killed beside another (an
    out-of-memory kill takes every export of its process) — its death starts a new row."""
    if beat is None:
        return 0
    since = beat.get("since")
    if (last_seq is not None and isinstance(since, int) and not isinstance(since, bool)
            and last_seq > since):
        return 1
    before = beat.get("deaths", 0)
    if not isinstance(before, int) or isinstance(before, bool) or not 0 <= before < 1000:
        before = 0
    return before + 1


def after_deaths(state: ExportState, step: str, deaths: int, max_deaths: int) -> GiveUp | None:
    """A step whose runs keep dying with their process is not run again for ever: after
    ``max_deaths`` in a row the export fails, with a reason a person can read."""
    if deaths < max_deaths:
        return None
    doing = _DOING.get(step, step)
    return GiveUp(state.attempts_of(step) + 1,
                  f"Failed while {doing}: the work stopped {deaths} times in a row before it was done "
                  f"(the service running it ended each time, for example out of memory). Please contact support.")
