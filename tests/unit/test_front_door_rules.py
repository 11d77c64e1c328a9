"""The front door's pure rules: what a secret must be, what an email claim may be, which keys an
export owns, and what a person is told when a step fails."""

from __future__ import annotations

import json

import pytest

from shared.core.keys import archive_key, is_archive_key_of, snapshot_key
from shared.core.mailaddr import is_single_address, needs_smtputf8, with_ascii_domain, with_unicode_domain
from shared.core.reasons import is_permanent, public_reason
from shared.objectstore import NoSuchUpload, ObjectNotFound, StoreError, StoreRefused, StoreUnavailable
from shared.runtime.secrets import KNOWN_DEFAULTS, local_secrets, problem
from shared.runtime.worker import StepError


@pytest.mark.parametrize("value", [None, "", "   ", *sorted(KNOWN_DEFAULTS), "x" * 31, "changeme" + "k3Y9" * 10,
                                   "<put-a-secret-here-of-at-least-32-bytes>", "ab" * 40,
                                   "my-example-secret-value-for-grove-export!"])
def test_unusable_secrets_say_why(value: str | None) -> None:
    assert problem(value) is not None


def test_a_random_secret_is_usable_and_the_local_stack_keeps_its_own(tmp_path) -> None:  # noqa: ANN001
    made = local_secrets(tmp_path)
    assert all(problem(v) is None for v in made.values()) and len(set(made.values())) == 2
    assert local_secrets(tmp_path) == made
    (tmp_path / "secrets.json").write_text(json.dumps({"GROVE_JWT_SECRET": "short"}))
    remade = local_secrets(tmp_path)  # a damaged file is replaced, never used
    assert all(problem(v) is None for v in remade.values())


@pytest.mark.parametrize(("value", "ok"), [
    ("autumn@example.org", True), ("a.b+tag@sub.example.co.uk", True), ("x_y-z@d-1.io", True),
    ("victim@x.y, attacker@evil.z", False), ("Victim <victim@x.y>", False), ("v@x.y\r\nBcc: a@e.z", False),
    ("v@x.y\n", False), ("v@x.y;a@e.z", False), ('"a b"@x.y', False), ("a@b", False), ("@x.y", False),
    (" a@x.y", False), ("a@@x.y", False), ("a@x..y", False), ("a@-x.y", False), ("a" * 65 + "@x.y", False),
    ("a@" + "b" * 250 + ".io", False), (None, False), (42, False),
])
def test_an_email_claim_is_exactly_one_bare_address(value: object, ok: bool) -> None:
    assert is_single_address(value) is ok


# What a character may not be past ASCII, in the local part or the domain: a bidi control, a zero-width
# space, a line separator, NEL, a no-break space, a control, private use, unassigned, a lone surrogate.
_HIDING = ["\u202e", "\u200b", "\u2028", "\u0085", "\u00a0", "\u0080", "\ue000", "\U000e0001", "\u0378", "\udc80"]


@pytest.mark.parametrize(("value", "ok"), [
    ("josé@example.com", True), ("anna@bücher.de", True), ("用户@例子.广告", True), ("a@xn--bcher-kva.de", True),
    ("Zoë.Ünal+tag@Bücher.DE", True), ("ann@例子.广告", True), ("δοκιμή@παράδειγμα.δοκιμή", True),
    ("é" * 32 + "@x.co", True),  # 64 octets in UTF-8
    ("é" * 32 + "a@x.co", False), ("a@" + "ü" * 60 + ".de", False),  # 65 octets; an A-label over 63
    ("a@" + ".".join(["例"] * 20) + ".de", True),  # 84 octets in UTF-8, 164 with A-labels (xn--fsq)
    ("a" * 64 + "@" + ".".join(["例"] * 40) + ".de", False),  # 227 octets in UTF-8, 387 with A-labels
    ("jos é@x.co", False), ("José <josé@x.co>", False), ("josé@x.co, b@x.co", False), ('"josé"@x.co', False),
    ("=?utf-8?b?am9zw6k=?=@x.co", False), ("josé@=?utf-8?q?x?=.co", False), ("josé@x.co\n", False),
    ("a＠evil.z@x.co", False), ("a，b@x.co", False), ("a＜b@x.co", False), ("a．b@x.co", False),  # NFKC: @ , < .
    ("a\u226eb@x.co", False), ("a\u226fb@x.co", False), ("a\u2260b@x.co", True),  # NFD: < > = with U+0338
    ("a@bü-.de", False), ("a@\u05d0b.de", False), ("a@u\u0308ber.de", False),  # IDNA 2008: hyphen, bidi, NFC
    ("\u0645\u06cc\u200c\u0631\u0648\u062f@example.com", True),  # a Persian word with its joiner (U+200C)
    ("a@\u0645\u06cc\u200c\u0631\u0648\u062f.ir", True), ("a@b\u200cc.de", False),  # IDNA's CONTEXTJ
    ("\u200c@x.co", False), ("\u200d\u200c@x.co", False), ("a.\u200c@x.co", False),  # shows no name there
    ("a@例子。广告", False), ("a@bücher", False), ("josé@.de", False), ("josé@x..de", False), (".josé@x.co", False),
    *[(f"jo{c}sé@example.com", False) for c in _HIDING],
    *[(f"josé@bü{c}cher.de", False) for c in _HIDING],
])
def test_an_email_claim_may_be_an_internationalised_address_held_to_the_same_rule(value: object, ok: bool) -> None:
    """RFC 6531: UTF8-non-ascii is atext; a domain's label may be a U-label (IDNA 2008). Refused, a person
    whose address is not ASCII had a 401 on every route: no export at all."""
    assert is_single_address(value) is ok


def test_an_internationalised_domain_is_sent_as_its_a_labels() -> None:
    assert with_ascii_domain("anna@bücher.de") == "anna@xn--bcher-kva.de"
    assert with_ascii_domain("用户@例子.广告") == "用户@xn--fsqu00a.xn--4rr70v"
    assert with_ascii_domain("Anna@Bücher.DE") == "Anna@xn--bcher-kva.DE"
    assert with_ascii_domain("a@xn--bcher-kva.de") == "a@xn--bcher-kva.de"
    assert with_unicode_domain("a@xn--bcher-kva.DE") == with_unicode_domain("a@bücher.DE") == "a@bücher.DE"
    assert with_unicode_domain("a@xn--zz.de") == "a@xn--zz.de"  # no U-label: as it is
    assert [needs_smtputf8(a) for a in ("anna@bücher.de", "josé@example.com", "a@x.co")] == [False, True, False]
    with pytest.raises(ValueError):
        with_ascii_domain("a@b.de, c@d.de")


def test_an_export_owns_only_its_archive_key() -> None:
    own = archive_key("t1", "exp_1", "autumn", "2026-11-30")
    assert is_archive_key_of("t1", "exp_1", own)
    for other in (snapshot_key("t1", "exp_1"), archive_key("t2", "exp_1", "autumn", "2026-11-30"),
                  archive_key("t1", "exp_2", "autumn", "2026-11-30"), "exports/t1/exp_1/", "exports/t1/exp_1/..",
                  "exports/t1/exp_1/../exp_2/x.zip", "exports/t1/exp_1/.hidden", "other/t1/exp_1/x.zip",
                  "exports/t1/exp_1/a\\b.zip", "exports/t1/exp_1/a\nb.zip", "exports/t1/exp_1/x.zip/",
                  None, "", "exports/t1/exp_1/" + "x" * 256, "exports/t1/exp_1/" + "é" * 128):
        assert not is_archive_key_of("t1", "exp_1", other), other
    assert is_archive_key_of("t1", "exp_1", "exports/t1/exp_1/" + "x" * 255)  # a file name's longest
    assert is_archive_key_of("t1", "exp_1", "exports/t1/exp_1/" + "é" * 127)


def test_reasons_name_what_failed_without_internals() -> None:
    internals = ("127.0.0.1", "bucket-x", "exports/t1", "/var/", "Error", "Refused", "Traceback")
    cases = [StoreRefused("the storage service does not implement this operation", "(501 at 127.0.0.1 bucket-x)"),
             StoreUnavailable("SlowDown at http://127.0.0.1:9000 bucket-x"), ObjectNotFound("bucket-x/exports/t1/k"),
             NoSuchUpload("bucket-x/exports/t1/k upload u"), StoreError("boom at /var/lib/x"),
             KeyError("/var/secret"), TimeoutError()]
    for error in cases:
        reason = public_reason(error, StepError)
        assert reason.endswith(".") and not any(i in reason for i in internals), (error, reason)
    assert public_reason(StepError("The archive is too large."), StepError) == "The archive is too large."
    assert is_permanent(StoreRefused("x")) and not is_permanent(StoreUnavailable("x"))


def test_an_address_the_rule_takes_is_still_one_address_in_every_normal_form() -> None:
    """``a≮b@x.co`` passed: NFKC composes ``<`` U+0338 back into ``≮`` (U+226E), but NFD — which any
    reader may apply — makes it ``a<`` U+0338 ``b@x.co``, an angle bracket in the address. Each code
    point past ASCII the rule takes, in each of Unicode's four normal forms."""
    import unicodedata

    changing = [a for a in (f"a{chr(cp)}b@x.co" for cp in range(0x80, 0x30000) if not 0xD800 <= cp <= 0xDFFF)
                if unicodedata.normalize("NFKD", a) != a and is_single_address(a)]
    assert len(changing) > 5_000  # the rule takes many characters that normalise to others
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        assert [a for a in changing if not is_single_address(unicodedata.normalize(form, a))] == [], form
