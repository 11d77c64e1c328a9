"""``erase-tenant`` while a gateway is between admitting a request (its reservation in the admission
bucket) and appending its ExportRequested: the gateway frozen there (SIGSTOP) and thawed after.

Seen before: erase found nothing in the log, purged the reservation and said "nothing left"; the
thawed gateway appended the request, answered 201, and the export ran — the tenant's snapshot,
archive and email made after the erasure — with no slot held, so the tenant's next request was
admitted beside it. Real processes: nats-server, the filesystem store, the services, the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from shared.bus.connect import connect
from shared.core.keys import tenant_prefix
from shared.eventlog.directget import subject_counts
from shared.objectstore.factory import open_store
from tests.integration.frontdoor.conftest import api, start_live
from tests.support.env import to_env
from tests.support.wait import until


async def _erase(values: dict[str, Any], tenant: str, wait_s: int, *flags: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "erase-tenant", tenant, "--by", "ada", "--reason", "request 88",
        "--wait", str(wait_s), "--read-model", values["read_model_db"], *flags, env={**os.environ, **to_env(values)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    return proc.returncode or 0, out


async def test_erase_waits_for_a_request_being_admitted_and_cancels_it_once_it_lands(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    faults = tmp_path / "faults"
    faults.mkdir()
    live = start_live(tmp_path, nats_server.url, extra_env={"GROVE_FAULTS_SLOW": "gateway.admitted:4",
                                                             "GROVE_FAULTS_DIR": str(faults)})
    gateway = next(c for c in live.stack.children if c.name == "gateway")
    pid = gateway.pid
    assert pid is not None
    bus = await connect(live.settings, "test", ensure=True)
    store = await open_store(live.settings)
    frozen = False

    async def _in_log() -> dict[str, int]:
        return await subject_counts(bus.nc, live.settings.stream_name, f"{live.settings.subject_prefix}.{tenant}.>")

    try:
        tenant = (await live.seed(images=2)).tenant_id
        (Path(live.values["store_root"]) / live.settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        post = asyncio.create_task(api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant)))

        async def admitted() -> bool:
            return (faults / "gateway.admitted.reached.count").exists()

        await until(admitted, 30, 0.01, "the gateway to admit the request")
        os.kill(pid, signal.SIGSTOP)
        frozen = True
        kv = await bus.js.key_value(f"{live.settings.kv_prefix}_admission")
        reserved = (await kv.get(f"tenant.{tenant}")).value or b""
        assert b"activeExportId" in reserved and not await _in_log(), reserved  # reserved, not yet requested
        code, out = await _erase(live.values, tenant, wait_s=2)
        assert code == 1 and "had not stopped" in out and "nothing was erased" in out, out  # it waited for it
        assert (await kv.get(f"tenant.{tenant}")).value == reserved  # the reservation is still held
        os.kill(pid, signal.SIGCONT)
        frozen = False
        status, body = await post
        assert status == 201, body
        export_id = body["exportId"]
        code, out = await _erase(live.values, tenant, wait_s=60)  # now in the log: cancelled, waited for, erased
        assert code == 0 and "nothing left" in out, out
        assert not await _in_log()
        assert await store.list_keys(live.settings.buckets.exports, tenant_prefix(tenant)) == []
        status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                 headers=live.headers(tenant))
        assert status == 404, body
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        await bus.close()
        await store.close()
        live.stack.stop()



@pytest.mark.parametrize("request_", ["lands", "lapses"])
async def test_erase_running_waits_past_its_wait_for_a_request_being_admitted(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession, request_: str) -> None:
    """``--erase-running`` erases exports that have not stopped after ``--wait``; a request still being
    admitted then has not started: erased from under it (its reservation purged, nothing in the log),
    its ExportRequested landed after the erase said "nothing left", and the export ran to its email.
    It is waited for past ``--wait``, until it lands (then erased) or its reservation lapses (then
    its gateway no longer appends it: 503)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    life = 30.0 if request_ == "lands" else 6.0
    live = start_live(tmp_path, nats_server.url, extra_env={"GROVE_FAULTS_SLOW": "gateway.admitted:4",
                                                             "GROVE_FAULTS_DIR": str(faults)},
                      reservation_timeout_s=life)
    gateway = next(c for c in live.stack.children if c.name == "gateway")
    pid = gateway.pid
    assert pid is not None
    bus = await connect(live.settings, "test", ensure=True)
    store = await open_store(live.settings)
    frozen = False
    erase: asyncio.Task[tuple[int, str]] | None = None

    async def _in_log() -> dict[str, int]:
        return await subject_counts(bus.nc, live.settings.stream_name, f"{live.settings.subject_prefix}.{tenant}.>")

    try:
        tenant = (await live.seed(images=2)).tenant_id
        (Path(live.values["store_root"]) / live.settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        post = asyncio.create_task(api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant)))

        async def admitted() -> bool:
            return (faults / "gateway.admitted.reached.count").exists()

        await until(admitted, 30, 0.01, "the gateway to admit the request")
        os.kill(pid, signal.SIGSTOP)
        frozen = True
        kv = await bus.js.key_value(f"{live.settings.kv_prefix}_admission")
        reserved = (await kv.get(f"tenant.{tenant}")).value or b""
        assert b"activeExportId" in reserved and not await _in_log(), reserved  # reserved, not yet requested
        wait_s = 3 if request_ == "lands" else 1  # once it lands, --wait for its cancel to end
        erase = asyncio.create_task(_erase(live.values, tenant, wait_s, "--erase-running"))
        # past its --wait, and within the reservation's life: still waiting, nothing erased
        done, _ = await asyncio.wait({erase}, timeout=wait_s + 5 if request_ == "lands" else 4)
        assert not done, erase.result()
        assert (await kv.get(f"tenant.{tenant}")).value == reserved
        if request_ == "lapses":  # the gateway stays frozen: the erase goes on once the reservation lapsed
            code, out = await asyncio.wait_for(erase, life + 20)
            assert code == 0 and "nothing left" in out, out
        os.kill(pid, signal.SIGCONT)
        frozen = False
        status, body = await post
        if request_ == "lapses":
            assert status == 503, body  # past its reservation's life the gateway appends nothing
            assert not await _in_log()
            return
        assert status == 201, body  # it landed while the erase waited for it
        export_id = body["exportId"]
        code, out = await erase
        assert code == 0 and "nothing left" in out, out
        assert not await _in_log(), out
        status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                 headers=live.headers(tenant))
        assert status == 404, body
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        if erase is not None:
            await asyncio.gather(erase, return_exceptions=True)
        await bus.close()
        await store.close()
        live.stack.stop()


async def test_a_request_admitted_while_the_erase_erases_is_not_erased_from_under_it(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    """A request admitted after the erase's wait found none being admitted, and before it purged the
    admission bucket: its reservation was purged with the rest, the erase said "nothing left", and
    its ExportRequested landed after. The erase purges the tenant's slot only up to the revision it
    judged: a later reservation stays, and the erase says something was written meanwhile."""
    faults = tmp_path / "faults"
    faults.mkdir()
    live = start_live(tmp_path, nats_server.url, extra_env={"GROVE_FAULTS_SLOW": "gateway.admitted:4",
                                                             "GROVE_FAULTS_DIR": str(faults)})
    gateway = next(c for c in live.stack.children if c.name == "gateway")
    pid = gateway.pid
    assert pid is not None
    bus = await connect(live.settings, "test", ensure=True)
    store = await open_store(live.settings)
    frozen: list[int] = []
    eraser: asyncio.subprocess.Process | None = None

    async def _in_log() -> dict[str, int]:
        return await subject_counts(bus.nc, live.settings.stream_name, f"{live.settings.subject_prefix}.{tenant}.>")

    try:
        tenant = (await live.seed(images=2)).tenant_id
        (Path(live.values["store_root"]) / live.settings.buckets.exports).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **to_env(live.values), "GROVE_FAULTS_SLOW": "erase.erasing:3",
               "GROVE_FAULTS_DIR": str(faults)}
        eraser = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "erase-tenant", tenant, "--by", "ada", "--reason", "request 88",
            "--wait", "5", "--read-model", live.values["read_model_db"], env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)

        async def reached(point: str) -> bool:
            return (faults / f"{point}.reached.count").exists()

        await until(lambda: reached("erase.erasing"), 30, 0.01, "the erase to end its wait (nothing running)")
        os.kill(eraser.pid, signal.SIGSTOP)  # inside its 3 s wait between its wait and its erasure
        frozen.append(eraser.pid)
        post = asyncio.create_task(api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(tenant)))
        await until(lambda: reached("gateway.admitted"), 30, 0.01, "the gateway to admit the request")
        os.kill(pid, signal.SIGSTOP)  # reserved, its ExportRequested not appended
        frozen.append(pid)
        assert not await _in_log()
        os.kill(eraser.pid, signal.SIGCONT)
        frozen.remove(eraser.pid)
        out = (await eraser.communicate())[0].decode()
        assert eraser.returncode == 1 and "something was written meanwhile" in out and "admission" in out, out
        kv = await bus.js.key_value(f"{live.settings.kv_prefix}_admission")
        assert b"activeExportId" in ((await kv.get(f"tenant.{tenant}")).value or b"")  # the reservation stays
        os.kill(pid, signal.SIGCONT)
        frozen.remove(pid)
        status, body = await post
        assert status == 201, body
        export_id = body["exportId"]
        code, out = await _erase(live.values, tenant, wait_s=60)  # run again: cancelled, waited for, erased
        assert code == 0 and "nothing left" in out, out
        assert not await _in_log()
        status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                 headers=live.headers(tenant))
        assert status == 404, body
    finally:
        for stopped in frozen:
            os.kill(stopped, signal.SIGCONT)
        if eraser is not None and eraser.returncode is None:
            eraser.kill()
            await eraser.wait()
        await bus.close()
        await store.close()
        live.stack.stop()
