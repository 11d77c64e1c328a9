"""``grove-export erase-tenant`` against a real stack: a tenant with a finished, a running and a failed
export is gone from the stream, the store, the KV buckets, the read model and the outbox (its emails
carry the requester's address); another tenant's data is untouched; a second run finds nothing and
is safe."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from shared.bus.connect import Bus, kv_names
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import to_env
from tests.support.pipeline import wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


def cli(values: dict[str, Any], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **to_env(values)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


async def _admitted(bus: Bus, settings: Settings, tenant: str, *, images: bool = True) -> str:
    """Start an export the way the gateway does: admission (with an Idempotency-Key), then the event.
    No hourly limit here, so one tenant can have several exports in one test."""
    admission = AdmissionStore(bus, settings.model_copy(update={"rate_window_s": 0.0}), "test")
    export_id = ev.new_export_id()
    fp = f"{hashlib.sha256(export_id.encode()).hexdigest()}:{'b' * 64}"
    assert isinstance(await admission.admit(tenant, export_id, fp), adm.Admit)
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email=f"{tenant}@example.org", username="autumn",
                                            include_images=images), 0)
    await admission.remember(tenant, fp, export_id)
    return export_id


async def _subjects(bus: Bus, stream: str, subject: str) -> dict[str, int]:
    return dict((await bus.js.stream_info(stream, subjects_filter=subject)).state.subjects or {})


async def _held(bus: Bus, store: ObjectStore, settings: Settings, tenant: str) -> dict[str, Any]:
    """Everything about ``tenant`` anywhere, looked up independently of the command under test."""
    hb, admission = kv_names(settings)
    rows = sqlite3.connect(settings.read_model_db).execute(
        "SELECT COUNT(*) FROM storage_exports WHERE tenant_id = ?", (tenant,)).fetchone()[0]
    return {
        "events": sum((await _subjects(bus, settings.stream_name, f"{settings.subject_prefix}.{tenant}.>")).values()),
        "objects": [o.key for o in await store.list_keys(settings.buckets.exports, f"exports/{tenant}/")],
        "uploads": await store.list_uploads(settings.buckets.exports, f"exports/{tenant}/"),
        "admission": await _subjects(bus, f"KV_{admission}", f"$KV.{admission}.idem.{tenant}.>")
        | await _subjects(bus, f"KV_{admission}", f"$KV.{admission}.tenant.{tenant}"),
        "heartbeats": await _subjects(bus, f"KV_{hb}", f"$KV.{hb}.*.{tenant}.>"),
        "rows": rows,
        "emails": sorted(p.name for p in Path(settings.mail.outbox_dir).glob(f"*.{tenant}*")),
    }


async def test_erase_tenant_removes_everything_of_one_tenant_and_nothing_of_another(
        values: dict[str, Any], bus: Bus, store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    tenant, other = "tenant_erase_me", "tenant_keep_me"
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:2"})
    try:
        # failed: the content database does not exist yet, so the catalog fails every attempt
        failed = await _admitted(bus, settings, tenant)
        assert (await wait_status(bus, tenant, failed, timeout=60)).status == "failed", logs_of(stack)
        content = content_source(settings)
        await content.init()
        for t in (tenant, other):
            await seed_tenant(content, store, images_bucket=settings.buckets.images,
                              amber_bucket=settings.buckets.amber, tenant_id=t, images=16, image_size=(1600, 1200))
        # finished: text only, so it is quick even with slow uploads
        done = await _admitted(bus, settings, tenant, images=False)
        kept = await _admitted(bus, settings, other, images=False)
        for t, e in ((tenant, done), (other, kept)):
            assert (await wait_status(bus, t, e, timeout=90)).status == "complete", logs_of(stack)
        # running: with the images, parts upload slowly
        running = await _admitted(bus, settings, tenant)
        await until(lambda: _parts(bus, tenant, running), 60, 0.2, "the running export's first part")
        assert (await wait_status(bus, tenant, running, {"assembling"}, 5)).status == "assembling"

        replay = cli(values, "replay")  # the read model a gateway would hold
        assert replay.returncode == 0, replay.stderr
        before, kept_before = await _held(bus, store, settings, tenant), await _held(bus, store, settings, other)
        assert before["events"] and before["objects"] and before["uploads"] and before["admission"]
        assert before["heartbeats"] and before["rows"] == 3
        assert before["emails"] == sorted([f"{failed}.failed.{tenant}.eml", f"{done}.ready.{tenant}.eml"])
        assert kept_before["emails"] == [f"{kept}.ready.{other}.eml"]

        dry = cli(values, "erase-tenant", tenant, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        counted = re.search(r"would remove (\d+) events of 3 exports", dry.stdout)
        assert counted and int(counted.group(1)) >= before["events"], dry.stdout  # the running one moves on
        assert f"would remove 3 read-model rows in {settings.read_model_db}" in dry.stdout
        assert f"would remove 2 emails in the outbox {settings.mail.outbox_dir}" in dry.stdout, dry.stdout
        # laid out as the erasure's own report: the tenant named first, and that nothing changed
        # (seen: bare "would remove …" lines naming no tenant, then "  export …" indented under nothing)
        lines = dry.stdout.splitlines()
        assert lines[0] == f"tenant {tenant} (--dry-run: nothing was changed):", dry.stdout
        assert all(line.startswith("  ") for line in lines[1:]), dry.stdout
        assert (await _held(bus, store, settings, tenant))["events"] >= before["events"]

        out = cli(values, "erase-tenant", tenant, "--by", "ada", "--reason", "GDPR request 77")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "nothing left in the stream, the KV buckets, the store, the read model or the outbox" in out.stdout
        assert "removed 3 read-model rows" in out.stdout and "archives" in out.stdout
        assert "removed 2 emails in the outbox" in out.stdout, out.stdout
        after = await _held(bus, store, settings, tenant)
        assert after == {"events": 0, "objects": [], "uploads": [], "admission": {}, "heartbeats": {}, "rows": 0,
                         "emails": []}
        assert await _held(bus, store, settings, other) == kept_before

        # the erased exports stay gone while the services keep running
        await asyncio.sleep(3)  # a window for a late writer: nothing may arrive in it
        assert await _held(bus, store, settings, tenant) == after
        again = cli(values, "erase-tenant", tenant)
        assert again.returncode == 0, again.stderr
        assert "removed 0 events of 0 exports" in again.stdout and "nothing left" in again.stdout
        assert f"nothing was held about tenant '{tenant}'" in again.stderr  # a typo reads the same: said
        assert (await wait_status(bus, other, kept, timeout=5)).status == "complete"
    finally:
        stack.stop()


async def _parts(bus: Bus, tenant: str, export_id: str) -> bool:
    return bool((await bus.log.load(tenant, export_id)).state.parts)


def test_erase_tenant_refuses_a_tenant_id_that_is_not_one(values: dict[str, Any]) -> None:
    for bad in ("*", "a.b"):  # a wildcard, or a second subject token, would reach other tenants
        out = cli(values, "erase-tenant", bad)
        assert out.returncode == 2 and "must match" in out.stderr, out.stderr  # a bad argument, like argparse's
