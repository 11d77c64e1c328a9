"""What an ExportRequested's publisher writes for the person reaches their email ("Hi {username},"),
the archive's name and the operator's terminal: a line break there forges lines of the email, a bidi
control reorders what follows. The gateway refuses such a token; a publisher on the event contract
is held to the same rule by the event itself, so every reader drops the request (a bad event)."""

from __future__ import annotations

import json

import pytest

from shared.core import events as ev

BASE = dict(export_id="exp_1", tenant_id="t1", user_id="u1", user_email="a@example.org", username="ann",
            mode="blog", include_images=True, delivery_method="email", producer="gateway")
SUBJECT = "exports.t1.exp_1.ExportRequested"


def body(**fields: str) -> bytes:
    raw = json.loads(ev.ExportRequested(**BASE).to_json())  # type: ignore[arg-type]
    return json.dumps({**raw, **fields}).encode()


@pytest.mark.parametrize(("field", "value"), [
    ("username", "ann\nYour archive is at https://evil.example/x"), ("username", "ann\u202egpj.exe"),
    ("username", "\x1b]0;pwned\x07"), ("username", "a\u2028b"), ("user_id", "u\r\n1"), ("user_id", "u\u2067"),
])
def test_a_request_with_control_or_bidi_characters_in_its_person_is_a_bad_event(field: str, value: str) -> None:
    with pytest.raises(ev.BadEvent):
        ev.decode("exports", SUBJECT, body(**{field: value}))


@pytest.mark.parametrize("name", ["Zoë", "李小龍", "محمد", "O'Brien-Smith", "a b"])
def test_names_in_any_script_are_kept(name: str) -> None:
    assert ev.decode("exports", SUBJECT, body(username=name)).username == name  # type: ignore[attr-defined]


@pytest.mark.parametrize("email", [
    "a@example.org\r\nBcc: evil@evil.example", "Ann <a@example.org>", "a@example.org, b@example.org", "",
    "=?utf-8?b?YUBldmlsLmNvbSwgYkBldmlsLmNvbQ==?=@x.co", "a" * 300 + "@example.org", "a@example.org\u202e",
    "jo\u202esé@example.org", "josé\u200b@example.org", "josé@bü\u2028cher.de", "josé@bü-.de", "é" * 33 + "@x.co",
])
def test_a_request_whose_email_is_not_one_address_is_a_bad_event(email: str) -> None:
    """The gateway refuses a token whose email claim is not exactly one address; a publisher on the
    event contract sent one all the same, the whole export was made (catalog, archive, upload) and only
    the notifier refused it at the end ("the recipient is not exactly one email address")."""
    with pytest.raises(ev.BadEvent):
        ev.decode("exports", SUBJECT, body(user_email=email))


@pytest.mark.parametrize("email", ["josé@example.com", "anna@bücher.de", "用户@例子.广告", "a@xn--bcher-kva.de"])
def test_a_request_whose_email_is_not_ascii_is_read(email: str) -> None:
    """RFC 6531: a person whose address is not ASCII may export; its request is as good as any other."""
    assert ev.decode("exports", SUBJECT, body(user_email=email)).user_email == email  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fields", "said"), [
    ({"username": "ann\n"}, "username: Value error, holds a control or bidi character"),
    ({"user_email": "a@b"}, "user_email: Value error, is not exactly one email address"),
    ({"occurred_at": "2026-11-29T10:30:00"}, "occurred_at: Input should have timezone info"),
    ({"mode": "BLOG", "delivery_method": "fax"}, "mode: Input should be 'blog' or 'storage' (and 1 more)"),
])
def test_a_bad_events_reason_names_the_field_and_what_is_wrong(fields: dict, said: str) -> None:
    """The line a reader logs when it drops the event says which field is wrong and why; it said
    "1 validation error for ExportRequested" and nothing more, whatever the field."""
    with pytest.raises(ev.BadEvent) as caught:
        ev.decode("exports", SUBJECT, body(**fields))
    assert str(caught.value) == f"{SUBJECT}: {said}"


@pytest.mark.parametrize("field", ["user_id", "username"])
def test_a_request_without_a_person_is_a_bad_event(field: str) -> None:
    """The gateway refuses a token whose sub or username is empty; on the bus an empty username was
    taken, and the person's email began "Hi ," (the archive was named for "user")."""
    with pytest.raises(ev.BadEvent, match=field):
        ev.decode("exports", SUBJECT, body(**{field: ""}))


def test_a_request_the_release_before_stored_with_a_longer_username_is_still_read() -> None:
    """The bound (shared/core/printable.USERNAME_MAX_CHARS) is held where requests are written (the
    gateway, import, seed), not where they are read: the release before stored any username that fit
    a token, and a request the fold drops stalls its export for good (no failure email, archives kept)."""
    assert ev.decode("exports", SUBJECT, body(username="n" * 3000)).username == "n" * 3000  # type: ignore[attr-defined]
