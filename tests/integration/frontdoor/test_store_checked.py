"""The store is checked, not trusted: behind a proxy that strips If-Match (a server that ignores
it), sources overwritten mid-export are left out and listed in errors.json — never their new bytes
in the archive; a 501 from the store is permanent: the export fails at once with a reason a person
can read, and the CLI names the store, not NATS."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import aiohttp

from shared.bus.connect import connect
from shared.core import events as ev
from shared.objectstore import StoreRefused
from shared.objectstore.factory import open_store
from tests.integration.frontdoor.conftest import api, start_live, wait_api_status
from tests.support.env import build, s3_values, to_env
from tests.support.flaky_proxy import FlakyProxy

SLOW = {"GROVE_FAULTS_SLOW": "assemble.upload:0.4"}


async def test_sources_overwritten_behind_a_store_that_ignores_if_match_are_left_out_and_reported(
        tmp_path: Path, nats_server: Any, moto_server: str, http: aiohttp.ClientSession) -> None:
    proxy = await FlakyProxy(moto_server, strip_if_match=True).start()
    values = s3_values(proxy.url)
    store = await open_store(build({**values, "s3": {**values["s3"], "endpoint_url": moto_server}}),
                             create_buckets=True)
    live = await asyncio.to_thread(start_live, tmp_path, nats_server.url, extra_env=SLOW, **values)
    direct = build({**live.values, "s3": {**live.values["s3"], "endpoint_url": moto_server}})
    try:
        victim, bystander = await live.seed(images=20), await live.seed(images=3)
        originals = {key: await store.read(direct.buckets.images, key) for key in victim.image_keys}
        status, body = await api(http, "POST", f"{live.base}/api/export", json={"deliveryMethod": "download"},
                                 headers=live.headers(victim.tenant_id))
        assert status == 201, body
        export_id = body["exportId"]
        status, body = await api(http, "POST", f"{live.base}/api/export", json={"deliveryMethod": "download"},
                                 headers=live.headers(bystander.tenant_id))
        legit = body["exportId"]
        await wait_api_status(http, live, victim.tenant_id, export_id, {"assembling"})
        for key, data in originals.items():  # same length, other bytes: only the ETag tells them apart
            await store.put(direct.buckets.images, key, data[::-1], "image/jpeg")
        view = await wait_api_status(http, live, victim.tenant_id, export_id, {"complete", "failed"}, 120)
        assert view["status"] == "complete", view
        status, data = await api(http, "GET", view["downloadUrl"])
        assert status == 200
        zf = zipfile.ZipFile(io.BytesIO(data))
        errors = json.loads(zf.read("errors.json"))
        media = [n for n in zf.namelist() if n.startswith("media/")]
        old, new = set(originals.values()), {d[::-1] for d in originals.values()}
        for name in media:
            content = zf.read(name)
            assert content in old and content not in new, f"{name}: changed bytes slipped into the archive"
        changed = [e for e in errors if e["reason"].startswith("changed")]
        assert changed and len(media) + len(changed) == len(originals), (media, errors)
        assert view["errorCount"] == len(errors)
        assert {e["path"] for e in changed}.isdisjoint(media)
        other = await wait_api_status(http, live, bystander.tenant_id, legit, {"complete", "failed"})
        assert other["status"] == "complete", other
    finally:
        live.stack.stop()
        await store.close()
        await proxy.stop()


async def test_a_501_from_the_store_is_permanent_readable_and_named_as_the_store(
        tmp_path: Path, nats_server: Any, moto_server: str, http: aiohttp.ClientSession) -> None:
    proxy = await FlakyProxy(moto_server).start()
    values = s3_values(proxy.url)
    store = await open_store(build(values), create_buckets=True)
    live = await asyncio.to_thread(start_live, tmp_path, nats_server.url, **values)
    settings = live.settings
    bus = await connect(settings, "test", ensure=True)
    try:
        tenant = (await live.seed(images=2)).tenant_id
        await store.put(settings.buckets.exports, "probe", b"x")
        proxy.get_status = 501
        try:
            await store.read(settings.buckets.exports, "probe")
            raise AssertionError("a 501 must raise")
        except StoreRefused as e:
            assert "does not implement" in e.reason
        finally:
            await store.close()

        status, body = await api(http, "POST", f"{live.base}/api/export", json={"deliveryMethod": "download"},
                                 headers=live.headers(tenant))
        assert status == 201, body
        view = await wait_api_status(http, live, tenant, body["exportId"], {"failed", "complete"}, 60)
        assert view["status"] == "failed", view
        error = view["error"]
        assert "does not implement" in error and "retrying would not help" in error.lower(), error
        for internal in ("127.0.0.1", "StoreRefused", "Error", settings.buckets.exports, "http", "exports/"):
            assert internal not in error, (internal, error)
        events = [e async for _, e in bus.log.history(tenant, body["exportId"])]
        assert not [e for e in events if isinstance(e, ev.StepFailed)], "a permanent error is not retried"

        env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | to_env(live.values)
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.cli", "assemble", "--snapshot", "probe", "--out",
                              str(tmp_path / "x.zip")], env=env, capture_output=True, text=True, timeout=60,
                             check=False)
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "object store" in out.stderr and "does not implement" in out.stderr and "NATS" not in out.stderr
    finally:
        live.stack.stop()
        await bus.close()
        await proxy.stop()
