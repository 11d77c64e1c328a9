"""``erase-tenant`` finds a tenant's outbox emails by their Message-ID, not by a file-name pattern: an
underscore may be in a tenant id, so an outbox filled before the names became one per key has
``exp_1_ready_a_a2.eml``, tenant ``a``'s second attempt or tenant ``a_a2``'s first, and only the
message says which. A file that is not such an email stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.notifier.mail import OutboxMailer
from services.notifier.mail.message import Email, idempotency_key
from services.operator.erase import tenant_emails


def _send(outbox: OutboxMailer, tenant: str, export: str, attempt: int = 1, resend: int = 0) -> Path:
    email = Email(to=f"{tenant}@example.org", subject="ready", text="t", html="<p>t</p>",
                  idempotency_key=idempotency_key(tenant, export, "ready", attempt, resend))
    asyncio.run(outbox.send(email))
    assert outbox.last_path is not None
    return outbox.last_path


def test_the_message_id_decides_whose_email_a_file_is(tmp_path: Path) -> None:
    outbox = OutboxMailer(tmp_path / "outbox")
    second_attempt_of_a = _send(outbox, "a", "exp_1", attempt=2)
    first_of_a_a2 = _send(outbox, "a_a2", "exp_9")
    resent_of_a = _send(outbox, "a", "exp_2", attempt=3, resend=1)
    _send(outbox, "b", "exp_3")
    (tmp_path / "outbox" / "notes_a.eml").write_text("not an email of ours\n")  # no Message-ID: kept
    assert (second_attempt_of_a.name, first_of_a_a2.name) == ("exp_1.ready.a.a2.eml", "exp_9.ready.a_a2.eml")
    # written before the names changed: `.` was `_`, and both names read alike
    second_attempt_of_a = second_attempt_of_a.rename(second_attempt_of_a.with_name("exp_1_ready_a_a2.eml"))
    first_of_a_a2 = first_of_a_a2.rename(first_of_a_a2.with_name("exp_9_ready_a_a2.eml"))
    assert tenant_emails(tmp_path / "outbox", "a") == sorted([second_attempt_of_a, resent_of_a])
    assert tenant_emails(tmp_path / "outbox", "a_a2") == [first_of_a_a2]
    assert tenant_emails(tmp_path / "missing", "a") == []
