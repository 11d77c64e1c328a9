"""What a failed step attempt leads to, decided from the fold alone (pure: no bus, no clock).

Attempts are counted in the log (``StepFailed``), never by JetStream: the n-th failure of a step
with ``max_attempts`` allowed is retried after ``base_delay * 2**(n-1)`` seconds until the last,
which fails the export with a reason a person can read. A permanent error (a store that refuses)
gives up at once: retrying cannot help. A stopping export (cancelled or ended) records nothing
more, except for the step that runs *because* it is stopping (the cancel itself); nor does one
whose log is empty (erased by ``grove-export erase-tenant``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def after_failure(state: ExportState, step: str, reason: str, max_attempts: int,
                  base_delay_s: float, *, still_due: bool = False, permanent: bool = False) -> Retry | GiveUp | Drop:
    """``still_due``: the step's own should_run still holds (the cancel step runs while stopping)."""
    if not state.exists or state.terminal or (state.stopping and not still_due):  # erased log: no first event
        return Drop()
    attempt = state.attempts_of(step) + 1
    doing = _DOING.get(step, step)
    if permanent:
        return GiveUp(attempt, f"Failed while {doing}: {reason} Retrying would not help until this is fixed; "
                               f"please contact support.")
    if attempt >= max_attempts:
        return GiveUp(attempt, f"Failed while {doing} after {attempt} attempts: {reason}")
    return Retry(attempt, base_delay_s * 2 ** (attempt - 1))
