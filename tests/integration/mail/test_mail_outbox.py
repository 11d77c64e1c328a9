"""OutboxMailer on a real filesystem: one parseable .eml per export and kind, rewritten on redelivery."""

from __future__ import annotations

import datetime as dt
import email
import shutil
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path

from services.notifier.mail import Email, OutboxMailer, failed_email, ready_email


def read_eml(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


async def test_writes_a_parseable_eml_with_text_and_html(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path / "outbox", sender="Grove Export <exports@grove.test>")

    channel = await outbox.send(ready)

    assert channel == "outbox"
    assert outbox.last_path == tmp_path / "outbox" / "exp_3f2a9c.ready.tenant_tom.eml"
    msg = read_eml(outbox.last_path)
    assert msg["To"] == "wanderer@example.org"
    assert msg["Subject"] == "Your Grove export is ready"
    assert msg["Message-ID"] == "<exp_3f2a9c.ready.tenant_tom@grove.test>"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert "<script>alert(1)</script> Tom & Jerry" in text.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Tom &amp; Jerry" in html.get_content()


async def test_the_outbox_folder_is_made_by_the_first_write_and_again_if_removed(tmp_path: Path, ready: Email) -> None:
    """The folder is made when a write finds it missing, not checked before every write."""
    outbox = OutboxMailer(tmp_path / "var" / "outbox")

    await outbox.send(ready)
    shutil.rmtree(tmp_path / "var")
    await outbox.send(ready)

    assert [p.name for p in (tmp_path / "var" / "outbox").iterdir()] == ["exp_3f2a9c.ready.tenant_tom.eml"]


async def test_redelivery_rewrites_the_same_file(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path)

    await outbox.send(ready)
    await outbox.send(replace(ready, subject="Your Grove export is ready (again)"))

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["exp_3f2a9c.ready.tenant_tom.eml"]  # and no temp files left behind
    assert read_eml(tmp_path / files[0])["Subject"] == "Your Grove export is ready (again)"


async def test_ready_and_failed_emails_of_one_export_are_separate_files(tmp_path: Path, ready: Email) -> None:
    outbox = OutboxMailer(tmp_path)
    failed = failed_email(
        to="wanderer@example.org",
        username="Zoë",
        reason="The content database was unavailable.",
        export_id="exp_3f2a9c",
        tenant_id="tenant_tom",
        download_page_url="https://grove.test/arbor/export",
    )

    await outbox.send(ready)
    await outbox.send(failed)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp_3f2a9c.failed.tenant_tom.eml", "exp_3f2a9c.ready.tenant_tom.eml"]
    body = read_eml(tmp_path / "exp_3f2a9c.failed.tenant_tom.eml").get_body(preferencelist=("plain",))
    assert body is not None and "Hi Zoë," in body.get_content()


async def test_two_tenants_exports_with_the_same_id_get_two_emails(tmp_path: Path, ready: Email) -> None:
    """Export ids are unique within a tenant only (a gateway of one's own picks them): another
    tenant's export of the same id must not overwrite this one's email, nor share its Message-ID."""
    outbox = OutboxMailer(tmp_path, sender="Grove Export <exports@grove.test>")
    other = ready_email(to="quinn@example.org", username="Quinn", item_counts={"posts": 1}, size_bytes=1,
                        expires_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), download_page_url="https://grove.test/x",
                        sha256="cd" * 32, error_count=0, export_id="exp_3f2a9c", tenant_id="tenant_quinn")
    await outbox.send(ready)
    await outbox.send(other)
    files = sorted(tmp_path.iterdir())
    assert [read_eml(f)["To"] for f in files] == ["quinn@example.org", "wanderer@example.org"]
    assert len({read_eml(f)["Message-ID"] for f in files}) == 2


async def test_two_keys_that_read_alike_get_two_files(tmp_path: Path, ready: Email) -> None:
    """Seen: ``exp_1:ready:a:a2`` (tenant ``a``'s second attempt) and ``exp_1:ready:a_a2`` (tenant
    ``a_a2``'s first, export ids being unique within a tenant only) were both ``exp_1_ready_a_a2.eml``:
    the second email overwrote the first."""
    outbox = OutboxMailer(tmp_path)
    for key in ("a:a2", "a_a2", "exp_1:ready:a:a2", "exp_1:ready:a_a2"):
        await outbox.send(replace(ready, to=f"{key.replace(':', '-')}@example.org", idempotency_key=key))
    files = sorted(tmp_path.iterdir())
    assert len(files) == 4, [f.name for f in files]
    assert sorted(read_eml(f)["To"] for f in files) == sorted(
        f"{key}@example.org" for key in ("a-a2", "a_a2", "exp_1-ready-a-a2", "exp_1-ready-a_a2"))


async def test_an_email_written_under_the_old_name_is_rewritten_there(tmp_path: Path, ready: Email) -> None:
    """An outbox filled before the names changed (``:`` was ``_``): a redelivered send of the same key
    rewrites that file rather than adding a second copy of the email; a file of the old name that holds
    another key's email (the one the old names confused) is left alone."""
    outbox = OutboxMailer(tmp_path)
    await outbox.send(ready)
    assert outbox.last_path is not None
    old = tmp_path / "exp_3f2a9c_ready_tenant_tom.eml"  # what the previous version named it
    outbox.last_path.rename(old)
    await outbox.send(replace(ready, subject="again"))
    assert sorted(tmp_path.iterdir()) == [old] and read_eml(old)["Subject"] == "again"

    other = replace(ready, idempotency_key="exp_3f2a9c:ready:tenant:tom", to="other@example.org")
    await outbox.send(other)  # its old name is `old` too, but `old` holds tenant_tom's email
    assert outbox.last_path != old and read_eml(old)["To"] == "wanderer@example.org"
    assert len(list(tmp_path.iterdir())) == 2


async def test_an_address_not_ascii_is_written_as_smtp_would_send_it(tmp_path: Path, ready: Email) -> None:
    """Not ASCII before the @: the headers in UTF-8 (RFC 6532), as sent with SMTPUTF8; only the domain:
    its A-labels, in a 7-bit message. The bodies are 7-bit either way."""
    outbox = OutboxMailer(tmp_path)

    await outbox.send(replace(ready, to="josé@bücher.de"))
    assert outbox.last_path is not None
    data = outbox.last_path.read_bytes()
    assert read_eml(outbox.last_path)["To"] == "josé@bücher.de" and "josé@bücher.de".encode() in data
    assert data.split(b"\r\n\r\n", 1)[1].isascii()

    await outbox.send(replace(ready, to="anna@bücher.de", idempotency_key="exp_2:ready:t"))
    assert outbox.last_path is not None and outbox.last_path.read_bytes().isascii()
    assert read_eml(outbox.last_path)["To"] == "anna@xn--bcher-kva.de"
