"""Identity comes only from a verified token."""

from __future__ import annotations

import secrets
import time

import jwt
import pytest

from services.gateway.auth import Identity, link_keys, link_secret, make_token, verify_token
from services.gateway.problems import Unauthorized
from shared.runtime.secrets import SecretError, require_signing
from shared.runtime.settings import Settings
from tests.support.env import TEST_SECRETS

S = Settings(jwt_secret=TEST_SECRETS["jwt"], link_secret=TEST_SECRETS["link"])


def test_a_token_made_by_make_token_verifies_to_its_identity():
    token = make_token(S, "tenant_a", "u1", "u1@example.org", "autumn")
    assert verify_token(S, token) == Identity("tenant_a", "u1", "u1@example.org", "autumn")


def test_an_expired_token_is_rejected():
    with pytest.raises(Unauthorized, match="expired"):
        verify_token(S, make_token(S, "tenant_a", "u1", "e@x.org", "n", ttl_s=-5))


def test_a_tampered_token_is_rejected():
    token = make_token(S, "tenant_a", "u1", "e@x.org", "n")
    head, _payload, sig = token.split(".")
    forged = jwt.encode({**jwt.decode(token, options={"verify_signature": False}), "tenant": "tenant_b"},
                        "guess-guess-guess-guess-guess-guess!", algorithm="HS256")
    for bad in (f"{head}.{forged.split('.')[1]}.{sig}", forged, token[:-2] + "xx", "not-a-jwt"):
        with pytest.raises(Unauthorized):
            verify_token(S, bad)


def test_another_issuer_or_a_missing_claim_is_rejected():
    base = {"sub": "u1", "tenant": "tenant_a", "email": "e@x.org", "username": "n", "iss": S.jwt_issuer,
            "aud": "grove-export", "exp": int(time.time()) + 60}
    secret = S.jwt_secret.get_secret_value()
    with pytest.raises(Unauthorized):
        verify_token(S, jwt.encode({**base, "iss": "someone-else"}, secret, algorithm="HS256"))
    for claim in ("sub", "tenant", "email", "username", "exp", "aud"):
        claims = {k: v for k, v in base.items() if k != claim}
        with pytest.raises(Unauthorized):
            verify_token(S, jwt.encode(claims, secret, algorithm="HS256"))
    with pytest.raises(Unauthorized):
        verify_token(S, jwt.encode({**base, "tenant": "a.b"}, secret, algorithm="HS256"))


def test_make_token_refuses_a_tenant_id_that_cannot_be_a_subject_token():
    with pytest.raises(ValueError):
        make_token(S, "tenant.a", "u1", "e@x.org", "n")


def test_the_link_secret_is_its_own_key_and_required():
    assert link_secret(S) == TEST_SECRETS["link"].encode() != TEST_SECRETS["jwt"].encode()
    with pytest.raises(SecretError, match="GROVE_LINK_SECRET is not set"):
        link_secret(Settings(jwt_secret=TEST_SECRETS["jwt"]))


def test_no_token_is_made_or_checked_without_a_usable_secret():
    for bad in (None, "grove-local-development-secret-change-me!!", "short-but-random-Xq9", "CHANGE_ME" + "x" * 40,
                "a" * 64):
        unusable = Settings(jwt_secret=bad)
        with pytest.raises(SecretError, match="GROVE_JWT_SECRET"):
            make_token(unusable, "tenant_a", "u1", "e@x.org", "n")
        with pytest.raises(SecretError):
            verify_token(unusable, make_token(S, "tenant_a", "u1", "e@x.org", "n"))


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "u1", "tenant": "tenant_a", "email": "e@x.org", "username": "n", "iss": S.jwt_issuer,
            "aud": "grove-export", "iat": now, "exp": now + 600} | over


def test_a_token_for_another_audience_or_none_is_refused():
    secret = TEST_SECRETS["jwt"]
    assert verify_token(S, jwt.encode(_claims(), secret, algorithm="HS256")).tenant_id == "tenant_a"
    for claims in (_claims(aud="someone-else"), {k: v for k, v in _claims().items() if k != "aud"}):
        with pytest.raises(Unauthorized):
            verify_token(S, jwt.encode(claims, secret, algorithm="HS256"))


def test_a_token_living_longer_than_the_cap_is_refused():
    secret, now = TEST_SECRETS["jwt"], int(time.time())
    year_3000 = 32503680000
    for claims in (_claims(exp=year_3000), _claims(iat=now - 10, exp=now + 7200),
                   {k: v for k, v in _claims(exp=year_3000).items() if k != "iat"},
                   _claims(iat=now - 5000, exp=now + 600)):
        with pytest.raises(Unauthorized, match="lives longer"):
            verify_token(S, jwt.encode(claims, secret, algorithm="HS256"))
    with pytest.raises(ValueError, match="at most"):
        make_token(S, "tenant_a", "u1", "e@x.org", "n", ttl_s=7200)
    longer = Settings(jwt_secret=TEST_SECRETS["jwt"], token_max_ttl_s=86400)
    assert verify_token(longer, make_token(longer, "tenant_a", "u1", "e@x.org", "n", ttl_s=7200))


def test_an_email_claim_that_is_not_exactly_one_address_is_refused():
    secret = TEST_SECRETS["jwt"]
    for email in ("victim@x.y, attacker@evil.z", "Victim <victim@x.y>", "victim@x.y\r\nBcc: a@evil.z",
                  "victim@x.y\n", "victim@x.y;a@evil.z", '"a b"@x.y', "no-at-sign", "a@b", " a@x.y"):
        with pytest.raises(Unauthorized, match="one address"):
            verify_token(S, jwt.encode(_claims(email=email), secret, algorithm="HS256"))
        with pytest.raises(ValueError):
            make_token(S, "tenant_a", "u1", email, "n")


def test_ids_with_a_trailing_newline_are_not_ids():
    from services.gateway.auth import valid_id

    assert valid_id("exp_1") and not valid_id("exp_1\n") and not valid_id("a.b")


def _signed(payload: str) -> str:
    """A token signed with the right key whose payload is ``payload`` verbatim (JSON that PyJWT's
    encoder would not write: 10**400, NaN, a bool)."""
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload.encode())
    sig = hmac.new(TEST_SECRETS["jwt"].encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64(sig)).decode()


BASE = '"sub":"u1","tenant":"tenant_a","email":"e@x.org","username":"n","iss":"grove","aud":"grove-export"'
HUGE, NEG_HUGE = "1" + "0" * 400, "-1" + "0" * 400
BAD_TIMES = [HUGE, NEG_HUGE, "1e400", "NaN", "Infinity", "-Infinity", "true", "false", "null", '"{now}"', "[1]",
             "{{}}"]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", BAD_TIMES)
def test_a_signed_token_with_a_time_claim_that_is_no_time_is_invalid_not_a_crash(claim: str, value: str) -> None:
    now = int(time.time())
    value = value.format(now=now + 60)
    times = f'"exp":{value}' if claim == "exp" else f'"exp":{now + 60},"{claim}":{value}'
    with pytest.raises(Unauthorized, match=r"not valid|expired"):  # exp true is 1: expired
        verify_token(S, _signed("{" + BASE + "," + times + "}"))


def test_fractional_times_are_numeric_dates_and_accepted() -> None:
    now = time.time()
    token = _signed("{" + BASE + f',"iat":{now:.3f},"nbf":{now - 1:.3f},"exp":{now + 60:.3f}' + "}")
    assert verify_token(S, token).tenant_id == "tenant_a"


@pytest.mark.parametrize(("field", "value"), [("user", "u\n"), ("user", ""), ("username", "a\u2028b"),
                                              ("username", "x\x00"), ("username", ""), ("username", "ann\u202egpj.exe"),
                                              ("user", "u\u2066")])
def test_make_token_refuses_the_claims_the_gateway_refuses(field: str, value: str) -> None:
    """Seen: `grove-export token --user $'u\\n'` exited 0 with a token every request refused (401)."""
    claims = {"tenant": "t1", "user": "u1", "email": "a@example.org", "username": "ann", field: value}
    with pytest.raises(ValueError, match="control or bidi characters"):
        make_token(S, **claims)
    forged = jwt.encode({"sub": claims["user"], "tenant": "t1", "email": "a@example.org", "username": claims["username"],
                         "aud": "grove-export", "iss": S.jwt_issuer, "iat": int(time.time()),
                         "exp": int(time.time()) + 60}, TEST_SECRETS["jwt"], algorithm="HS256")
    with pytest.raises(Unauthorized):  # the gateway's side of the same rule
        verify_token(S, forged)


@pytest.mark.parametrize("token", ["\udcff\udcfe.a.b", "eyJ\udc80.eyJ.sig", "é.a.b"])
def test_a_token_with_a_byte_that_is_not_ascii_is_unauthorized_not_a_crash(token: str) -> None:
    """Seen: `Authorization: Bearer \\xff\\xfe.a.b` (raw bytes; aiohttp reads a header with
    surrogateescape) was a 500 GROVE-EXPORT-000: PyJWT encodes the token as UTF-8 and raised
    UnicodeEncodeError, which is no PyJWTError. A JWT is base64url and dots: ASCII only."""
    with pytest.raises(Unauthorized, match="not valid"):
        verify_token(S, token)


@pytest.mark.parametrize(("claim", "value"), [("username", "\\ud800"), ("sub", "a\\udcff"), ("username", "\\udfff\\ud800x")])
def test_a_signed_token_whose_name_is_a_lone_surrogate_is_unauthorized(claim: str, value: str) -> None:
    """Seen: a signed token with `"username":"\\ud800"` (a JSON escape of half a UTF-16 pair: no
    character, no UTF-8) was accepted, and `POST /api/export` answered 500 GROVE-EXPORT-000 after
    admission had reserved the tenant's slot: ExportRequested could not be encoded to append."""
    claims = BASE.replace('"sub":"u1"', f'"sub":"{value}"') if claim == "sub" \
        else BASE.replace('"username":"n"', f'"username":"{value}"')
    with pytest.raises(Unauthorized, match="control or bidi"):
        verify_token(S, _signed("{" + claims + f',"exp":{int(time.time()) + 60}' + "}"))


@pytest.mark.parametrize("ahead_s", [1, 5, 30, 59])
def test_a_token_from_an_issuer_whose_clock_runs_a_little_ahead_is_accepted(ahead_s: int) -> None:
    """Seen: a token minted by an issuer 1 s ahead of the gateway (its iat and nbf its own "now")
    was a 401 "not valid" until the gateway's clock caught up — PyJWT allows no skew by default,
    though LEEWAY_S says how much the gateway allows between the issuer and itself."""
    now = int(time.time())
    claims = _claims(iat=now + ahead_s, nbf=now + ahead_s, exp=now + ahead_s + 600)
    assert verify_token(S, jwt.encode(claims, TEST_SECRETS["jwt"], algorithm="HS256")).tenant_id == "tenant_a"


def test_skew_is_allowed_on_iat_and_nbf_only_up_to_the_leeway_and_never_on_expiry() -> None:
    from services.gateway.auth import LEEWAY_S

    now, secret = int(time.time()), TEST_SECRETS["jwt"]
    for claim in ("iat", "nbf"):  # further ahead than any clock skew: not yet valid
        with pytest.raises(Unauthorized, match="not valid"):
            verify_token(S, jwt.encode(_claims(**{claim: now + LEEWAY_S + 30}, exp=now + 600), secret, algorithm="HS256"))
    for past in (1, 30):  # expired a moment ago: expired, whatever the leeway
        with pytest.raises(Unauthorized, match="expired"):
            verify_token(S, jwt.encode(_claims(iat=now - 600, exp=now - past), secret, algorithm="HS256"))


def test_a_username_over_the_bound_is_neither_minted_nor_accepted() -> None:
    """One bound (shared/core/printable.USERNAME_MAX_CHARS) for every place a username comes in: a token
    of a 257-character username verified, and an archive made for it could be imported only because
    import took any length (a crafted manifest.json gave the tenant row tens of MiB)."""
    assert verify_token(S, make_token(S, "tenant_a", "u1", "u1@example.org", "é" * 256)).username == "é" * 256
    with pytest.raises(ValueError, match="257 characters long, more than the 256 a username may have"):
        make_token(S, "tenant_a", "u1", "u1@example.org", "n" * 257)
    with pytest.raises(Unauthorized, match="The token's username claim is 257 characters long"):
        verify_token(S, jwt.encode(_claims(username="n" * 257), S.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
                                   algorithm="HS256"))


def _jws(header: str, payload: str, pad: str = "") -> str:
    """A token signed with the right key over ``header`` and ``payload`` verbatim; ``pad`` names the
    segments ("h", "p", "s") written with base64's '=' padding, as a lenient issuer would."""
    import base64
    import hashlib
    import hmac

    def b64(raw: bytes, part: str) -> str:
        text = base64.urlsafe_b64encode(raw).decode()
        return text if part in pad else text.rstrip("=")

    signing = f"{b64(header.encode(), 'h')}.{b64(payload.encode(), 'p')}"
    return f"{signing}.{b64(hmac.new(TEST_SECRETS['jwt'].encode(), signing.encode(), hashlib.sha256).digest(), 's')}"


HS256 = '{"alg":"HS256","typ":"JWT"}'


def _payload(extra: str = "") -> str:
    return "{" + BASE + f',"exp":{int(time.time()) + 60}' + extra + "}"


def test_the_strict_token_spellings_verify() -> None:
    assert verify_token(S, _jws(HS256, _payload())).user_id == "u1"
    assert verify_token(S, _jws(HS256, _payload(',"x":{"a":1,"b":{"a":2}}'))).user_id == "u1"  # same name, two objects


@pytest.mark.parametrize("pad", ["s", "p", "h", "hps"])
def test_a_token_whose_segments_carry_base64_padding_is_refused(pad: str) -> None:
    """Seen: PyJWT verified a token whose signature segment ended in '=' (and a lenient issuer's padded
    payload too, signed as such): one token, several spellings, which a stricter verifier refuses."""
    header, payload = HS256[:-1] + " }", _payload()  # 28 bytes: a header that needs padding
    payload += " " * (len(payload.encode()) % 3 == 0)  # and a payload (the signature's 32 bytes do)
    assert verify_token(S, _jws(header, payload)).user_id == "u1"  # unpadded: the very same token verifies
    assert all(len(x) % 4 for x in _jws(header, payload).split("."))
    token = _jws(header, payload, pad)
    assert "=" in token
    with pytest.raises(Unauthorized, match="not valid") as e:
        verify_token(S, token)
    assert (e.value.status, e.value.code) == (401, "GROVE-EXPORT-001")


@pytest.mark.parametrize(("header", "extra"), [
    (HS256, ',"sub":"root"'),                                 # two subs: PyJWT took the last
    (HS256, ',"tenant":"tenant_b"'),
    (HS256, ',"x":{"a":1,"a":2}'),                            # nested
    ('{"alg":"HS256","typ":"JWT","alg":"HS256"}', ""),       # in the header
    ('{"alg":"none","alg":"HS256","typ":"JWT"}', ""),
])
def test_a_token_naming_a_member_twice_is_refused(header: str, extra: str) -> None:
    """Seen: a signed payload with "sub" twice verified as the last one's identity (json.loads keeps
    the last; other verifiers take the first or refuse): one token, two readings of who it is."""
    with pytest.raises(Unauthorized, match="not valid"):
        verify_token(S, _jws(header, _payload(extra)))


@pytest.mark.parametrize("mangle", [
    lambda t: t + ".x", lambda t: t.rsplit(".", 1)[0], lambda t: t.replace("-", "+").replace("_", "/") + "+/",
    lambda t: " " + t, lambda t: t.replace(".", ". ", 1), lambda t: t + "A", lambda t: t.rsplit(".", 1)[0] + ".",
    lambda t: t + "\n"])
def test_a_token_of_another_shape_is_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Unauthorized, match="not valid"):
        verify_token(S, mangle(_jws(HS256, _payload())))


SUB_BLANK_OR_INVISIBLE = [(" "), ("\t\u3000"), ("u\u200b1"), ("\ufeffu1"), ("u1\u2060"), ("u\u00ad1"), ("u1\U000e0001"),
                          # what a name may hold among others, never alone: a joiner, a Hangul filler
                          ("\u200c"), ("\u3164")]
# Usernames that show nothing once their invisible format characters are left out: still refused, in
# the words a blank one always got.
USERNAME_BLANK = ["\u200b", "\ufeff \u2060", "\U000e0001",
                  # what a name may hold among others, never alone: the joiners, a variation selector
                  "\u200d", " \u200c\u200d ", "\ufe0f",
                  # default-ignorable letters a name may hold among others (a Hangul filler), never alone
                  "\uffa0", "\u115f\u1160", " \u3164\u200d", "\u200b\u3164"]


@pytest.mark.parametrize(("claim", "value"), [("sub", v) for v in SUB_BLANK_OR_INVISIBLE] +
                         [("username", v) for v in USERNAME_BLANK])
def test_a_token_whose_sub_is_blank_or_holds_an_invisible_character_or_whose_username_shows_nothing_is_refused(
        claim: str, value: str) -> None:
    """Seen: a signed token whose sub was " " verified (ExportRequested's user_id a space, an
    Idempotency-Key's owner nobody). The sub is the key owner checks compare exactly: "u1\u200b"
    would be another person than "u1" shown as "u1", so a format character in it is refused, never
    left out (left out, "u1\u200b" would be u1 and see u1's exports). A username of nothing visible —
    U+200B alone, U+200D alone (the joiners are allowed for the scripts and emoji that need them),
    U+3164 alone (HANGUL FILLER, a letter Korean nicknames hold) — is the email's "Hi ,"."""
    with pytest.raises(Unauthorized, match=f"The token's {claim} claim (is empty|holds an invisible)") as e:
        verify_token(S, jwt.encode(_claims(**{claim: value}), TEST_SECRETS["jwt"], algorithm="HS256"))
    assert (e.value.status, e.value.code) == (401, "GROVE-EXPORT-001")
    if claim == "username":
        assert str(e.value.detail) == "The token's username claim is empty."  # the words a blank one always got
    with pytest.raises(ValueError, match="control or bidi characters" + (", nor invisible format characters: it "
                                                                         if claim == "sub" else ".*: it is empty")):
        make_token(S, "tenant_a", email="e@x.org", **{"user": "u1", "username": "n"} | {
            ("user" if claim == "sub" else claim): value})


USERNAME_SHOWN = [("ann\u200b", "ann"), ("\ufeffann", "ann"), ("an\u2060n", "ann"), ("an\u00adn", "ann"),
                  ("ann\U000e0001", "ann"), ("ann\u206a", "ann"), ("\u200b\u200bann\ufeff", "ann"),
                  # tag characters outside a subdivision flag: left out (U+1F3F4, tags, U+E007F CANCEL TAG)
                  ("ann\U000e0067\U000e0062\U000e007f", "ann"), ("\U0001f3f4\U000e0067\U000e0062", "\U0001f3f4"),
                  ("\U0001f3f4\U000e007f", "\U0001f3f4"), ("\U0001f3f4\U000e0067\U000e007f\U000e0067", "\U0001f3f4"),
                  ("\U0001f3f4\U000e0001\U000e0067\U000e007f", "\U0001f3f4"),
                  # a subdivision flag's own tags stay; the tags after it go
                  ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f\U000e0067 ann",
                   "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f ann"),
                  # what a name may hold stays: a joiner, a Hangul filler, once the stray character is out
                  ("\u200bZo\u00eb \U0001f468\u200d\U0001f469", "Zo\u00eb \U0001f468\u200d\U0001f469"),
                  ("\ubbfc\uc900\u3164\ufeff", "\ubbfc\uc900\u3164"),
                  # its length is the length shown: 256 letters and a stray U+FEFF are 256 characters
                  ("\ufeff" + "\u00e9" * 256, "\u00e9" * 256)]


@pytest.mark.parametrize(("value", "shown"), USERNAME_SHOWN)
def test_a_username_is_taken_without_its_invisible_format_characters(value: str, shown: str) -> None:
    """Seen: a token whose username held a stray U+200B (copy-paste) or U+FEFF from the identity
    provider was a 401, so its person could never export — and refusing it prevented nothing, since
    anyone choosing a display name may choose "ann" itself. The username is a name to show: the
    gateway takes it as a reader sees it, without the invisible format characters, so the email, the
    manifest and the operator's output show what is used. `token --username` mints the same name."""
    signed = verify_token(S, jwt.encode(_claims(username=value, sub="u1"), TEST_SECRETS["jwt"], algorithm="HS256"))
    assert signed == Identity("tenant_a", "u1", "e@x.org", shown)
    minted = make_token(S, "tenant_a", "u1", "e@x.org", value)
    assert jwt.decode(minted, TEST_SECRETS["jwt"], algorithms=["HS256"], audience="grove-export")["username"] == shown
    assert verify_token(S, minted).username == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("\u182c\u1820\u1837\u180e\u1820", "\u182c\u1820\u1837\u180e\u1820"),
    ("\u200b\u182c\u1820\u1837\u180e\u1820\ufeff", "\u182c\u1820\u1837\u180e\u1820")])
def test_a_mongolian_username_keeps_its_vowel_separator(value: str, shown: str) -> None:
    """Seen: U+180E MONGOLIAN VOWEL SEPARATOR, a format character Mongolian spelling needs as Persian
    needs U+200C (it gives the final a or e its separated form: "qar\u180ea", black), was left out with
    the stray U+200B, so the name was used and mailed with another letter form — a misspelling. It
    is kept, as its free variation selectors are; alone it is still a name of nothing."""
    signed = verify_token(S, jwt.encode(_claims(username=value, sub="u1"), TEST_SECRETS["jwt"], algorithm="HS256"))
    assert signed.username == shown
    minted = make_token(S, "tenant_a", "u1", "e@x.org", value)
    assert jwt.decode(minted, TEST_SECRETS["jwt"], algorithms=["HS256"], audience="grove-export")["username"] == shown
    with pytest.raises(Unauthorized, match=r"^The token's username claim is empty\.$"):
        verify_token(S, jwt.encode(_claims(username="\u200b\u180e"), TEST_SECRETS["jwt"], algorithm="HS256"))


@pytest.mark.parametrize(("value", "shown"), [
    ("Noor \u06dd\u0661", "Noor \u06dd\u0661"), ("\u200bNoor \u06dd", "Noor \u06dd"), ("\u06dd", "\u06dd"),
    ("\u0600\u0661\u0662 ann", "\u0600\u0661\u0662 ann"), ("\u0710\u070f\u0712", "\u0710\u070f\u0712"),
    ("\U00013000\U00013430\U00013001\ufeff", "\U00013000\U00013430\U00013001")])
def test_a_username_s_format_characters_that_show_are_kept_as_it_shows_them(value: str, shown: str) -> None:
    """Seen: leaving out every format character (Cf) but the joiners and selectors took visible ones
    too: "Noor \u06dd\u0661" (U+06DD ARABIC END OF AYAH, an ornament round the digits) was used and
    mailed as "Noor \u0661", U+0600 ARABIC NUMBER SIGN went from before its digits, U+070F the
    Syriac abbreviation mark's line, an Egyptian hieroglyph joiner its signs' layout — and a name of
    U+06DD alone, which shows ۝, was "empty". The name is used as a reader sees it: only what shows as
    nothing (the default-ignorable format characters) is left out."""
    signed = verify_token(S, jwt.encode(_claims(username=value, sub="u1"), TEST_SECRETS["jwt"], algorithm="HS256"))
    assert signed.username == shown
    minted = make_token(S, "tenant_a", "u1", "e@x.org", value)
    assert jwt.decode(minted, TEST_SECRETS["jwt"], algorithms=["HS256"], audience="grove-export")["username"] == shown


@pytest.mark.parametrize("username", ["ann\u200b\u202egpj.exe", "\u200bann\n", "\ufeff\u200e", "a\u200b\u2066b",
                                      "ann\u061c"])
def test_a_username_s_bidi_or_control_character_is_refused_never_left_out_with_the_invisible_ones(
        username: str) -> None:
    """Bidi controls are format characters too, but they reorder what follows (a spoofing vector):
    leaving the invisible ones out never takes a bidi control or a control character with them."""
    with pytest.raises(Unauthorized, match=r"^The token's username claim holds a control or bidi character\.$"):
        verify_token(S, jwt.encode(_claims(username=username), TEST_SECRETS["jwt"], algorithm="HS256"))
    with pytest.raises(ValueError, match=r"control or bidi characters.*: it holds a control or bidi character"):
        make_token(S, "tenant_a", "u1", "e@x.org", username)


@pytest.mark.parametrize("username", ["\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
                                      "Zo\u00eb", "\u00a0ann\u00a0",
                                      "ann \U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
                                      "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f\U0001f3f4"
                                      "\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
                                      # variation selectors: an emoji's presentation, a CJK ideograph's
                                      # variant (an ideographic variation sequence), a Mongolian spelling
                                      "ann \u2764\ufe0f", "\u845b\U000e0100\u98fe", "\u1820\u180b\u1833",
                                      # default-ignorable letters and marks within a name (review rev2: refused,
                                      # they locked such a person out): a Hangul filler in a Korean nickname,
                                      # COMBINING GRAPHEME JOINER in Hebrew
                                      "\ubbfc\uc900\u3164", "\u05d0\u034f\u05b7"])
def test_names_with_the_joiners_some_scripts_and_emoji_need_are_accepted(username: str) -> None:
    """U+200C and U+200D are format characters too, but Persian and Indic spelling and emoji sequences need them;
    tag characters too, spelling a subdivision flag after U+1F3F4 (Scotland's, Wales's, England's)."""
    assert verify_token(S, make_token(S, "tenant_a", "u1", "e@x.org", username)).username == username


# -- rotation: GROVE_JWT_SECRET_PREVIOUS verifies, never signs ---------------------------------------

OLD_JWT = secrets.token_urlsafe(48)
ROTATING = Settings(jwt_secret=TEST_SECRETS["jwt"], link_secret=TEST_SECRETS["link"], jwt_secret_previous=OLD_JWT)


def test_a_token_signed_with_the_previous_key_verifies_only_while_it_is_set():
    signed_before = jwt.encode(_claims(), OLD_JWT, algorithm="HS256")
    assert verify_token(ROTATING, signed_before) == Identity("tenant_a", "u1", "e@x.org", "n")
    for removed in (S, Settings(jwt_secret=TEST_SECRETS["jwt"], jwt_secret_previous="")):  # unset, or empty
        with pytest.raises(Unauthorized, match="The token is not valid"):
            verify_token(removed, signed_before)
    unrelated = jwt.encode(_claims(), secrets.token_urlsafe(48), algorithm="HS256")
    for settings in (S, ROTATING):
        with pytest.raises(Unauthorized, match="The token is not valid"):
            verify_token(settings, unrelated)


def test_a_token_signed_with_the_previous_key_is_checked_like_any_other():
    for claims, why in ((_claims(exp=int(time.time()) - 5), "expired"), (_claims(iss="someone-else"), "not valid"),
                        (_claims(tenant="a.b"), "incomplete")):
        with pytest.raises(Unauthorized, match=why):
            verify_token(ROTATING, jwt.encode(claims, OLD_JWT, algorithm="HS256"))


def test_only_the_current_key_signs_while_a_previous_one_is_set():
    token = make_token(ROTATING, "tenant_a", "u1", "e@x.org", "n")
    assert jwt.decode(token, TEST_SECRETS["jwt"], algorithms=["HS256"], audience="grove-export")["sub"] == "u1"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, OLD_JWT, algorithms=["HS256"], audience="grove-export")


def test_a_previous_key_is_held_to_the_current_keys_rule_and_differs_from_every_current_key():
    link, current = TEST_SECRETS["link"], TEST_SECRETS["jwt"]
    for bad, why in (("short-but-random-Xq9", "shorter than 32 bytes"), ("a" * 64, "repetitive"),
                     ("CHANGE_ME" + "x" * 40, "placeholder"), ("grove-local-development-secret-change-me!!",
                                                                "published default")):
        for kwargs, var in (({"jwt_previous": bad}, "GROVE_JWT_SECRET_PREVIOUS"),
                            ({"link_previous": bad}, "GROVE_LINK_SECRET_PREVIOUS")):
            with pytest.raises(SecretError, match=f"^{var} .*{why}") as refused:
                require_signing(current, link, **kwargs)
            assert bad not in str(refused.value) and "\n" not in str(refused.value)
    for kwargs, said in (({"jwt_previous": current}, "GROVE_JWT_SECRET_PREVIOUS is the same as GROVE_JWT_SECRET"),
                         ({"link_previous": link}, "GROVE_LINK_SECRET_PREVIOUS is the same as GROVE_LINK_SECRET"),
                         ({"jwt_previous": link}, "GROVE_LINK_SECRET is the same as GROVE_JWT_SECRET_PREVIOUS"),
                         ({"link_previous": current}, "GROVE_LINK_SECRET_PREVIOUS is the same as GROVE_JWT_SECRET"),
                         ({"jwt_previous": OLD_JWT, "link_previous": OLD_JWT},
                          "GROVE_LINK_SECRET_PREVIOUS is the same as GROVE_JWT_SECRET_PREVIOUS")):
        with pytest.raises(SecretError, match=f"^{said}"):
            require_signing(current, link, **kwargs)
    assert require_signing(current, link, OLD_JWT, secrets.token_urlsafe(48)) == (current.encode(), link.encode())
    assert require_signing(current, link, "", "  ") == (current.encode(), link.encode())  # compose's unset


def test_the_previous_link_key_verifies_and_never_signs():
    old_link = secrets.token_urlsafe(48)
    rotating = Settings(jwt_secret=TEST_SECRETS["jwt"], link_secret=TEST_SECRETS["link"],
                        link_secret_previous=old_link)
    assert link_keys(rotating) == (TEST_SECRETS["link"].encode(), old_link.encode())
    assert link_keys(S) == (TEST_SECRETS["link"].encode(),)
    assert link_secret(rotating) == TEST_SECRETS["link"].encode()
