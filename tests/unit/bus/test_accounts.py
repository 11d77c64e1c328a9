"""The generated accounts (shared/bus/permissions.py), read as data: each service user's account
reaches only its own calls, and hears what its subscriptions take from each other user."""

from __future__ import annotations

import re

import pytest

from shared.bus import permissions as perms
from shared.core import steps

USERS = {u.name: u for u in perms.USERS}


def _accounts(text: str) -> dict[str, str]:
    """Account name → its block (the generator's own layout: two-space indented names)."""
    found = re.split(r"\n  (\w+): \{\n", text)
    return dict(zip(found[1::2], found[2::2], strict=True))


@pytest.mark.parametrize("name", sorted(USERS))
def test_each_account_imports_its_own_calls_and_nothing_else(name: str) -> None:
    block = _accounts(perms.render_accounts({n: "pw" for n in ("admin", *USERS)}))[perms.service_account(name)]
    imported = re.findall(r'service: \{ account: "STORE", subject: "([^"]+)" \}(?:, to: "([^"]+)")?', block)
    own = perms.allowed_publish(name)
    assert sorted(to or store for store, to in imported) == sorted(own)
    others = {d.durable for d in steps.all_consumers()} - {d.durable for d in steps.consumers_of(name)}
    assert not any(f"MSG.NEXT.EXPORTS.{d}\"" in block for d in others)


def test_store_exports_each_call_only_to_the_accounts_that_may_make_it() -> None:
    store = _accounts(perms.render_accounts())[perms.STORE_ACCOUNT]
    for subject, accounts in re.findall(r'\{ service: "([^"]+)", accounts: \[([^]]*)\]', store):
        callers = sorted(a.strip().strip('"') for a in accounts.split(","))
        public = subject.replace("$JS.API.", "$JS.STORE.API.", 1)
        assert callers == sorted(perms.service_account(n) for n in USERS
                                 if public in perms.allowed_publish(n)), subject


def test_who_hears_whom() -> None:
    heard = {n: perms.heard_from(u) for n, u in USERS.items()}
    assert {n for n, h in heard.items() if h} == {"gateway", "assembler", "janitor"}
    assert heard["assembler"] == [("gateway", "exports.*.*.CancelRequested")]
    assert sorted(s for _, s in heard["gateway"]) == sorted(
        f"exports.*.*.{e}" for n in USERS if n != "gateway" for e in steps.appends_of(n))
    assert sorted(heard["janitor"]) == sorted(
        (n, f"$KV.grove_heartbeats.{step}.>") for n, u in USERS.items() for step in u.steps)


@pytest.mark.parametrize(("subject", "pattern", "inside"), [
    ("exports.*.*.CatalogStarted", "exports.*.*.*", True),
    ("exports.*.*.CatalogStarted", "exports.*.*.CancelRequested", False),
    ("exports.*.*.CancelRequested", "exports.*.*.CancelRequested", True),
    ("$KV.grove_heartbeats.catalog.>", "$KV.grove_heartbeats.>", True),
    ("$KV.grove_heartbeats.>", "$KV.grove_heartbeats.catalog.>", False),
    ("exports.>", "exports.*.*.*", False),
    ("exports.a.b", "exports.*.*.*", False),
    ("$js.store.api.stream.info.kv_grove_heartbeats", "$js.store.api.stream.info.kv_grove_heartbeats", True),
])
def test_within(subject: str, pattern: str, inside: bool) -> None:
    assert perms.within(subject, pattern) is inside


def test_every_import_route_ends() -> None:
    """Each STORE service export has a response threshold (a route nothing answers was held the
    server's default 2 min), the acks' shortest: no service asks an ack for an answer."""
    store = _accounts(perms.render_accounts())[perms.STORE_ACCOUNT]
    exports = re.findall(r'\{ service: "([^"]+)",[^\n]*?response_threshold: "([^"]+)" \}', store)
    assert len(exports) == store.count("{ service:")
    assert {t for s, t in exports if s.startswith("$JS.ACK.")} == {perms.ACK_ANSWER_THRESHOLD}
    assert {t for s, t in exports if not s.startswith("$JS.ACK.")} == {perms.ANSWER_THRESHOLD}


class _Refused:
    def __init__(self, subject: str) -> None:
        self.last_error = Exception(f'nats: permissions violation for publish to "{subject.lower()}"')


@pytest.mark.parametrize(("user", "subject", "old_config"), [
    ("catalog", "$JS.STORE.API.STREAM.INFO.KV_grove_heartbeats", True),  # its own: only an old block refuses it
    ("catalog", "$JS.STORE.API.STREAM.INFO.KV_grove_admission", False),  # not its own under the new block either
    ("gateway", "$JS.STORE.API.STREAM.INFO.KV_grove_heartbeats", False),  # an operator command as the gateway
    ("gateway", "$JS.STORE.API.DIRECT.GET.EXPORTS", True),
])
def test_an_old_config_is_told_from_a_call_the_user_may_not_make(user: str, subject: str, old_config: bool) -> None:
    from shared.bus.connect import _refused_what_the_accounts_allow
    from shared.runtime.settings import Settings

    settings = Settings(nats_user=user, subject_prefix="exports", kv_prefix="grove", stream_name="EXPORTS")
    assert _refused_what_the_accounts_allow(_Refused(subject), settings) is old_config  # type: ignore[arg-type]
