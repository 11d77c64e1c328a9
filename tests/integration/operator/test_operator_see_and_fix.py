"""The operator's commands against a real stack (nats-server, service processes, filesystem store):
``exports`` and ``show`` at every status; ``cancel``, ``retry``, ``resend`` and ``unlock`` with their
log entries, and refused — one line, non-zero exit — where the log says no."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from services.janitor.main import run_once
from shared.bus.connect import Bus
from shared.content.factory import content_source
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core import keys
from shared.core.keys import heartbeat_key
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import to_env
from tests.support.pipeline import fetch_archive, request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

# each step is held at its point (it beats meanwhile) until the test, having looked, releases it
FREEZE = (("cataloging", "catalog", "catalog", "catalog.read"),
          ("assembling", "assemble", "assembler", "assemble.upload"),
          ("uploading", "finalize", "finalizer", "finalize.before_start"))


def cli(values: dict[str, Any], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **to_env(values)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def refused(out: subprocess.CompletedProcess[str], words: str) -> None:
    """A refusal: non-zero, one line on stderr naming the reason, no traceback."""
    assert out.returncode != 0, out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("grove-export: ") and words in lines[0], out.stderr


def show(values: dict[str, Any], export_id: str) -> dict[str, Any]:
    return dict(json.loads(ok(cli(values, "show", export_id, "--json"))))


def listed(values: dict[str, Any], *filters: str) -> list[dict[str, Any]]:
    return list(json.loads(ok(cli(values, "exports", "--json", *filters)))["exports"])


async def events_of(bus: Bus, tenant: str, export_id: str) -> list[ev.Event]:
    return [e async for _, e in bus.log.history(tenant, export_id)]


async def _seed(content: ContentSource, store: ObjectStore, settings: Settings, images: int = 4) -> str:
    await content.init()
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, images=images, image_size=(900, 700))
    return seeded.tenant_id


async def test_exports_and_show_follow_one_export_through_every_status(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    tenant = await _seed(content, store, settings, images=12)
    export_id = await request_export(bus, tenant)
    # no services yet: pending, no upload, no heartbeat
    view = show(values, export_id)
    assert (view["status"], view["step"], view["attempt"], view["upload"], view["heartbeat"]) == (
        "pending", "catalog", 1, None, None)
    assert [r["exportId"] for r in listed(values, "--status", "pending")] == [export_id]
    text = ok(cli(values, "show", export_id))
    assert "status     pending" in text and "ExportRequested" in text and "heartbeat  none" in text
    held = tmp_path / "held"
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values, extra_env={
        "GROVE_FAULTS_HOLD": ",".join(f"{point}:60" for *_, point in FREEZE), "GROVE_FAULTS_DIR": str(held)})
    try:
        for status, step, service, point in FREEZE:
            await until(lambda point=point: _reached(held, point), 60, 0.05, f"{step} held at {point}")
            await until(lambda step=step: _beating(bus, tenant, export_id, step), 30, 0.1, f"{step}'s heartbeat")
            stack.kill(service, signal.SIGSTOP)  # and frozen there while the (slow) CLI looks
            (held / f"{point}.release").touch()  # it goes on once thawed
            try:
                view = show(values, export_id)
                assert (view["status"], view["step"]) == (status, step), logs_of(stack)
                assert view["heartbeat"]["step"] == step  # a worker holds it and beats
                assert [r["exportId"] for r in listed(values, "--status", status, "--tenant", tenant)] == [export_id]
                if status == "assembling":
                    assert view["upload"]["open"] and view["snapshot"]["members"] > 12
            finally:
                stack.kill(service, signal.SIGCONT)
        state = await wait_status(bus, tenant, export_id, {"complete"}, 60)
        await until(lambda: _sent(bus, tenant, export_id, 1), 30, 0.2, "the ready email")
    finally:
        stack.stop()
    view = show(values, export_id)
    assert (view["status"], view["sizeBytes"], view["upload"]["open"]) == ("complete", state.completed.size_bytes,
                                                                         False)
    assert view["events"][0]["type"] == "ExportRequested" and view["events"][-1]["type"] == "NotificationSent"
    assert listed(values, "--status", "complete", "--step", "catalog") == []
    # expired: the janitor, a week later
    await run_once(settings, now=datetime.now(UTC) + timedelta(days=8))
    assert show(values, export_id)["status"] == "expired"
    assert [r["status"] for r in listed(values, "--tenant", tenant)] == ["expired"]
    assert listed(values, "--older-than", "1d") == []


async def test_the_list_is_newest_first_paginated_and_filtered(values: dict[str, Any], bus: Bus) -> None:
    ids = [await request_export(bus, f"tenant_{i % 2}") for i in range(5)]
    first = listed(values, "--limit", "2")
    second = json.loads(ok(cli(values, "exports", "--json", "--limit", "2", "--page", "3")))
    assert [r["exportId"] for r in first] == ids[::-1][:2]
    assert [r["exportId"] for r in second["exports"]] == [ids[0]] and second["more"] is False
    assert {r["tenantId"] for r in listed(values, "--tenant", "tenant_1")} == {"tenant_1"}
    table = ok(cli(values, "exports", "--limit", "2")).splitlines()
    assert table[0].split()[:4] == ["EXPORT", "TENANT", "STATUS", "STEP"] and ids[-1] in table[1]
    assert table[-1] == "page 1: 2 exports, newest first; more: --page 2"
    refused(cli(values, "exports", "--older-than", "soon"), "like 90s")
    refused(cli(values, "show", "exp_nothing_here"), "no events for export")


async def test_show_and_events_print_the_same_event_lines_and_fail_the_same_way(values: dict[str, Any],
                                                                                bus: Bus, tmp_path: Path) -> None:
    """One convention: a bad argument exits 2 (as argparse's own refusals do), an export the log does
    not hold exits 1 (the log says no), with the same line from ``show`` and ``events``."""
    export_id = await request_export(bus, "tenant_same")
    shown = ok(cli(values, "show", export_id)).splitlines()
    listed_lines = ok(cli(values, "events", export_id)).splitlines()
    assert shown[-len(listed_lines):] == listed_lines  # `show` ends with exactly `events`' lines
    assert not any("type=" in line or "=None" in line for line in listed_lines), listed_lines
    for args in (["exports", "--older-than", "2x"], ["exports", "--status", "bogus"], ["exports", "--page", "0"],
                 ["exports", "--tenant", "a.b"], ["show", "exp one"], ["events", "exp one"],
                 ["unlock", "a.b", "--reason", "x"], ["resend", export_id, "--reason", " "]):
        out = cli(values, *args)
        assert out.returncode == 2, (args, out.stderr)
        refused(out, "grove-export: ")
    missing = [cli(values, command, "exp_nope") for command in ("show", "events")]
    assert [m.returncode for m in missing] == [1, 1], [m.stderr for m in missing]
    assert missing[0].stderr == missing[1].stderr and "no events for export 'exp_nope'" in missing[0].stderr
    no_snapshot = cli(values, "assemble", "--snapshot", "exports/t/exp_nope/work/snapshot.jsonl", "--out",
                      str(tmp_path / "never.zip"))  # not /dev/null: a device is refused first (exit 2)
    assert no_snapshot.returncode == 1, no_snapshot.stderr  # not there: 1, as an export that is not
    for command in ("show", "events"):  # a tenant's id where an export's belongs: both say so
        refused(cli(values, command, "tenant_same"), "'tenant_same' is a tenant: `grove-export exports --tenant "
                                                     "tenant_same` lists its exports")


async def test_the_list_skips_what_the_services_drop_and_sizes_only_an_archive(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """A forged or malformed ExportRequested (anyone with a publishing password can store one) is
    dropped by every service; the list must not show it as a row (it crashed the table: status None),
    and a cancelled export that never had an archive has no size."""
    tenant = "tenant_phantoms"
    real = await request_export(bus, tenant)
    prefix = settings.subject_prefix
    forged = ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_victim", user_id="u1",
                                user_email="a@example.org", username="a", mode="blog", include_images=True,
                                delivery_method="email")
    for subject, body in ((f"{prefix}.{tenant}.exp_malformed1.ExportRequested", b"{not json"),
                          (f"{prefix}.{tenant}.exp_forged1.ExportRequested", forged.to_json()),  # body names another
                          (f"{prefix}.{tenant}.exp_array1.ExportRequested", b"[1, 2]")):
        await bus.js.publish(subject, body, stream=settings.stream_name)
    cancelled = await request_export(bus, tenant)
    loaded = await bus.log.load(tenant, cancelled)
    seq = await bus.log.append(ev.ExportCataloged(
        export_id=cancelled, tenant_id=tenant, snapshot_key=keys.snapshot_key(tenant, cancelled),
        snapshot_sha256="0" * 64, archive_key=keys.archive_key(tenant, cancelled, "a", "2026-01-01"),
        member_count=3, total_bytes=123_456_789, item_counts={"posts": 3}, producer="catalog"), loaded.last_seq)
    seq = await bus.log.append(ev.CancelRequested(export_id=cancelled, tenant_id=tenant, producer="gateway"), seq)
    await bus.log.append(ev.ExportCancelled(export_id=cancelled, tenant_id=tenant, producer="canceller"), seq)

    rows = listed(values, "--tenant", tenant)
    assert [r["exportId"] for r in rows] == [cancelled, real]
    assert all(r["tenantId"] == tenant and r["status"] for r in rows)
    assert rows[0]["status"] == "cancelled" and rows[0]["sizeBytes"] is None  # no archive, no size
    table = ok(cli(values, "exports", "--tenant", tenant)).splitlines()
    assert [line.split()[0] for line in table[1:-1]] == [cancelled, real], table
    assert table[1].split()[-1] == "-" and table[-1] == "page 1: 2 exports, newest first (end)"
    assert [r["exportId"] for r in listed(values, "--tenant", tenant, "--limit", "1", "--page", "2")] == [real]
    phantom = cli(values, "show", "exp_malformed1")  # stderr also has the log's "drops malformed event" line
    assert phantom.returncode != 0 and "Traceback" not in phantom.stderr, phantom.stderr
    assert phantom.stderr.splitlines()[-1].startswith("grove-export: export 'exp_malformed1' has no valid request")
    for bad in (["--page", "0"], ["--page", "-1"], ["--limit", "0"], ["--limit", "-3"]):
        refused(cli(values, "exports", *bad), bad[0])


async def test_operator_cancel_is_recorded_with_who_and_why_and_refused_once_finished(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    tenant = await _seed(content, store, settings, images=12)
    held = tmp_path / "held"
    held.mkdir()
    stack = start_stack(tmp_path / "stack", values,
                        extra_env={"GROVE_FAULTS_HOLD": "assemble.upload:60", "GROVE_FAULTS_DIR": str(held)})
    try:
        export_id = await request_export(bus, tenant)
        await until(lambda: _reached(held, "assemble.upload"), 60, 0.05, "the assembler held at a part's upload")
        stack.kill("assembler", signal.SIGSTOP)  # and frozen there, mid-archive, while the (slow) CLI starts
        try:
            assert (await bus.log.load(tenant, export_id)).state.status == "assembling"
            (held / "assemble.upload.release").touch()  # it goes on once thawed
            out = ok(cli(values, "cancel", export_id, "--by", "ada", "--reason", "ticket 123: person asked us"))
        finally:
            stack.kill("assembler", signal.SIGCONT)
        assert "CancelRequested by ada" in out
        state = await wait_status(bus, tenant, export_id, timeout=30)
        assert state.status == "cancelled", logs_of(stack)
        asked = next(e for e in await events_of(bus, tenant, export_id) if isinstance(e, ev.CancelRequested))
        assert (asked.operator, asked.reason, asked.requested_by, asked.producer) == (
            "ada", "ticket 123: person asked us", "operator:ada", "operator")
        assert await store.list_uploads(settings.buckets.exports, keys.export_prefix(tenant, export_id)) == []
        refused(cli(values, "cancel", export_id, "--reason", "again"), "already cancelled")
        done = await request_export(bus, tenant)
        await wait_status(bus, tenant, done, {"complete"}, 60)
        refused(cli(values, "cancel", done, "--reason", "too late"), "already complete")
        refused(cli(values, "cancel", "exp_unknown", "--reason", "x"), "no events for export")
    finally:
        stack.stop()
    assert listed(values, "--status", "cancelled")[0]["exportId"] == export_id


async def test_retry_resend_and_unlock_act_through_the_log(values: dict[str, Any], bus: Bus, store: ObjectStore,
                                                           settings: Settings, tmp_path: Path) -> None:
    # The services' content database does not exist yet: the catalog fails every attempt.
    tenant = "tenant_retry"
    admission = AdmissionStore(bus, settings, "test")
    export_id = ev.new_export_id()
    assert isinstance(await admission.admit(tenant, export_id, None), adm.Admit)  # as the gateway does
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="autumn@example.org", username="autumn"), 0)
    stack = start_stack(tmp_path / "stack", values)
    try:
        state = await wait_status(bus, tenant, export_id, timeout=60)
        assert (state.status, state.failure.step if state.failure else None) == ("failed", "catalog"), logs_of(stack)
        assert [r["exportId"] for r in listed(values, "--status", "failed", "--step", "catalog")] == [export_id]
        await until(lambda: _sent(bus, tenant, export_id, 1), 30, 0.2, "the failed email")
        refused(cli(values, "unlock", tenant, "--reason", "x"), "already free")  # nothing to free: it failed

        # resend: the failed email again, recorded
        out = ok(cli(values, "resend", export_id, "--by", "ada", "--reason", "person lost the email"))
        assert "sends the failed email again" in out
        await until(lambda: _sent(bus, tenant, export_id, 2), 30, 0.2, "the email sent again")
        # a second email, not the first rewritten: its own outbox file (and Message-ID, Idempotency-Key)
        assert sorted(p.name for p in Path(settings.mail.outbox_dir).glob(f"{export_id}*failed*")) == [
            f"{export_id}.failed.{tenant}.eml", f"{export_id}.failed.{tenant}.r1.eml"]

        # retry: the content is there now; a new attempt from catalog, picked up by the services
        content = content_source(settings)
        await content.init()
        await seed_tenant(content, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                          tenant_id=tenant, images=3)
        out = ok(cli(values, "retry", export_id, "--by", "ada", "--reason", "content database restored"))
        assert "attempt 2 started from catalog" in out
        state = await wait_status(bus, tenant, export_id, {"complete"}, 60)
        await fetch_archive(store, settings, state)
        retried = next(e for e in await events_of(bus, tenant, export_id) if isinstance(e, ev.ExportRetried))
        assert (retried.operator, retried.reason, retried.from_step, retried.attempt) == (
            "ada", "content database restored", "catalog", 2)
        await until(lambda: _sent(bus, tenant, export_id, 3), 30, 0.2, "the ready email")
        assert (Path(settings.mail.outbox_dir) / f"{export_id}.ready.{tenant}.a2.r1.eml").exists()
        refused(cli(values, "retry", export_id, "--reason", "x"), "only a failed export can be retried")

        # unlock: the slot names the complete export, so the hour holds the tenant back until unlocked
        assert isinstance(await admission.admit(tenant, ev.new_export_id(), None), adm.RateLimited)
        out = ok(cli(values, "unlock", tenant, "--by", "ada", "--reason", "support ticket 9"))
        assert f"it named {export_id}, complete" in out
        unlocked = [e for e in await events_of(bus, tenant, export_id) if isinstance(e, ev.AdmissionUnlocked)]
        assert [(e.operator, e.reason) for e in unlocked] == [("ada", "support ticket 9")]
        second = ev.new_export_id()
        assert isinstance(await admission.admit(tenant, second, None), adm.Admit)
    finally:
        stack.stop()
    # the new export is pending (no services): unlock, retry and resend say no
    await bus.log.append(ev.ExportRequested(export_id=second, tenant_id=tenant, user_id="u1",
                                            user_email="autumn@example.org", username="autumn"), 0)
    refused(cli(values, "unlock", tenant, "--reason", "x"), f"export {second} is pending in the log; cancel it first")
    refused(cli(values, "retry", second, "--reason", "x"), "the export is pending")
    refused(cli(values, "resend", second, "--reason", "x"), "no outcome to email yet")
    refused(cli(values, "resend", export_id, "--reason", "  "), "--reason must say why")


async def _beating(bus: Bus, tenant: str, export_id: str, step: str) -> bool:
    try:
        entry = await bus.heartbeats.get(heartbeat_key(step, tenant, export_id))
    except Exception:
        return False
    return bool(entry.value) and json.loads(entry.value or b"{}").get("step") == step


async def _reached(faults_dir: Path, point: str) -> bool:
    return (faults_dir / f"{point}.reached.count").exists()


async def _sent(bus: Bus, tenant: str, export_id: str, n: int) -> bool:
    return sum(isinstance(e, ev.NotificationSent) for e in await events_of(bus, tenant, export_id)) >= n


async def test_an_export_id_two_tenants_use_is_never_guessed(values: dict[str, Any], bus: Bus) -> None:
    """Export ids are unique within a tenant only (a gateway of one's own picks them): with the id
    alone, ``show``, ``events`` and ``cancel`` refuse and name both tenants; ``--tenant`` picks one,
    and the action lands on that tenant's export only."""
    export_id = await request_export(bus, "tenant_pat")
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id="tenant_quinn", user_id="u2",
                                            user_email="quinn@example.org", username="quinn"), 0)
    for command in (("show", export_id), ("events", export_id), ("cancel", export_id, "--reason", "test")):
        refused(cli(values, *command), "tenant_pat, tenant_quinn): pass --tenant")
    view = dict(json.loads(ok(cli(values, "show", export_id, "--tenant", "tenant_quinn", "--json"))))
    assert view["tenantId"] == "tenant_quinn"
    assert "ExportRequested" in ok(cli(values, "events", export_id, "--tenant", "tenant_pat"))
    refused(cli(values, "show", export_id, "--tenant", "tenant_other"), "of tenant 'tenant_other'")
    ok(cli(values, "cancel", export_id, "--tenant", "tenant_quinn", "--reason", "test"))
    assert [e.name() for e in await events_of(bus, "tenant_quinn", export_id)] == ["ExportRequested",
                                                                                  "CancelRequested"]
    assert [e.name() for e in await events_of(bus, "tenant_pat", export_id)] == ["ExportRequested"]


async def test_a_tenant_the_log_does_not_know_is_named_as_a_possible_typo(values: dict[str, Any], bus: Bus,
                                                                         settings: Settings) -> None:
    (settings.store_root / settings.buckets.exports).mkdir(parents=True)  # the store erase-tenant checks for
    export_id = await request_export(bus, "tenant_known")  # a stream with something in it, just not this tenant
    refused(cli(values, "unlock", "tenant_nosuch", "--reason", "x"), "the log holds no export of this tenant: a typo?")
    # an export's id where a tenant's belongs (show and events say the converse): named, with its tenant
    refused(cli(values, "unlock", export_id, "--reason", "x"),
            f"{export_id!r} is an export of tenant tenant_known: `grove-export unlock tenant_known`")
    dry = cli(values, "erase-tenant", export_id, "--dry-run", "--no-read-model")
    assert f"{export_id!r} is an export of tenant tenant_known; erase-tenant takes a tenant id and erases all its " \
        "exports" in dry.stderr, dry.stderr
    done = cli(values, "erase-tenant", export_id, "--no-read-model", "--reason", "x")
    assert "is an export of tenant tenant_known; erase-tenant takes a tenant id" in done.stderr, done.stderr
    dry = cli(values, "erase-tenant", "tenant_nosuch", "--dry-run", "--no-read-model")  # no gateway has run here
    assert dry.returncode == 0 and "nothing is held about tenant 'tenant_nosuch' (a typo?" in dry.stderr, dry.stderr
    known = cli(values, "erase-tenant", "tenant_known", "--dry-run", "--no-read-model")
    assert known.returncode == 0 and "a typo" not in known.stderr, known.stderr


async def test_show_and_events_print_a_publishers_text_with_control_characters_escaped(
        values: dict[str, Any], bus: Bus) -> None:
    """A failure's reason is free text that can quote what a publisher wrote (a request holding such
    characters in its username is itself a bad event, tests/unit/test_event_text_fields.py): printed
    as is, ESC [2J clears the operator's terminal, ESC ]0;… BEL retitles it and U+202E reverses the
    line. The text commands print them as escapes; ``--json`` is JSON, whose own escapes read back to
    the text as published."""
    tenant, hostile = "tenant_hostile", "ada\x1b[2J\x1b]0;pwned\x07\u202egpj.exe"
    export_id = await request_export(bus, tenant, username="ada")
    seq = (await bus.log.load(tenant, export_id)).last_seq
    seq = await bus.log.append(ev.StepFailed(export_id=export_id, tenant_id=tenant, step="catalog", attempt=1,
                                             reason=f"no user {hostile}"), seq)
    await bus.log.append(ev.ExportFailed(export_id=export_id, tenant_id=tenant, step="catalog",
                                         reason=f"gave up on {hostile}"), seq)
    shown, events = ok(cli(values, "show", export_id)), ok(cli(values, "events", export_id))
    for out in (shown, events):
        assert not any(c in out for c in "\x1b\x07\u202e"), out
        assert "ada\\x1b[2J\\x1b]0;pwned\\x07\\u202egpj.exe" in out, out
    assert "failure    gave up on ada\\x1b[2J" in shown and "last error: no user ada\\x1b[2J" in shown, shown
    view = json.loads(ok(cli(values, "show", export_id, "--json")))
    assert view["failure"] == f"gave up on {hostile}"
    assert view["lastStepError"] == f"no user {hostile}"
