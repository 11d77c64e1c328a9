"""Which exports the log holds: the ExportRequested subjects whose tokens are ids (:func:`request_subjects`,
:func:`owners`), less those that hold no request (:func:`requested`), judged from their own messages
before a run reads any export's history (the rule is ``decide.no_request``; this module only reads).

Any user can have the server store a body on any ``<prefix>.<t>.<x>.ExportRequested`` (a PubAck aimed
there): each such subject was an export to the janitor, read in full twice a run with a warning each
time. Subjects holding one message (nearly all) are read the last message of 512 at a time from the
stream's per-subject index; the few holding several are read in one pass over every request subject
(a read of a literal subject from its first message walks the stream up to its next one: a pass per
subject cost the square of the stream). Memory stays one verdict a subject, whatever the bodies weigh.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext

from services.janitor.decide import no_request
from services.janitor.summary import log
from shared.core import events as ev
from shared.eventlog.directget import DirectGetError, Stored, every_stored, last_of_each, subject_counts
from shared.runtime import metrics

AT_ONCE = 512  # subjects whose last message one read brings (the server's cap: 1,024)


@dataclass
class _Seen:
    count: int  # messages listed on the subject
    read: int = 0
    reason: str | None = None
    request: bool = False


def _judge(seen: _Seen, prefix: str, m: Stored) -> None:
    seen.read += 1
    reason = no_request(prefix, [(m.subject, m.data, m.answer)])
    if reason is None:
        seen.request = True
    else:
        seen.reason = reason


def owners(prefix: str, subjects: Iterable[str]) -> list[tuple[str, str]]:
    """(tenant, export) of each ExportRequested subject whose tokens are ids, sorted
    (``events.export_of_subject``: a ``*`` there is no export, it names them all)."""
    return [owner for s in sorted(subjects) if (owner := ev.export_of_subject(prefix, s)) is not None]


async def request_subjects(js: JetStreamContext, stream: str, prefix: str) -> dict[str, int]:
    """Stored messages per ExportRequested subject (every page of the server's answer)."""
    subject = f"{prefix}.*.*.ExportRequested"
    found = await subject_counts(js, stream, subject)
    if not found and ((await js.stream_info(stream)).state.messages or 0) > 0:
        # very old servers: fall back to reading them (counted as many as each appears)
        async for m in every_stored(js, stream, subject):
            found[m.subject] = found.get(m.subject, 0) + 1
    return found


async def requested(js: JetStreamContext, stream: str, prefix: str, counts: dict[str, int]) -> list[tuple[str, str]]:
    """The exports among ``counts``' subjects (:func:`request_subjects`) whose ExportRequested subject
    holds a request, judged from those messages alone before anything else is read (:func:`no_requests`).
    The rest (PubAcks or bodies any user had the server store there) are left out, with one line for
    them all instead of a full read and a warning each, every run."""
    subjects = {s: n for s, n in counts.items() if ev.export_of_subject(prefix, s) is not None}
    junk = await no_requests(js, stream, prefix, subjects)
    if junk:
        reasons = collections.Counter(junk.values())
        for reason, n in reasons.items():
            metrics.EVENTS_REJECTED.labels("log", reason).inc(n)
        log.warning("janitor: %d ExportRequested subjects hold no request (%s): no exports, not read further",
                    len(junk), ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())))
    return owners(prefix, (s for s in subjects if s not in junk))


async def no_requests(js: JetStreamContext, stream: str, prefix: str, counts: dict[str, int]) -> dict[str, str]:
    """The subjects among ``counts`` (subject → messages stored, as listed) none of whose listed
    messages is a request, with why (``malformed`` / ``forged``). A subject not judged — a read refused
    or cut short, one that grew while it was judged — is not among them: never an export left out."""
    seen = {s: _Seen(n) for s, n in counts.items() if n > 0}
    single = [s for s, v in seen.items() if v.count == 1]
    while single:
        chunk, single = single[:AT_ONCE], single[AT_ONCE:]
        try:
            got = await last_of_each(js, stream, chunk)
        except DirectGetError:
            continue  # refused: each is read as an export, as before
        for m in got:
            if m.subject in seen and not seen[m.subject].read:
                _judge(seen[m.subject], prefix, m)
        if got:  # cut at the answer's bytes: the rest asked again (each answer judges at least one)
            single = [s for s in chunk if not seen[s].read] + single
    if any(v.count > 1 for v in seen.values()):
        async for m in every_stored(js, stream, f"{prefix}.*.*.ExportRequested"):
            v = seen.get(m.subject)
            if v is not None and v.count > 1 and not v.request and v.read < v.count:
                _judge(v, prefix, m)
    junk = {s: v.reason for s, v in seen.items() if not v.request and v.read == v.count and v.reason}
    if junk:
        # Messages are only added: a count unchanged since the listing means every message judged was
        # all there was (a request stored after the listing is the next run's, as it always was).
        now = await subject_counts(js, stream, f"{prefix}.*.*.ExportRequested")
        junk = {s: r for s, r in junk.items() if now.get(s) == counts[s]}
    return {s: r for s, r in junk.items() if r is not None}
