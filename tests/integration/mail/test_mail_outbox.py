"""OutboxMailer on a real filesystem: one parseable .eml per export and kind, rewritten on redelivery."""

from __future__ import annotations

import email
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path

from services.notifier.mail import Email, OutboxMailer, failed_email


def read_eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_writes_a_parseable_eml_with_text_and_html(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path / "outbox", sender="Grove Export <exports@grove.test>")

    channel = await outbox.send(ready)

    assert channel == "outbox"
    assert outbox.last_path == tmp_path / "outbox" / "exp_3f2a9c_ready.eml"
    msg = read_eml(outbox.last_path)
    assert msg["To"] == "wanderer@example.org"
    assert msg["Subject"] == "Your Grove export is ready"
    assert msg["Message-ID"] == "<exp_3f2a9c.ready@grove.test>"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "<script>alert(1)</script> Tom & Jerry" in text.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in html.get_content()


async def test_redelivery_rewrites_the_same_file(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path)

    await outbox.send(ready)
    await outbox.send(replace(ready, subject="Your Grove export is ready (again)"))

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["exp_3f2a9c_ready.eml"]  # and no temp files left behind
    assert read_eml(tmp_path / files[0])["Subject"] == "Your Grove export is ready (again)"


async def test_ready_and_failed_emails_of_one_export_are_separate_files(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path)
    failed = failed_email(
        to="wanderer@example.org",
        username="Zoë",
        reason="The content database was unavailable.",
        export_id="exp_3f2a9c",
        download_page_url="https://grove.test/arbor/export",
    )

    await outbox.send(ready)
    await outbox.send(failed)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp_3f2a9c_failed.eml", "exp_3f2a9c_ready.eml"]
    body = read_eml(tmp_path / "exp_3f2a9c_failed.eml").get_body(preferencelist=("plain",))
    assert body is not None and "Hi Zoë," in body.get_content()
