"""What a janitor run did, and how it is said: the tally (:class:`Summary`), each action in the run's
words (:func:`told`), an error or a silent store in an operator's words. Pure: no bus, no store.

Every janitor line, from whichever module of the package, goes to the one logger :data:`log`, named
``services.janitor.main`` as the janitor's lines always were (operators' log queries filter on it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.core.keys import without_usernames
from shared.objectstore.port import StoreError, StoreRefused, StoreUnavailable
from shared.runtime.settings import Settings, masked_url

log = logging.getLogger("services.janitor.main")

UNACCOUNTED_NAMED = 5  # exports named in the summary line when the log does not hold them
STOPPED = "the run stopped there, nothing more was deleted or recorded, and the next run does the rest"


@dataclass
class Summary:
    expired: int = 0
    aborted: int = 0
    failed: int = 0
    cancelled: int = 0
    cleaned: int = 0
    forgotten: int = 0  # objects of exports the log no longer holds, past their age
    # objects of exports the log does not hold, written since its oldest message (decide.is_unaccounted):
    # left, and named, so that after a restore from an older backup an operator finds them
    unaccounted: dict[tuple[str, str], int] = field(default_factory=dict)
    unoffered: int = 0  # archives of exports that ended failed or cancelled
    left: int = 0  # exports and uploads an error stopped: the next run tries them again (the log says why)
    stopped: str | None = None  # why the run stopped before the end (the store did not answer), in a sentence
    actions: list[str] = field(default_factory=list)

    def line(self, dry_run: bool) -> str:
        def did(verb: str) -> str:
            return told(verb, dry_run)

        line = (f"janitor: {did('expire')} {self.expired} archives ({'deleting them' if dry_run else 'deleted'}), "
                f"{did('abort')} {self.aborted} "
                f"uploads, {did('fail')} {self.failed} stuck exports, {did('complete')} {self.cancelled} cancels, "
                f"{did('remove')} {self.cleaned} work objects")
        if self.unoffered:
            line += f", {did('delete')} {self.unoffered} archives of exports that did not complete"
        if self.forgotten:
            line += f", {did('delete')} {self.forgotten} objects of exports no longer in the log"
        if self.unaccounted:
            named = ", ".join(f"{t}/{e}" for t, e in sorted(self.unaccounted)[:UNACCOUNTED_NAMED])
            more = len(self.unaccounted) - UNACCOUNTED_NAMED
            line += (f", not deleted: {sum(self.unaccounted.values())} objects of {len(self.unaccounted)} exports "
                     f"the log does not hold ({named}{f' and {more} more' if more > 0 else ''}; written since its "
                     "oldest event, so not aged out of it: after a restore from an older backup, the exports "
                     "requested since it was taken — see the README's *The janitor*)")
        line += f"; {self.left} left for the next run (an error: see the log)" if self.left else ""
        return line + ("; stopped before the end by the object store (see stderr)" if self.stopped else "")

    def leave(self, what: str, error: Exception) -> None:
        """An error on one export (or upload) leaves it for the next run and stops nothing else."""
        self.left += 1
        log.warning("janitor: %s left for the next run: %s", without_usernames(what), without_usernames(said(error)))


def told(action: str, dry_run: bool) -> str:
    """An action (``expire exp_… (key)``, ``remove work object …``) as the run's output says it: ``would
    expire …`` in a dry run, ``expired …`` once done. A real run said ``expire 3 archives (deleting
    them)``, in the words of the plan, so its output could not be told from one that did nothing."""
    if dry_run:
        return f"would {action}"
    verb, _, rest = action.partition(" ")
    return " ".join(filter(None, (verb + ("d" if verb.endswith("e") else "ed"), rest)))


def said(error: Exception) -> str:
    """``error`` in words for a log line (its Python repr, ``StoreRefused('…')``, is none)."""
    if isinstance(error, StoreRefused):
        return f"the object store refused: {error}"
    if isinstance(error, StoreError):
        return f"the object store failed: {error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def store_silent(settings: Settings, error: StoreUnavailable) -> str:
    """Why a run stopped when the store answered nothing (``Summary.stopped``), in one sentence."""
    return f"the object store ({store_named(settings)}) did not answer ({_cause(error)}): {STOPPED}"


def _cause(error: StoreUnavailable) -> str:
    """The short cause of a store's silence: its code or the transport's error (``SlowDown``,
    ``EndpointConnectionError``), not the request's whole URL; the whole message when it has none."""
    text = str(error)
    head, sep, _ = text.partition(": ")
    return head if sep and head and " " not in head else text


def store_named(settings: Settings) -> str:
    """The exports bucket's store as an operator finds it in the settings."""
    if settings.store == "fs":
        return f"the filesystem store at {settings.store_root.resolve()}; GROVE_STORE_ROOT"
    endpoint = masked_url(settings.s3.endpoint_url, many=False) if settings.s3.endpoint_url else "AWS"
    return f"S3 at {endpoint}, bucket {settings.buckets.exports}; GROVE_S3__ENDPOINT_URL"
