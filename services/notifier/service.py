"""The notify step: one email per export (ready or failed), never a gate on completion.

A redelivered event after NotificationSent/NotificationFailed sends nothing (decided from the
fold). Nor does one after an email whose NotificationSent the log did not take (no PubAck, a 503:
its storage full, no leader): the process remembers the emails it sent and has not recorded
(:attr:`Notifier.unrecorded`), and its next run for the export records the one it sent instead of
sending it again. A crash between the send and its event can send twice: the HTTP backend passes the
export id as an idempotency key so the mail service can drop the repeat; SMTP cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable

from services.notifier.mail import Email, MailError, failed_email, ready_email
from services.notifier.mail.errors import one_line
from services.notifier.mail.port import Mailer
from services.notifier.mail.retry import send_with_retries
from shared.core import events as ev
from shared.core.mailaddr import with_ascii_domain, with_unicode_domain
from shared.eventlog.jetstream import Loaded
from shared.runtime import faults
from shared.runtime.settings import Settings
from shared.runtime.worker import StepContext

log = logging.getLogger(__name__)
# How long a shutdown waits for the email in flight: inside the deploy files' 30 s grace before SIGKILL.
SHUTDOWN_WAIT_S = 20.0
# Emails sent whose NotificationSent the log has not taken yet, remembered by one process (the oldest
# forgotten past this many: each is an idempotency key and a channel name, some 100 bytes).
UNRECORDED_LIMIT = 10_000


def should_run(loaded: Loaded) -> bool:
    return loaded.state.email_due


def dead_end(settings: Settings) -> Callable[[Loaded, str], ev.Event]:
    """What the worker records when the notifier's runs for an export keep dying with their process
    (``GROVE_STEP_DEATHS`` in a row): the email failed; the export stays as it is. Without it, a
    notifier killed after each SMTP send (which cannot drop a repeat) would send for ever."""

    def failed(loaded: Loaded, reason: str) -> ev.Event:
        s = loaded.state
        return ev.NotificationFailed(export_id=s.export_id, tenant_id=s.tenant_id, channel=settings.mail.backend,
                                     reason=reason, kind="ready" if s.completed is not None else "failed")

    return failed


class Notifier:
    def __init__(self, settings: Settings, mailer: Mailer) -> None:
        self.settings = settings
        self.mailer = mailer
        # idempotency key → channel of each email this process sent and whose NotificationSent did not
        # get into the log: the append raised (LogUnavailable: the log refused it, 503, or never
        # answered), the worker handed the trigger back, and its redelivery found the email still due.
        # Sent again, the person got one more copy per redelivery for as long as the log refused — an
        # email every few seconds while its storage was full. The next run records it instead.
        self.unrecorded: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, ctx: StepContext) -> None:
        s = ctx.state
        req = s.request
        assert req is not None
        page = self.settings.mail.download_page_url
        if s.completed is not None:  # the same choice as dead_end's
            c = s.completed
            kind = "ready"
            email = ready_email(to=req.user_email, username=req.username, item_counts=c.item_counts,
                                size_bytes=c.size_bytes, expires_at=c.expires_at, download_page_url=page,
                                sha256=c.sha256, error_count=c.error_count, export_id=req.export_id,
                                tenant_id=req.tenant_id, attempt=s.attempt, resend=s.resends)
        else:
            kind = "failed"
            reason = s.failure.reason if s.failure else "unknown"
            email = failed_email(to=req.user_email, username=req.username, reason=reason,
                                 export_id=req.export_id, tenant_id=req.tenant_id, download_page_url=page,
                                 attempt=s.attempt, resend=s.resends)
        # A shutdown (SIGTERM: a deploy, a scale-down) lets the send in flight end — for at most
        # SHUTDOWN_WAIT_S: SMTP's timeout is per command, so a slow relay's whole send can take several
        # times it — and its outcome be logged before the run stops: cut off while the mail server
        # held the message, the run was redelivered and the person got the email twice (SMTP cannot
        # drop a repeat). A wait between attempts ends at once: nothing is in flight then.
        stopping = asyncio.Event()
        sending = asyncio.ensure_future(self._send(ctx, email, kind, stopping))
        try:
            await asyncio.shield(sending)
        except asyncio.CancelledError:
            if sending.done():
                raise
            stopping.set()
            log.info("email for %s: shutting down; the send in flight ends first", req.export_id)
            with contextlib.suppress(asyncio.CancelledError, Exception):  # TimeoutError: cut off after all
                await asyncio.wait_for(sending, SHUTDOWN_WAIT_S)
            raise

    async def _send(self, ctx: StepContext, email: Email, kind: str, stopping: asyncio.Event) -> None:
        req = ctx.state.request
        assert req is not None
        base = dict(export_id=req.export_id, tenant_id=req.tenant_id)
        mail = self.settings.mail

        async def wait(delay: float) -> None:  # between attempts: a shutdown ends it, and the run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            if stopping.is_set():
                raise asyncio.CancelledError("shutting down between attempts")

        channel = self.unrecorded.get(email.idempotency_key)
        if channel is not None:  # sent by this process's run before, its record refused by the log
            log.info("email for %s was sent before; recording it", req.export_id)
            await self._record_sent(ctx, email, channel, kind)
            return
        try:
            channel = await send_with_retries(self.mailer, email, mail.attempts, mail.retry_base_delay, wait)
        except Exception as e:  # MailError, or anything unexpected: recorded, never a retry loop
            reason = e.reason if isinstance(e, MailError) else one_line(f"{type(e).__name__}: {e}")
            log.warning("email for %s not sent: %s", req.export_id, _without_address(reason, req.user_email))
            await ctx.append(ev.NotificationFailed(**base, channel=mail.backend, reason=reason, kind=kind),
                             msg_id=f"{req.export_id}:NotificationFailed:{kind}")
            return
        faults.point("notify.sent_not_logged")
        self.unrecorded[email.idempotency_key] = channel
        while len(self.unrecorded) > UNRECORDED_LIMIT:
            self.unrecorded.popitem(last=False)
        await self._record_sent(ctx, email, channel, kind)

    async def _record_sent(self, ctx: StepContext, email: Email, channel: str, kind: str) -> None:
        """Append NotificationSent for ``email``; once the log holds it, the email is no longer unrecorded.
        An append that raises leaves it remembered: the worker hands the trigger back, and the next run
        (its email still due, so not recorded meanwhile) comes back here instead of sending it again."""
        req = ctx.state.request
        assert req is not None
        await ctx.append(ev.NotificationSent(export_id=req.export_id, tenant_id=req.tenant_id, channel=channel,
                                             kind=kind), msg_id=f"{req.export_id}:NotificationSent:{kind}")
        self.unrecorded.pop(email.idempotency_key, None)


REQUESTER = "<the requester's address>"


def _without_address(reason: str, address: str) -> str:
    """The reason for the log: a mail server's refusal quotes the recipient (`550 5.1.1 <ann@…>: Recipient
    address rejected`, and aiosmtplib names it too), and the log is not erased by `erase-tenant`; the
    NotificationFailed event, which is, keeps it as the server said it. Any case: servers lower it. An
    address whose domain is not ASCII is quoted as it was sent, with A-labels (anna@xn--bcher-kva.de), and
    one given with A-labels may be quoted with its U-labels; composed or decomposed, in part or whole (a
    server or mail service may normalise what it quotes: ``josé`` is 4 or 5 code points), so both sides
    are compared composed (NFC), which changes nothing the log line shows."""
    if not address:
        return reason
    forms = [address]
    with contextlib.suppress(ValueError):  # not one address: its text as it is is all there is
        forms += [with_ascii_domain(address), with_unicode_domain(address)]
    reason = unicodedata.normalize("NFC", reason)
    for form in sorted({unicodedata.normalize("NFC", f) for f in forms}, key=len, reverse=True):
        reason = re.sub(re.escape(form), REQUESTER, reason, flags=re.IGNORECASE)
    return reason
