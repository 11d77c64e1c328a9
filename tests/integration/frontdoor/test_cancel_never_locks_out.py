"""No tenant is ever locked out by a cancel: with no assembler running, or with a store whose abort
call fails (405 from a store without it, 503 past every retry), the export ends ``cancelled`` for the
user, the tenant may start again (429 within the hour, never 409), and what could not be aborted is
removed later by the janitor's orphan sweep. Judged through the public HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.janitor.run import Janitor
from shared.bus.connect import connect
from shared.core import events as ev
from shared.objectstore.factory import open_store
from tests.integration.frontdoor.conftest import Live, api, start_live, wait_api_status
from tests.support.env import build, s3_values
from tests.support.flaky_proxy import FlakyProxy
from tests.support.stack import start_stack
from tests.support.wait import until

SLOW = {"GROVE_FAULTS_SLOW": "assemble.upload:0.4"}


async def _start(http: aiohttp.ClientSession, live: Live, tenant: str) -> str:
    status, body = await api(http, "POST", f"{live.base}/api/export", json={"deliveryMethod": "download"},
                             headers=live.headers(tenant))
    assert status == 201, body
    return str(body["exportId"])


async def _uploading(http: aiohttp.ClientSession, live: Live, tenant: str, export_id: str) -> None:
    async def part_logged() -> bool:
        _, view = await api(http, "GET", f"{live.base}/api/export/status/{export_id}", headers=live.headers(tenant))
        assert view["status"] in ("pending", "cataloging", "assembling"), view
        return view["status"] == "assembling" and view.get("bytesDone", 0) > 0

    await until(part_logged, 60, 0.1, "a part to be uploaded")


async def _cancel_and_expect_the_tenant_free(http: aiohttp.ClientSession, live: Live, tenant: str,
                                             export_id: str, timeout: float = 60) -> None:
    status, body = await api(http, "POST", f"{live.base}/api/export/cancel/{export_id}", headers=live.headers(tenant))
    assert status == 200, body
    view = await wait_api_status(http, live, tenant, export_id, {"cancelled", "failed", "complete"}, timeout)
    assert view["status"] == "cancelled", view
    status, body = await api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant))
    assert status == 429 and body["code"] == "GROVE-EXPORT-003", body


async def test_a_cancel_with_no_assembler_running_ends_cancelled_and_frees_the_tenant(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    live = start_live(tmp_path, nats_server.url, services=("catalog", "canceller", "finalizer", "notifier", "gateway"))
    assembler = start_stack(tmp_path / "assembler", live.values, services=("assembler",), extra_env=SLOW)
    store = await open_store(live.settings)
    try:
        tenant = (await live.seed(images=24)).tenant_id
        export_id = await _start(http, live, tenant)
        await _uploading(http, live, tenant, export_id)
        assembler.stop()  # every assembler is gone, its upload still open
        prefix = f"exports/{tenant}/{export_id}/"
        assert await store.list_uploads(live.settings.buckets.exports, prefix)
        await _cancel_and_expect_the_tenant_free(http, live, tenant, export_id)
        assert await store.list_uploads(live.settings.buckets.exports, prefix) == []
    finally:
        assembler.stop()
        live.stack.stop()
        await store.close()


@pytest.mark.parametrize("abort_status", [405, 503])
async def test_a_cancel_whose_abort_fails_still_ends_cancelled_and_the_janitor_removes_the_upload(
        tmp_path: Path, nats_server: Any, moto_server: str, http: aiohttp.ClientSession, abort_status: int) -> None:
    proxy = await FlakyProxy(moto_server).start()
    values = s3_values(proxy.url)
    values["s3"]["max_attempts"] = 2
    store = await open_store(build({**values, "s3": {**values["s3"], "endpoint_url": moto_server}}),
                             create_buckets=True)
    live = await asyncio.to_thread(start_live, tmp_path, nats_server.url, extra_env=SLOW, **values)
    direct = build({**live.values, "s3": {**live.values["s3"], "endpoint_url": moto_server},
                    "orphan_upload_age_s": 0.0})
    bus = await connect(direct, "test", ensure=True)
    try:
        victim, bystander = (await live.seed(images=24)).tenant_id, (await live.seed(images=3)).tenant_id
        export_id = await _start(http, live, victim)
        legit = await _start(http, live, bystander)
        await _uploading(http, live, victim, export_id)
        proxy.abort_status = abort_status
        await _cancel_and_expect_the_tenant_free(http, live, victim, export_id, timeout=90)
        events = [e async for _, e in bus.log.history(victim, export_id)]
        cancelled = next(e for e in events if isinstance(e, ev.ExportCancelled))
        retries = [e for e in events if isinstance(e, ev.StepFailed) and e.step == "cancel"]
        assert not cancelled.aborted_upload
        # a 405 will never work (no retry); a 503 is retried and counted like any step
        assert len(retries) == (0 if abort_status == 405 else direct.step_attempts - 1), retries
        assert all("storage" in e.reason and "http" not in e.reason.lower() for e in retries)
        prefix = f"exports/{victim}/{export_id}/"
        assert await store.list_uploads(direct.buckets.exports, prefix), "the upload should be left for the janitor"
        view = await wait_api_status(http, live, bystander, legit, {"complete", "failed", "cancelled"})
        assert view["status"] == "complete", view

        proxy.abort_status = None  # the store (or its policy) is fixed: the sweep removes the leftover
        await Janitor(direct, bus, store).run()
        assert await store.list_uploads(direct.buckets.exports, prefix) == []
    finally:
        live.stack.stop()
        await bus.close()
        await store.close()
        await proxy.stop()


async def test_the_janitor_completes_a_cancel_whose_owner_is_gone(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    live = await asyncio.to_thread(start_live, tmp_path, nats_server.url, services=("catalog", "gateway"))
    settings = build({**live.values, "heartbeat_ttl_s": 1.0})
    store = await open_store(settings)
    bus = await connect(settings, "test", ensure=True)
    try:
        tenant = (await live.seed(images=2)).tenant_id
        export_id = await _start(http, live, tenant)
        await wait_api_status(http, live, tenant, export_id, {"assembling"})
        status, body = await api(http, "POST", f"{live.base}/api/export/cancel/{export_id}",
                                 headers=live.headers(tenant))
        assert status == 200, body
        status, body = await api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant))
        assert status == 409, body  # no canceller runs: the cancel is still open

        async def completed() -> bool:
            await Janitor(settings, bus, store).run()
            _, view = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                headers=live.headers(tenant))
            return view["status"] == "cancelled"

        await until(completed, 30, 0.5, "the janitor to complete the abandoned cancel")
        status, body = await api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant))
        assert status == 429 and body["code"] == "GROVE-EXPORT-003", body
    finally:
        live.stack.stop()
        await bus.close()
        await store.close()
