"""Which ExportRequested subjects hold no request: judged from their own messages, before a run reads
any export's history (the rule is ``decide.no_request``; this module only reads).

Any user can have the server store a body on any ``<prefix>.<t>.<x>.ExportRequested`` (a PubAck aimed
there): each such subject was an export to the janitor, read in full twice a run with a warning each
time. Subjects holding one message (nearly all) are read the last message of 512 at a time from the
stream's per-subject index; the few holding several are read in one pass over every request subject
(a read of a literal subject from its first message walks the stream up to its next one: a pass per
subject cost the square of the stream). Memory stays one verdict a subject, whatever the bodies weigh.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext

from services.janitor.decide import no_request
from shared.eventlog.directget import BATCH, DirectGetError, Stored, get_batch, last_of_each, subject_counts

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
        seq = 1
        while True:
            batch = await get_batch(js, stream, seq=seq, subject=f"{prefix}.*.*.ExportRequested", batch=BATCH)
            for m in batch.messages:
                v = seen.get(m.subject)
                if v is not None and v.count > 1 and not v.request and v.read < v.count:
                    _judge(v, prefix, m)
            if not batch.messages or not batch.pending:
                break
            seq = batch.messages[-1].seq + 1
    junk = {s: v.reason for s, v in seen.items() if not v.request and v.read == v.count and v.reason}
    if junk:
        # Messages are only added: a count unchanged since the listing means every message judged was
        # all there was (a request stored after the listing is the next run's, as it always was).
        now = await subject_counts(js, stream, f"{prefix}.*.*.ExportRequested")
        junk = {s: r for s, r in junk.items() if now.get(s) == counts[s]}
    return {s: r for s, r in junk.items() if r is not None}
