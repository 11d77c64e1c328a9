"""What a failed step attempt leads to, decided from the fold alone (pure: no bus, no clock).

Attempts are counted in the log (``StepFailed``), never by JetStream: the n-th failure of a step
with ``max_attempts`` allowed is retried after ``base_delay * 2**(n-1)`` seconds until the last,
which fails the export with a reason a person can read. A stopping export (cancelled or ended)
records nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.state import ExportState

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
                  base_delay_s: float) -> Retry | GiveUp | Drop:
    if state.stopping:
        return Drop()
    attempt = state.attempts_of(step) + 1
    if attempt >= max_attempts:
        return GiveUp(attempt, f"Failed while {_DOING.get(step, step)} after {attempt} attempts: {reason}")
    return Retry(attempt, base_delay_s * 2 ** (attempt - 1))
