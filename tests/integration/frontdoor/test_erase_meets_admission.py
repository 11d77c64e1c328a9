"""``erase-tenant`` while a gateway is between admitting a request (its reservation in the admission
bucket) and appending its ExportRequested: the gateway frozen there (SIGSTOP) and thawed after.

Seen before: erase found nothing in the log, purged the reservation and said "nothing left"; the
thawed gateway appended the request, answered 201, and the export ran — the tenant's snapshot,
archive and email made after the erasure — with no slot held, so the tenant's next request was
admitted beside it. Real processes: nats-server, the filesystem store, the services, the gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass
class Admitting:
    """A local stack whose gateway holds at ``gateway.admitted`` (4 s), seeded tenant, the test's bus and store."""

    live: Any
    faults: Path
    pid: int
    bus: Any
    store: Any
    tenant: str

    async def in_log(self) -> dict[str, int]:
        s = self.live.settings
        return await subject_counts(self.bus.js, s.stream_name, f"{s.subject_prefix}.{self.tenant}.>")

    async def reached(self, point: str) -> bool:
        return (self.faults / f"{point}.reached.count").exists()

    async def reservation(self) -> bytes:
        kv = await self.bus.js.key_value(f"{self.live.settings.kv_prefix}_admission")
        return (await kv.get(f"tenant.{self.tenant}")).value or b""

    def post(self, http: aiohttp.ClientSession) -> asyncio.Task[tuple[int, Any]]:
        return asyncio.create_task(api(http, "POST", f"{self.live.base}/api/export", json={},
                                       headers=self.live.headers(self.tenant)))


@contextlib.asynccontextmanager
async def admitting(tmp_path: Path, nats_server: Any, **kwargs: Any) -> AsyncIterator[Admitting]:
    faults = tmp_path / "faults"
    faults.mkdir()
    live = start_live(tmp_path, nats_server.url, extra_env={"GROVE_FAULTS_SLOW": "gateway.admitted:4",
                                                             "GROVE_FAULTS_DIR": str(faults)}, **kwargs)
    try:
        pid = next(c for c in live.stack.children if c.name == "gateway").pid
        assert pid is not None
        bus = await connect(live.settings, "test", ensure=True)
        store = await open_store(live.settings)
        try:
            tenant = (await live.seed(images=2)).tenant_id
            (Path(live.values["store_root"]) / live.settings.buckets.exports).mkdir(parents=True, exist_ok=True)
            yield Admitting(live, faults, pid, bus, store, tenant)
        finally:
            await bus.close()
            await store.close()
    finally:
        live.stack.stop()


async def test_erase_waits_for_a_request_being_admitted_and_cancels_it_once_it_lands(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    async with admitting(tmp_path, nats_server) as a:
        live, tenant = a.live, a.tenant
        post = a.post(http)
        await until(lambda: a.reached("gateway.admitted"), 30, 0.01, "the gateway to admit the request")
        os.kill(a.pid, signal.SIGSTOP)
        try:
            reserved = await a.reservation()
            assert b"activeExportId" in reserved and not await a.in_log(), reserved  # reserved, not yet requested
            code, out = await _erase(live.values, tenant, wait_s=2)
            assert code == 1 and "had not stopped" in out and "nothing was erased" in out, out  # it waited for it
            assert await a.reservation() == reserved  # the reservation is still held
        finally:
            os.kill(a.pid, signal.SIGCONT)
        status, body = await post
        assert status == 201, body
        export_id = body["exportId"]
        code, out = await _erase(live.values, tenant, wait_s=60)  # now in the log: cancelled, waited for, erased
        assert code == 0 and "nothing left" in out, out
        assert not await a.in_log()
        assert await a.store.list_keys(live.settings.buckets.exports, tenant_prefix(tenant)) == []
        status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                 headers=live.headers(tenant))
        assert status == 404, body


@pytest.mark.parametrize("request_", ["lands", "lapses"])
async def test_erase_running_waits_past_its_wait_for_a_request_being_admitted(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession, request_: str) -> None:
    """``--erase-running`` erases exports that have not stopped after ``--wait``; a request still being
    admitted then has not started: erased from under it (its reservation purged, nothing in the log),
    its ExportRequested landed after the erase said "nothing left", and the export ran to its email.
    It is waited for past ``--wait``, until it lands (then erased) or its reservation lapses (then
    its gateway no longer appends it: 503)."""
    life = 30.0 if request_ == "lands" else 6.0
    erase: asyncio.Task[tuple[int, str]] | None = None
    async with admitting(tmp_path, nats_server, reservation_timeout_s=life) as a:
        live, tenant = a.live, a.tenant
        post = a.post(http)
        await until(lambda: a.reached("gateway.admitted"), 30, 0.01, "the gateway to admit the request")
        os.kill(a.pid, signal.SIGSTOP)
        frozen = True
        try:
            reserved = await a.reservation()
            assert b"activeExportId" in reserved and not await a.in_log(), reserved  # reserved, not yet requested
            wait_s = 3 if request_ == "lands" else 1  # once it lands, --wait for its cancel to end
            erase = asyncio.create_task(_erase(live.values, tenant, wait_s, "--erase-running"))
            # past its --wait, and within the reservation's life: still waiting, nothing erased
            done, _ = await asyncio.wait({erase}, timeout=wait_s + 5 if request_ == "lands" else 4)
            assert not done, erase.result()
            assert await a.reservation() == reserved
            if request_ == "lapses":  # the gateway stays frozen: the erase goes on once the reservation lapsed
                code, out = await asyncio.wait_for(erase, life + 20)
                assert code == 0 and "nothing left" in out, out
            os.kill(a.pid, signal.SIGCONT)
            frozen = False
            status, body = await post
            if request_ == "lapses":
                assert status == 503, body  # past its reservation's life the gateway appends nothing
                assert not await a.in_log()
                return
            assert status == 201, body  # it landed while the erase waited for it
            export_id = body["exportId"]
            code, out = await erase
            assert code == 0 and "nothing left" in out, out
            assert not await a.in_log(), out
            status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                     headers=live.headers(tenant))
            assert status == 404, body
        finally:
            if frozen:
                os.kill(a.pid, signal.SIGCONT)
            if erase is not None:
                await asyncio.gather(erase, return_exceptions=True)


async def test_a_request_admitted_while_the_erase_erases_is_not_erased_from_under_it(
        tmp_path: Path, nats_server: Any, http: aiohttp.ClientSession) -> None:
    """A request admitted after the erase's wait found none being admitted, and before it purged the
    admission bucket: its reservation was purged with the rest, the erase said "nothing left", and
    its ExportRequested landed after. The erase purges the tenant's slot only up to the revision it
    judged: a later reservation stays, and the erase says something was written meanwhile."""
    async with admitting(tmp_path, nats_server) as a:
        live, tenant, pid = a.live, a.tenant, a.pid
        frozen: list[int] = []
        eraser: asyncio.subprocess.Process | None = None
        try:
            env = {**os.environ, **to_env(live.values), "GROVE_FAULTS_SLOW": "erase.erasing:3",
                   "GROVE_FAULTS_DIR": str(a.faults)}
            eraser = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "erase-tenant", tenant, "--by", "ada", "--reason", "request 88",
                "--wait", "5", "--read-model", live.values["read_model_db"], env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            await until(lambda: a.reached("erase.erasing"), 30, 0.01, "the erase to end its wait (nothing running)")
            os.kill(eraser.pid, signal.SIGSTOP)  # inside its 3 s wait between its wait and its erasure
            frozen.append(eraser.pid)
            post = a.post(http)
            await until(lambda: a.reached("gateway.admitted"), 30, 0.01, "the gateway to admit the request")
            os.kill(pid, signal.SIGSTOP)  # reserved, its ExportRequested not appended
            frozen.append(pid)
            assert not await a.in_log()
            os.kill(eraser.pid, signal.SIGCONT)
            frozen.remove(eraser.pid)
            out = (await eraser.communicate())[0].decode()
            assert eraser.returncode == 1 and "something was written meanwhile" in out and "admission" in out, out
            assert b"activeExportId" in await a.reservation()  # the reservation stays
            os.kill(pid, signal.SIGCONT)
            frozen.remove(pid)
            status, body = await post
            assert status == 201, body
            export_id = body["exportId"]
            code, out = await _erase(live.values, tenant, wait_s=60)  # run again: cancelled, waited for, erased
            assert code == 0 and "nothing left" in out, out
            assert not await a.in_log()
            status, body = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                     headers=live.headers(tenant))
            assert status == 404, body
        finally:
            for stopped in frozen:
                os.kill(stopped, signal.SIGCONT)
            if eraser is not None and eraser.returncode is None:
                eraser.kill()
                await eraser.wait()
