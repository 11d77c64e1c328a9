"""NATS users per service: the generated ``accounts`` block on a real nats-server.

1. Every service user may append exactly its own events: a publish of another service's event
   subject is refused by the server (``Permissions Violation``, no PubAck, nothing stored).
2. A whole export runs with every service process connected as its own user — gateway (HTTP in),
   catalog, assembler (and its canceller), finalizer, notifier — plus a cancelled export and one
   janitor run as the janitor user; no service log shows a permissions violation.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.errors
import pytest

from services.archivetools.reference import assemble_to_file
from services.devtools.stack.natsserver import env_without_proxies, free_port
from services.gateway.auth import make_token
from shared.bus.connect import Bus
from shared.bus.permissions import ADMIN, USERS
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import export_prefix
from shared.eventlog.jetstream import EventLog
from shared.objectstore.factory import open_store
from tests.cluster.procs import LAUNCH, Procs, connect_bus
from tests.cluster.secured import PASSWORDS, Secured, _connect
from tests.support.env import to_env
from tests.support.wait import until

ALL_EVENTS = sorted(ev.EVENT_TYPES)  # the operators' and the retired (StepFailed) too: refused to every user
async def test_an_unknown_user_or_a_wrong_password_cannot_connect(secured: Secured) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(secured.server.url, max_reconnect_attempts=0, connect_timeout=2,
                           allow_reconnect=False)
    with pytest.raises(nats.errors.Error):
        await nats.connect(secured.server.url, user="finalizer", password="wrong", max_reconnect_attempts=0,
                           connect_timeout=2, allow_reconnect=False)


async def test_each_service_user_appends_only_its_own_events(secured: Secured) -> None:
    s = secured.settings
    admin = await _connect(secured.server.url, ADMIN)
    await EventLog(admin.jetstream(), s.stream_name, s.subject_prefix).ensure_stream(1)
    conns: dict[str, nats.NATS] = {}
    errors: dict[str, list[str]] = {}
    try:
        for u in USERS:
            errors[u.name] = []
            conns[u.name] = await _connect(secured.server.url, u.name, errors[u.name])

        async def attempt(user: str, event: str) -> tuple[str, str, bool]:
            subject = f"{s.subject_prefix}.t_{user}.e_{event}.{event}"
            try:
                ack = await conns[user].jetstream().publish(subject, b"{}", timeout=2)
                return user, event, ack.seq > 0
            except nats.errors.TimeoutError:
                return user, event, False

        results = await asyncio.gather(*(attempt(u.name, e) for u in USERS for e in ALL_EVENTS))
        allowed = {(user, event) for user, event, ok in results if ok}
        assert allowed == {(u.name, e) for u in USERS for e in u.events}

        # The brief's case spelled out: the finalizer cannot write the assembler's PartUploaded.
        assert ("finalizer", "PartUploaded") not in allowed and ("finalizer", "ExportCompleted") in allowed
        assert any("permissions violation for publish" in e.lower() and "partuploaded" in e.lower()
                   for e in errors["finalizer"]), errors["finalizer"][:5]
        # Nor another step's failed attempt: the catalog records only its own (StepFailed, whose
        # subject named no step, nobody may append any more).
        assert ("catalog", "CatalogAttemptFailed") in allowed
        assert not {("catalog", "AssembleAttemptFailed"), ("catalog", "StepFailed")} & allowed
        # Nor fail an export at another step: each publisher has its own ExportFailed type (the
        # ExportFailed of logs from before, whose subject named no step, nobody may append any more).
        assert {("catalog", "ExportFailedAtCatalog"), ("janitor", "ExportFailedByJanitor")} <= allowed
        assert not {("catalog", "ExportFailedAtAssemble"), ("janitor", "ExportFailedAtAssemble"),
                    *((u.name, "ExportFailed") for u in USERS)} & allowed

        # Nothing refused reached the stream: its subjects are exactly the allowed ones.
        info = await admin.jetstream().stream_info(s.stream_name, subjects_filter=f"{s.subject_prefix}.>")
        stored = {(subj.split(".")[1][2:], subj.split(".")[3]) for subj in (info.state.subjects or {})}
        assert stored == allowed

        # KV: only the gateway writes admission slots; step services write heartbeats.
        fin_js = conns["finalizer"].jetstream()
        with pytest.raises(nats.errors.TimeoutError):
            await fin_js.publish(f"$KV.{s.kv_prefix}_admission.tenant.x", b"{}", timeout=1)
        # Heartbeats: a step user writes only its own steps' keys (shared/core/keys.heartbeat_key), so
        # the finalizer's password cannot keep an assembling export alive for the janitor.
        hb = f"{s.kv_prefix}_heartbeats"
        try:
            await admin.jetstream().key_value(hb)
        except nats.js.errors.BucketNotFoundError:
            await admin.jetstream().create_key_value(bucket=hb)
        assert (await fin_js.publish(f"$KV.{hb}.finalize.t_x.e_x", b"{}", timeout=2)).seq > 0
        for key in ("assemble.t_x.e_x", "t_x.e_x", "notify.t_x.e_x"):
            with pytest.raises(nats.errors.TimeoutError):
                await fin_js.publish(f"$KV.{hb}.{key}", b"{}", timeout=1)
        # Destructive JetStream API calls are denied (request never reaches the server's handler).
        with pytest.raises(nats.errors.TimeoutError):
            await fin_js.purge_stream(s.stream_name)
        with pytest.raises(nats.errors.TimeoutError):
            await fin_js.delete_stream(s.stream_name)
        assert (await admin.jetstream().stream_info(s.stream_name)).state.messages == len(allowed)
        # Core subscriptions beyond _INBOX are refused (the server reports it asynchronously).
        await conns["finalizer"].subscribe(f"{s.subject_prefix}.>")
        await conns["finalizer"].flush()
        await until(_true_if(lambda: any("violation for subscription" in e.lower() for e in errors["finalizer"])), 5,
                    what="a subscription permissions violation")
    finally:
        for c in conns.values():
            await c.close()
        await admin.close()


async def test_the_catalog_and_the_assembler_read_the_log_at_its_leader(secured: Secured) -> None:
    """The look that decides a deletion is the stream leader's get (``STREAM.MSG.GET``): the catalog's and
    the assembler's users may call it through their accounts' imports; a user without that need may not."""
    from shared.eventlog.jetstream import LogUnavailable

    s = secured.settings
    admin = await _connect(secured.server.url, ADMIN)
    conns: list[nats.NATS] = []
    try:
        await EventLog(admin.jetstream(), s.stream_name, s.subject_prefix).ensure_stream(1)
        logged = EventLog(admin.jetstream(), s.stream_name, s.subject_prefix, "test")
        request = ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="t_leader", user_id="u",
                                     user_email="a@b.c", username="autumn")
        seq = await logged.append(request, 0)
        for name in ("catalog", "assembler", "finalizer"):
            conns.append(conn := await _connect(secured.server.url, name))
            log = EventLog(conn.jetstream(timeout=2), s.stream_name, s.subject_prefix, name)
            assert (await log.load(request.tenant_id, request.export_id)).last_seq == seq  # direct: every user
            if name == "finalizer":
                with pytest.raises(LogUnavailable):  # its publish refused: no answer comes
                    await log.load(request.tenant_id, request.export_id, at_leader=True)
                continue
            leader = await log.load(request.tenant_id, request.export_id, at_leader=True)
            assert (leader.last_seq, leader.state.exists) == (seq, True)
    finally:
        for c in conns:
            await c.close()
        await admin.close()


def _true_if(pred: Any) -> Any:
    async def check() -> bool:
        return bool(pred())

    return check


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_whole_export_runs_with_a_nats_user_per_service(secured: Secured, tmp_path: Path,
                                                                http: aiohttp.ClientSession) -> None:
    values, s = secured.values, secured.settings
    port = free_port()
    base = {**to_env(values), "GROVE_PORT": str(port), "GROVE_HOST": "127.0.0.1",
            "GROVE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    procs = Procs(tmp_path / "logs", base)
    admin: Bus | None = None
    store = await open_store(s, create_buckets=True)
    try:
        # The admin step first (what `grove-export serve` runs): services may only bind.
        admin = await connect_bus(s, [secured.server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
        for svc in ("gateway", "catalog", "assembler", "canceller", "finalizer", "notifier"):
            env = {"GROVE_NATS_USER": svc, "GROVE_NATS_PASSWORD": PASSWORDS[svc]}
            if svc == "assembler":  # slow uploads a little so the second export can be cancelled mid-way
                env["GROVE_FAULTS_SLOW"] = "assemble.upload:0.3"
            procs.run(svc, svc, env)
        db = content_source(s)
        a = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=6)
        b = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=12)

        async def ready() -> bool:
            procs.assert_alive()
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(ready, 30, 0.2, "gateway /readyz")
        assert (await admin.js.stream_info(s.stream_name)).config.num_replicas == 1

        def headers(tenant: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {make_token(s, tenant, 'u1', 'u1@example.org', 'autumn')}"}

        async def post(path: str, tenant: str, **extra: str) -> dict:
            async with http.post(f"http://127.0.0.1:{port}{path}", json={"mode": "blog"},
                                 headers={**headers(tenant), **extra}) as r:
                body = await r.json()
                assert r.status in (200, 201), (r.status, body)
                return body

        async def status(tenant: str, export_id: str) -> dict:
            async with http.get(f"http://127.0.0.1:{port}/api/export/status/{export_id}",
                                headers=headers(tenant)) as r:
                assert r.status == 200, await r.text()
                return await r.json()

        ex_a = (await post("/api/export", a.tenant_id, **{"Idempotency-Key": "perm-test-a"}))["exportId"]
        ex_b = (await post("/api/export", b.tenant_id))["exportId"]

        async def b_uploading() -> bool:
            st = (await admin.log.load(b.tenant_id, ex_b)).state
            return len(st.parts) >= 1

        await until(b_uploading, 60, 0.1, "export B to upload a part")
        await post(f"/api/export/cancel/{ex_b}", b.tenant_id)

        async def finished(tenant: str, export_id: str) -> dict | None:
            view = await status(tenant, export_id)
            return view if view["status"] in ("complete", "failed", "cancelled", "expired") else None

        view_a = await until(lambda: finished(a.tenant_id, ex_a), 90, 0.3, "export A to finish")
        view_b = await until(lambda: finished(b.tenant_id, ex_b), 60, 0.3, "export B to finish")
        assert view_a["status"] == "complete", f"{view_a}\n{procs.logs()}"
        assert view_b["status"] == "cancelled", f"{view_b}\n{procs.logs()}"

        state_a = (await admin.log.load(a.tenant_id, ex_a)).state
        assert state_a.completed and state_a.cataloged
        archive = await store.read(s.buckets.exports, state_a.completed.archive_key)
        _, sha = await assemble_to_file(store, s.buckets.exports, state_a.cataloged.snapshot_key,
                                        tmp_path / "reference.zip")
        assert archive == (tmp_path / "reference.zip").read_bytes() and sha == state_a.completed.sha256

        async def notified() -> bool:
            return (await admin.log.load(a.tenant_id, ex_a)).state.notification is not None

        await until(notified, 30, 0.2, "the notifier to record its outcome")
        producers = {e.name(): e.producer async for _, e in admin.log.history(a.tenant_id, ex_a)}
        assert producers["ExportRequested"] == "gateway" and producers["ExportCompleted"] == "finalizer"
        events_b = [e.name() async for _, e in admin.log.history(b.tenant_id, ex_b)]
        assert events_b[-1] == "ExportCancelled", events_b
        assert await store.list_uploads(s.buckets.exports, export_prefix(b.tenant_id, ex_b)) == []

        # One janitor run (what the CronJob runs) as the janitor user.
        env = {**env_without_proxies(), **base, "GROVE_NATS_USER": "janitor",
               "GROVE_NATS_PASSWORD": PASSWORDS["janitor"]}
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "janitor"], env=env,
                                      capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "janitor:" in out.stdout + out.stderr

        procs.assert_alive()
        logs = {tag: procs.tail(tag, 10**7) for tag in procs.children}
        violations = {tag: [ln for ln in text.splitlines() if "permissions violation" in ln.lower()]
                      for tag, text in logs.items()}
        assert not any(violations.values()), json.dumps(violations, indent=1)[:4000]
        print(f"\n[permissions] export {ex_a} complete with 5 service users; {ex_b} cancelled; "
              f"janitor ran: {(out.stdout + out.stderr).strip().splitlines()[-1][:160]}")
    finally:
        procs.stop()
        if admin:
            await admin.close()
        await store.close()


async def test_every_wake_up_reaches_its_listener_across_the_accounts(secured: Secured) -> None:
    """Each service user is in an account of its own, so a core wake-up goes out through STORE: an
    append or a heartbeat put made by one user (or by admin, in STORE) reaches each account that
    listens for it — the gateway every new event, the assembler a CancelRequested, the janitor a
    beat — once each, and no other of those three; each stored once."""
    s = secured.settings
    p, hb = s.subject_prefix, f"{s.kv_prefix}_heartbeats"
    admin = await connect_bus(s, [secured.server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
    conns = {name: await _connect(secured.server.url, name) for name in ("gateway", "catalog", "assembler",
                                                                        "janitor")}
    heard: dict[str, list[str]] = {name: [] for name in conns}
    try:
        for name, subject in (("gateway", f"{p}.*.*.*"), ("assembler", f"{p}.*.*.CancelRequested"),
                              ("janitor", f"$KV.{hb}.>")):
            async def note(msg: Any, name: str = name) -> None:
                heard[name].append(msg.subject)
            await conns[name].subscribe(subject, cb=note)
            await conns[name].flush()
        sent = [("catalog", f"{p}.t_w.e_w.CatalogStarted"), ("gateway", f"{p}.t_w.e_w.CancelRequested"),
                ("catalog", f"$KV.{hb}.catalog.t_w.e_w"), ("admin", f"{p}.t_w.e_x.ExportRequested")]
        for who, subject in sent:
            js = admin.js if who == "admin" else conns[who].jetstream()
            await js.publish(subject, b"{}", timeout=2)
        want = {"gateway": [f"{p}.t_w.e_w.CatalogStarted", f"{p}.t_w.e_w.CancelRequested",
                            f"{p}.t_w.e_x.ExportRequested"],
                "assembler": [f"{p}.t_w.e_w.CancelRequested"], "janitor": [f"$KV.{hb}.catalog.t_w.e_w"]}

        async def all_heard() -> bool:
            return all(sorted(heard[n]) == sorted(w) for n, w in want.items())

        await until(all_heard, 5, 0.05, f"every wake-up heard once (heard: {heard})")
        await asyncio.sleep(0.3)  # and no second copy after a moment
        assert {n: sorted(h) for n, h in heard.items() if h} == {n: sorted(w) for n, w in want.items()}
        # and a relayed message goes nowhere else: each stored once, where its publisher put it
        log = (await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.>")).state.subjects
        assert log == {f"{p}.t_w.e_w.CatalogStarted": 1, f"{p}.t_w.e_w.CancelRequested": 1,
                       f"{p}.t_w.e_x.ExportRequested": 1}
        beats = (await admin.js.stream_info(f"KV_{hb}", subjects_filter=">")).state.subjects
        assert beats == {f"$KV.{hb}.catalog.t_w.e_w": 1}
    finally:
        for nc in conns.values():
            await nc.close()
        await admin.close()
