"""The operator's fix commands (unlock, retry, resend, cancel) against a log anyone on the bus may
have written to: forged or malformed events must not block, crash or mislead them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from services.operator import actions
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core import keys
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_see_and_fix import cli, events_of, listed, ok, show
from tests.support.env import to_env


async def test_unlock_is_not_blocked_by_a_malformed_request_every_service_drops(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """A malformed ExportRequested on a tenant's subjects folds to no export (status None); unlock read
    it as an active export and refused forever: "export exp_junk1 is None in the log; cancel it first"."""
    tenant = "tenant_junk_unlock"
    admission = AdmissionStore(bus, settings, "test")
    export_id = ev.new_export_id()
    assert isinstance(await admission.admit(tenant, export_id, None), adm.Admit)
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="a@example.org", username="a"), 0)
    loaded = await bus.log.load(tenant, export_id)
    seq = await bus.log.append(ev.CancelRequested(export_id=export_id, tenant_id=tenant, producer="gateway"),
                               loaded.last_seq)
    await bus.log.append(ev.ExportCancelled(export_id=export_id, tenant_id=tenant, producer="canceller"), seq)
    assert isinstance(await admission.admit(tenant, ev.new_export_id(), None), adm.RateLimited)
    await bus.js.publish(f"{settings.subject_prefix}.{tenant}.exp_junk1.ExportRequested", b"{not json",
                         stream=settings.stream_name)
    out = cli(values, "unlock", tenant, "--by", "ada", "--reason", "ticket 1")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert f"it named {export_id}, cancelled" in ok(out)
    assert [e.operator for e in await events_of(bus, tenant, export_id) if isinstance(e, ev.AdmissionUnlocked)] \
        == ["ada"]


async def _failed(bus: Bus, tenant: str) -> str:
    export_id = ev.new_export_id()
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="a@example.org", username="a"), 0)
    loaded = await bus.log.load(tenant, export_id)
    await bus.log.append(ev.ExportFailed(export_id=export_id, tenant_id=tenant, step="catalog", reason="db down",
                                         producer="catalog"), loaded.last_seq)
    return export_id


async def test_two_operators_acting_at_once_act_exactly_once(
        bus: Bus, store: ObjectStore, settings: Settings) -> None:
    """Two retries, two resends, two cancels of one export started together: one acts, the other is
    refused with the log's reason, and the log holds exactly one event of each."""
    tenant = "tenant_race"
    ada, bob = actions.Who("ada", "ticket 1"), actions.Who("bob", "ticket 2")
    export_id = await _failed(bus, tenant)
    results = await asyncio.gather(actions.retry(bus, store, settings, tenant, export_id, ada),
                                   actions.retry(bus, store, settings, tenant, export_id, bob),
                                   return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 1, results
    assert sum(isinstance(r, actions.Refusal) and "only a failed export" in str(r) for r in results) == 1, results
    assert sum(isinstance(e, ev.ExportRetried) for e in await events_of(bus, tenant, export_id)) == 1
    results = await asyncio.gather(actions.cancel(bus, tenant, export_id, ada),
                                   actions.cancel(bus, tenant, export_id, bob), return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 1, results
    assert sum(isinstance(r, actions.Refusal) for r in results) == 1, results
    assert sum(isinstance(e, ev.CancelRequested) for e in await events_of(bus, tenant, export_id)) == 1

    resent = await _failed(bus, tenant)
    loaded = await bus.log.load(tenant, resent)
    await bus.log.append(ev.NotificationSent(export_id=resent, tenant_id=tenant, channel="email", kind="failed",
                                             producer="notifier"), loaded.last_seq)
    results = await asyncio.gather(actions.resend(bus, tenant, resent, ada), actions.resend(bus, tenant, resent, bob),
                                   return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 1, results
    assert sum(isinstance(r, actions.Refusal) and "already due" in str(r) for r in results) == 1, results
    assert sum(isinstance(e, ev.ResendRequested) for e in await events_of(bus, tenant, resent)) == 1


async def test_resend_is_refused_for_a_complete_export_past_its_expiry(bus: Bus, settings: Settings) -> None:
    """A complete export past its expiry is expired (the gateway shows it so, the janitor records it
    so) even before the janitor ran; resend appended ResendRequested, and the notifier emailed the
    person a "ready" link to an archive the gateway calls expired."""
    tenant = "tenant_past_expiry"
    export_id = await _complete(bus, tenant, datetime.now(UTC) - timedelta(hours=1))
    try:
        said: object = await actions.resend(bus, tenant, export_id, actions.Who("ada", "lost the email"))
    except actions.Refusal as e:
        said = e
    assert isinstance(said, actions.Refusal) and "expired" in str(said), said
    assert not any(isinstance(e, ev.ResendRequested) for e in await events_of(bus, tenant, export_id))


async def test_unlock_refuses_while_a_request_is_being_admitted(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """A gateway has reserved the slot for a new export and is publishing its ExportRequested: the log
    shows nothing yet, but the export is about to run. Unlock freed the slot, so a second request was
    admitted beside it: two active exports for one tenant."""
    tenant = "tenant_reserving"
    admission = AdmissionStore(bus, settings, "test")
    reserved = ev.new_export_id()
    assert isinstance(await admission.admit(tenant, reserved, None), adm.Admit)  # reserved, not yet published
    out = cli(values, "unlock", tenant, "--by", "ada", "--reason", "ticket 2")
    await bus.log.append(ev.ExportRequested(export_id=reserved, tenant_id=tenant, user_id="u1",
                                            user_email="a@example.org", username="a"), 0)  # the gateway goes on
    second = await admission.admit(tenant, ev.new_export_id(), None)
    assert not isinstance(second, adm.Admit), "a second export was admitted beside the first"
    assert out.returncode == 1 and "Traceback" not in out.stderr, (out.stdout, out.stderr)
    assert out.stderr.splitlines()[-1].startswith(f"grove-export: tenant {tenant}: ") and reserved in out.stderr


async def test_show_and_exports_call_a_complete_export_past_its_expiry_expired(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """The gateway shows a complete export past its expiry as expired before the janitor records it;
    show said "complete" with the archive's size and ``exports --status expired`` left it out."""
    tenant = "tenant_show_expiry"
    export_id = await _complete(bus, tenant, datetime.now(UTC) - timedelta(hours=1))
    view = show(values, export_id)
    assert (view["status"], view["sizeBytes"]) == ("expired", None), view
    assert [r["exportId"] for r in listed(values, "--tenant", tenant, "--status", "expired")] == [export_id]
    assert listed(values, "--tenant", tenant, "--status", "complete") == []


async def _complete(bus: Bus, tenant: str, expires_at: datetime) -> str:
    """A complete export whose ready email was sent, expiring at ``expires_at``."""
    return await _complete_as(bus, tenant, ev.new_export_id(), expires_at)


async def _complete_as(bus: Bus, tenant: str, export_id: str,
                       expires_at: datetime | None = None) -> str:
    expires_at = expires_at or datetime.now(UTC) + timedelta(days=7)
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="a@example.org", username="a"), 0)
    seq = (await bus.log.load(tenant, export_id)).last_seq
    key = keys.archive_key(tenant, export_id, "a", "2026-01-01")
    for event in (ev.ArchiveAssembled(export_id=export_id, tenant_id=tenant, producer="assembler", archive_key=key,
                                      upload_id="u", size_bytes=10, part_count=1, member_count=1, error_count=0),
                  ev.FinalizeStarted(export_id=export_id, tenant_id=tenant, producer="finalizer"),
                  ev.ExportCompleted(export_id=export_id, tenant_id=tenant, producer="finalizer",
                                     archive_key=key,
                                     size_bytes=10, sha256="0" * 64, item_counts={"posts": 1}, error_count=0,
                                     expires_at=expires_at),
                  ev.NotificationSent(export_id=export_id, tenant_id=tenant, channel="email", producer="notifier")):
        seq = await bus.log.append(event, seq)
    return export_id


async def test_unlock_and_retry_read_a_slot_nested_too_deep_as_free(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """Anyone can put a value under a tenant's admission key; arrays nested thousands deep made
    json.loads raise RecursionError (not ValueError), and unlock and retry ended in a traceback."""
    tenant = "tenant_deep_slot"
    export_id = await _failed(bus, tenant)
    admission = AdmissionStore(bus, settings, "test")
    await bus.js.publish(f"$KV.{admission.bucket}.tenant.{tenant}", b"[" * 5000 + b"]" * 5000)
    out = cli(values, "unlock", tenant, "--reason", "x")
    assert "Traceback" not in out.stderr and "already free" in out.stderr, out.stderr
    out = cli(values, "retry", export_id, "--by", "ada", "--reason", "x")
    assert out.returncode == 0 and "attempt 2 started" in out.stdout, out.stderr


async def test_two_unlocks_at_once_free_the_slot_once(bus: Bus, settings: Settings) -> None:
    tenant = "tenant_unlock_race"
    admission = AdmissionStore(bus, settings, "test")
    export_id = ev.new_export_id()
    assert isinstance(await admission.admit(tenant, export_id, None), adm.Admit)
    await _complete_as(bus, tenant, export_id)
    assert isinstance(await admission.admit(tenant, ev.new_export_id(), None), adm.RateLimited)
    results = await asyncio.gather(actions.unlock(bus, settings, tenant, actions.Who("ada", "t1")),
                                   actions.unlock(bus, settings, tenant, actions.Who("bob", "t2")),
                                   return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 1, results
    assert sum(isinstance(r, actions.Refusal) and "already free" in str(r) for r in results) == 1, results
    assert sum(isinstance(e, ev.AdmissionUnlocked) for e in await events_of(bus, tenant, export_id)) == 1


async def test_show_on_a_terminal_that_is_not_utf8_prints_what_it_cannot_encode_as_escapes(
        values: dict[str, Any], bus: Bus) -> None:
    """A Latin-1 terminal (PYTHONIOENCODING or the locale): a requester's name in any other script
    made print() raise UnicodeEncodeError, and show ended in a traceback."""
    tenant = "tenant_latin1"
    export_id = ev.new_export_id()
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="tokyo@example.org", username="東京"), 0)
    out = _latin1(values, "show", export_id)
    assert out.returncode == 0 and b"Traceback" not in out.stderr, out.stderr.decode("latin-1")
    assert b"by \\u6771\\u4eac <" in out.stdout, out.stdout


def _latin1(values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **to_env(values), "PYTHONIOENCODING": "latin-1"}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, timeout=60,
                          check=False)


async def test_the_warnings_of_a_hostile_log_reach_the_terminal_escaped(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """The log's warning about a dropped event names its subject, and anyone chose that subject's
    tokens; the command printed the warning to stderr as is, ESC and all."""
    prefix = settings.subject_prefix
    await bus.js.publish(f"{prefix}.t\x1b]0;pwned\x07x.exp_hostile1.ExportRequested", b"{not json",
                         stream=settings.stream_name)
    out = cli(values, "exports")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr, repr(out.stderr)
