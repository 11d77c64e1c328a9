"""The pure parts of the backends: MIME building, ids, file names, error classification, factory."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr

from services.notifier.mail import (
    Email,
    HttpMailer,
    OutboxMailer,
    PermanentMailError,
    SmtpMailer,
    TransientMailError,
    build_mailer,
    message_id,
    mime_bytes,
    outbox_filename,
    zephyr_body,
)
from services.notifier.mail.http import classify_status, parse_retry_after
from services.notifier.mail.smtp import translate_smtp_error
from shared.core.mailaddr import is_single_address
from shared.runtime.settings import MailSettings


def to_mime(email: Email, *, sender: str, date: datetime | None = None) -> EmailMessage:
    """What the backends send (:func:`mime_bytes`), read back as a mail reader sees it."""
    data = mime_bytes(email, sender=sender, date=date).replace(b"\r\n", b"\n")
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


EMAIL = Email(
    to="autumn@example.org",
    subject="Your Grove export is ready",
    text="Hi Zoë",
    html="<p>Hi Zo&euml;</p>",
    idempotency_key="exp_1:ready",
)
SENDER = "Grove Export <exports@grove.test>"


@pytest.mark.parametrize("to", ["victim@x.y, attacker@evil.z", "Victim <victim@x.y>", "v@x.y\r\nBcc: a@evil.z",
                                "v@x.y\n", "a@evil.z;v@x.y", "",
                                # RFC 2047 encoded words are atext, but the email package decodes them:
                                # the To header came out as "To: a@evil.com, b@evil.com@x.co"
                                "=?utf-8?b?YUBldmlsLmNvbSwgYkBldmlsLmNvbQ==?=@x.co",
                                "=?utf-8?q?victim=40evil.example=2C?=@b.co"])
async def test_every_mail_adapter_refuses_a_recipient_that_is_not_one_address(to: str, tmp_path) -> None:  # noqa: ANN001
    """The gateway checks the token's email claim; the adapters check again where mail is sent, so
    an event published around the gateway cannot make us mail a second recipient."""
    from dataclasses import replace

    from services.notifier.mail.http import HttpMailer
    from services.notifier.mail.outbox import OutboxMailer

    bad = replace(EMAIL, to=to)
    with pytest.raises(PermanentMailError, match="not exactly one email address"):
        to_mime(bad, sender=SENDER)
    with pytest.raises(PermanentMailError, match="not exactly one email address"):
        await OutboxMailer(tmp_path, sender=SENDER).send(bad)
    http = HttpMailer(url="http://127.0.0.1:9", api_key=None)  # nothing listens: a send would fail otherwise
    try:
        with pytest.raises(PermanentMailError, match="not exactly one email address"):
            await http.send(bad)
    finally:
        await http.close()
    assert not list(tmp_path.iterdir())


def test_to_mime_is_multipart_alternative_with_text_first() -> None:
    msg = to_mime(EMAIL, sender=SENDER, date=datetime(2026, 3, 1, 10, 30, tzinfo=UTC))

    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert msg["Date"] == "Sun, 01 Mar 2026 10:30:00 +0000"
    assert msg["Message-ID"] == "<exp_1.ready@grove.test>"
    assert msg["Auto-Submitted"] == "auto-generated"
    text = msg.get_body(preferencelist=("plain",))
    assert isinstance(text, EmailMessage) and text.get_content() == "Hi Zoë\n"


def _email_package_build(email: Email, sender: str, when: datetime, out: policy.Policy = policy.SMTP) -> bytes:
    """The message as ``EmailMessage`` builds it (how :func:`mime_bytes` did it before): the oracle."""
    msg = EmailMessage(policy=policy.default)
    msg["From"] = sender
    msg["To"] = email.to
    msg["Subject"] = email.subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id(email.idempotency_key, sender)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(email.text)
    msg.add_alternative(email.html, subtype="html")
    return msg.as_bytes(policy=out)


def _as_read(data: bytes) -> tuple[object, ...]:
    """What a recipient reads: every header but the boundary, each part's type, charset and text
    (its lines: a base64 body of the email package's decodes to LF line breaks, any other to CRLF)."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage) and not msg.defects
    heads = [(k, str(v)) for k, v in msg.items() if k != "Content-Type"]
    parts = [(p.get_content_type(), p.get_content_charset(), p.get_content().replace("\r\n", "\n"), p.defects)
             for p in msg.iter_parts()]
    return msg.get_content_type(), heads, parts


_ADDRESS = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,40}@[a-z0-9]{1,60}\.[a-z]{2,6}", fullmatch=True)
_SENDERS = st.sampled_from([SENDER, "exports@grove.test", "Zoë's Grove <exports@grove.test>",
                            '"Grove, Export" <exports@grove.test>', "Grove — exports " * 6 + "<x@grove.test>"])
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=400)  # a lone surrogate: both refuse it


@given(to=_ADDRESS, sender=_SENDERS, subject=st.text(st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                                                     min_size=1, max_size=120),
       text=_TEXT | st.sampled_from(["a" * 200, "line\r\nbreaks\rof\nevery kind\r", "", ".\n", "=\n ", "--" * 50]),
       html=_TEXT, key=st.text(max_size=30))
def test_mime_bytes_reads_the_same_as_the_email_packages_build(
        to: str, sender: str, subject: str, text: str, html: str, key: str) -> None:
    """Every header and both bodies as a recipient's mail program reads them are the ones the
    standard library's ``EmailMessage`` gives, for hostile names and text; the bytes are 7-bit, CRLF,
    no line over 78 octets but ``To`` (one address, not folded: at most 258)."""
    assume(is_single_address(to))
    email = Email(to=to, subject=subject, text=text, html=html, idempotency_key=key + ":ready")
    when = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    ours = mime_bytes(email, sender=sender, date=when)
    assert _as_read(ours) == _as_read(_email_package_build(email, sender, when))
    assert ours.isascii() and ours.endswith(b"\r\n")
    lines = ours.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert all(len(line) <= 78 or (line.startswith(b"To: ") and len(line) <= 258) for line in lines)


@pytest.mark.parametrize("to", ["josé@example.com", "用户@例子.广告", "Zoë@bücher.de"])
@pytest.mark.parametrize("sender", [SENDER, "Zoë's Grove <exports@grove.test>"])
def test_mime_bytes_for_smtputf8_reads_the_same_as_the_email_packages_utf8_build(to: str, sender: str) -> None:
    """RFC 6532: with SMTPUTF8 the headers are UTF-8 as they are (the SMTPUTF8 policy's build), the
    bodies 7-bit as always; without it, an address that needs it is refused, never sent mangled."""
    email = replace(EMAIL, to=to, subject="Ihr Export ist fertig, Zoë")
    when = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    ours = mime_bytes(email, sender=sender, date=when, utf8=True)
    theirs = _email_package_build(email, sender, when, policy.SMTPUTF8)
    assert _as_read(ours) == _as_read(theirs)
    assert f"To: {to}\r\n".encode() in ours and ours.split(b"\r\n\r\n", 1)[1].isascii()
    with pytest.raises(PermanentMailError, match="SMTPUTF8"):
        mime_bytes(email, sender=sender, date=when)


def test_mime_bytes_writes_a_domain_not_ascii_as_its_a_labels_in_a_7_bit_message() -> None:
    ours = mime_bytes(replace(EMAIL, to="anna@Bücher.de"), sender=SENDER)
    assert ours.isascii() and b"To: anna@xn--bcher-kva.de\r\n" in ours


def test_the_log_line_of_a_refusal_holds_no_address_in_either_form() -> None:
    from services.notifier.service import REQUESTER, _without_address

    reason = "550 5.1.1 <ANNA@xn--bcher-kva.de>: Recipient address rejected; anna@bücher.de"
    assert _without_address(reason, "anna@bücher.de") == f"550 5.1.1 <{REQUESTER}>: Recipient address rejected; {REQUESTER}"
    assert _without_address("x <a@b.c, d@e.f>", "a@b.c, d@e.f") == f"x <{REQUESTER}>"


@pytest.mark.parametrize(("quoted", "address"), [
    ("jos\u00e9@b\u00fccher.de", "jose\u0301@b\u00fccher.de"),  # NFD sent, NFC quoted
    ("jose\u0301@b\u00fccher.de", "jos\u00e9@b\u00fccher.de"),  # NFC sent, NFD quoted
    ("ANNA@B\u00dcCHER.DE", "anna@xn--bcher-kva.de"),  # sent with A-labels, quoted with U-labels
    ("anna@xn--bcher-kva.de", "Anna@B\u00fccher.de"),
])
def test_the_log_line_of_a_refusal_holds_no_address_however_a_server_normalised_it(quoted: str, address: str) -> None:
    """A server or mail service that normalises what it quotes (NFC, NFD; U-labels for A-labels) kept
    the requester's address in the notifier's log, which erase-tenant does not erase."""
    from services.notifier.service import REQUESTER, _without_address

    assert _without_address(f"550 5.1.1 <{quoted}>: Recipient address rejected", address) == (
        f"550 5.1.1 <{REQUESTER}>: Recipient address rejected")


def test_mime_bytes_refuses_text_that_is_not_unicode_and_headers_with_line_breaks() -> None:
    with pytest.raises(UnicodeEncodeError):
        mime_bytes(replace(EMAIL, text="a\udc80"), sender=SENDER)
    with pytest.raises(PermanentMailError, match="cannot build the message headers"):
        mime_bytes(replace(EMAIL, subject="s\r\nBcc: victim@evil.example"), sender=SENDER)
    with pytest.raises(PermanentMailError, match="cannot build the message headers"):
        mime_bytes(EMAIL, sender="exports@grove.test\nBcc: victim@evil.example")


@pytest.mark.parametrize(
    ("key", "sender", "expected"),
    [
        ("exp_1:ready", SENDER, "<exp_1.ready@grove.test>"),
        ("exp_1:failed", "exports@mail.grove.place", "<exp_1.failed@mail.grove.place>"),
        ("exp_1:ready", "no-domain", "<exp_1.ready@grove-export>"),
        ("a b::c", SENDER, "<a.b.c@grove.test>"),
    ],
)
def test_message_id_is_deterministic_and_valid(key: str, sender: str, expected: str) -> None:
    assert message_id(key, sender) == expected


@pytest.mark.parametrize("to", ["a@example.org\r\nBcc: victim@example.org", "not an address", ""])
def test_to_mime_refuses_bad_recipients_permanently(to: str) -> None:
    with pytest.raises(PermanentMailError):
        to_mime(Email(to=to, subject="s", text="t", html="h", idempotency_key="k:ready"), sender=SENDER)


def test_outbox_filename_is_sanitized() -> None:
    assert outbox_filename("exp_1:ready:tenant_a") == "exp_1.ready.tenant_a.eml"
    assert outbox_filename("exp_1:ready:a:a2:r1") == "exp_1.ready.a.a2.r1.eml"
    assert outbox_filename("../x/y:z") == "+2E+2E+2Fx+2Fy.z.eml"
    assert outbox_filename(":hidden") == "+3Ahidden.eml"


_LOOKALIKE = st.text(alphabet=":_.-+/a2é\x00", min_size=1, max_size=8)  # what the old names confused


@given(_LOOKALIKE, _LOOKALIKE)
def test_two_keys_never_share_an_outbox_file(one: str, other: str) -> None:
    """``a:a2`` and ``a_a2`` were both ``a_a2.eml``: one email overwrote the other."""
    assert outbox_filename("a:a2") != outbox_filename("a_a2")
    assert (outbox_filename(one) == outbox_filename(other)) == (one == other)
    name = outbox_filename(one)
    assert re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.eml", name), name  # no dot first, no / or NUL


def test_zephyr_body_has_exactly_the_spec_fields_and_zephyrs_idempotency_key() -> None:
    assert zephyr_body(EMAIL) == {
        "type": "transactional",
        "template": "raw",
        "to": EMAIL.to,
        "subject": EMAIL.subject,
        "html": EMAIL.html,
        "text": EMAIL.text,
        "idempotencyKey": "exp_1:ready",
        "source": "grove-export",
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientMailError),
        (502, TransientMailError),
        (503, TransientMailError),
        (429, TransientMailError),
        (408, TransientMailError),
        (400, PermanentMailError),
        (401, PermanentMailError),
        (403, PermanentMailError),
        (404, PermanentMailError),
        (422, PermanentMailError),
        (301, PermanentMailError),
    ],
)
def test_http_status_classification(status: int, kind: type[Exception]) -> None:
    assert type(classify_status(status, "")) is kind


def test_parse_retry_after() -> None:
    now = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Sun, 01 Mar 2026 10:30:12 GMT", now=now) == 12.0
    assert parse_retry_after("Sun, 01 Mar 2026 10:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("value", ["²", "٣", "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"])
def test_a_retry_after_that_cannot_be_read_is_no_hint_not_an_error(value: str) -> None:
    # "²" is str.isdigit() but not float(); a huge year overflowed: both escaped send() as
    # ValueError/OverflowError, so a 503 became a NotificationFailed without a retry.
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aiosmtplib.SMTPConnectError("refused"), TransientMailError),
        (aiosmtplib.SMTPServerDisconnected("gone"), TransientMailError),
        (aiosmtplib.SMTPReadTimeoutError("slow"), TransientMailError),
        (ConnectionResetError("reset"), TransientMailError),
        (aiosmtplib.SMTPDataError(451, "try later"), TransientMailError),
        (aiosmtplib.SMTPDataError(554, "rejected"), PermanentMailError),
        (aiosmtplib.SMTPSenderRefused(553, "not yours", "x@y"), PermanentMailError),
        (aiosmtplib.SMTPConnectResponseError(421, "too busy"), TransientMailError),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), PermanentMailError),
        (aiosmtplib.SMTPAuthenticationError(454, "temporary auth failure"), TransientMailError),
        (aiosmtplib.SMTPAuthenticationError(451, "auth backend down"), TransientMailError),
        (aiosmtplib.SMTPAuthenticationError(334, "invalid CRAM-MD5 challenge"), PermanentMailError),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "nope", "a@b")]),
            PermanentMailError,
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "later", "a@b")]),
            TransientMailError,
        ),
        (aiosmtplib.SMTPNotSupported("no AUTH"), PermanentMailError),
    ],
)
def test_smtp_error_classification(exc: BaseException, kind: type[Exception]) -> None:
    err = translate_smtp_error(exc, "SMTP server h:25")
    assert type(err) is kind
    assert "SMTP server h:25" in err.reason


def test_build_mailer_defaults_to_the_outbox(tmp_path: Path) -> None:
    mailer = build_mailer(MailSettings(outbox_dir=tmp_path, sender=SENDER))
    assert isinstance(mailer, OutboxMailer)
    assert mailer.directory == tmp_path and mailer.sender == SENDER


def test_build_mailer_smtp_unwraps_the_password() -> None:
    mailer = build_mailer(
        MailSettings(
            backend="smtp",
            smtp_host="mx.test",
            smtp_port=587,
            smtp_security="starttls",
            smtp_username="u",
            smtp_password=SecretStr("pw"),
            smtp_timeout=3.0,
        )
    )
    assert isinstance(mailer, SmtpMailer)
    assert (mailer.host, mailer.port, mailer.security, mailer.username, mailer.timeout) == (
        "mx.test",
        587,
        "starttls",
        "u",
        3.0,
    )
    assert mailer._password == "pw"
    assert "pw" not in repr(mailer)


def test_build_mailer_http_keeps_the_key_out_of_repr() -> None:
    mailer = build_mailer(
        MailSettings(backend="http", http_url="https://zephyr.test/", http_api_key=SecretStr("k-123"))
    )
    assert isinstance(mailer, HttpMailer)
    assert mailer.endpoint == "https://zephyr.test/send"
    assert "k-123" not in repr(mailer)


def test_build_mailer_http_without_api_key_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="API key"):
        build_mailer(MailSettings(backend="http"))


def test_smtp_mailer_rejects_unknown_security() -> None:
    with pytest.raises(ValueError):
        SmtpMailer(host="h", port=25, security="ssl")  # type: ignore[arg-type]


def test_build_mailer_refuses_a_ca_file_it_cannot_load(tmp_path: Path) -> None:
    """Seen: GROVE_MAIL__SMTP_CA_FILE naming a file that is not there (or is no CA bundle) started the
    notifier; every email then failed its attempts with "cannot reach SMTP server …: [Errno 2] No such
    file or directory" and ended NotificationFailed, the server never asked."""
    from shared.runtime.settings import SettingsProblem

    def smtp(ca: Path) -> MailSettings:
        return MailSettings(backend="smtp", smtp_security="starttls", smtp_ca_file=ca)

    with pytest.raises(SettingsProblem, match=r"^GROVE_MAIL__SMTP_CA_FILE: .*No such file or directory.*missing\.pem"):
        build_mailer(smtp(tmp_path / "missing.pem"))
    (tmp_path / "notes.txt").write_text("not a certificate\n")
    with pytest.raises(SettingsProblem, match=r"^GROVE_MAIL__SMTP_CA_FILE: .*notes\.txt"):
        build_mailer(smtp(tmp_path / "notes.txt"))
