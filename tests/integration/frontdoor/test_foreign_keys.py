"""An event that names another export's objects is forged, whoever could publish it (found by an
adversarial run: with the catalog's NATS password alone, an ExportCataloged naming tenant A's
snapshot and archive made the assembler build A's data into tenant C's export and write over A's
finished archive). Live stack, real processes; the catalog is slowed so the forgery is appended,
fenced as the catalog's own append would be, before the catalog's real ExportCataloged."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from shared.bus.connect import connect
from shared.core import events as ev
from shared.core import keys
from shared.core.lifecycle import fold
from shared.eventlog.jetstream import Loaded
from tests.integration.frontdoor.conftest import Live, api, start_live, wait_api_status
from tests.support.stack import logs_of
from tests.support.wait import until


@pytest.fixture(scope="module")
def live_slow_catalog(tmp_path_factory: pytest.TempPathFactory, nats_server: Any) -> Iterator[Live]:
    live = start_live(tmp_path_factory.mktemp("foreign-keys"), nats_server.url,
                      extra_env={"GROVE_FAULTS_SLOW": "catalog.read:2"})
    yield live
    live.stack.stop()


async def _download(http: aiohttp.ClientSession, view: dict[str, Any]) -> bytes:
    code, data = await api(http, "GET", view["downloadUrl"])
    assert code == 200, data
    return bytes(data)


async def test_a_cataloged_event_naming_another_tenants_snapshot_and_archive_is_dropped(
        live_slow_catalog: Live, http: aiohttp.ClientSession) -> None:
    live, s = live_slow_catalog, live_slow_catalog.settings
    victim = (await live.seed(images=3, username="alice")).tenant_id
    attacker = (await live.seed(images=2, username="carol")).tenant_id
    bus = await connect(s, "test", persistent=False)
    try:
        status, created = await api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(victim))
        assert status == 201, created
        victim_export = created["exportId"]
        done = await wait_api_status(http, live, victim, victim_export, {"complete", "failed"}, 90)
        assert done["status"] == "complete", done
        victim_zip = await _download(http, done)
        victim_state = (await bus.log.load(victim, victim_export)).state
        assert victim_state.cataloged is not None and victim_state.completed is not None
        victim_sha, victim_key = hashlib.sha256(victim_zip).hexdigest(), victim_state.completed.archive_key

        status, created = await api(http, "POST", f"{live.base}/api/export", json={}, headers=live.headers(attacker))
        assert status == 201, created
        export_id = created["exportId"]
        forged = ev.ExportCataloged(  # the victim's snapshot (readable in its log) and archive key
            export_id=export_id, tenant_id=attacker, snapshot_key=victim_state.cataloged.snapshot_key,
            snapshot_sha256=victim_state.cataloged.snapshot_sha256, archive_key=victim_key,
            member_count=victim_state.cataloged.member_count, total_bytes=victim_state.cataloged.total_bytes,
            item_counts=victim_state.cataloged.item_counts, producer="catalog")

        async def reading() -> Loaded | None:  # CatalogStarted is in: the catalog is in its slowed read
            loaded = await bus.log.load(attacker, export_id)
            return loaded if loaded.state.status == "cataloging" else None

        loaded = await until(reading, 30, 0.05, "the catalog to start reading")
        assert loaded.state.cataloged is None, "the catalog was not slow enough for the forgery to land first"
        seq = await bus.log.append(forged, loaded.last_seq)  # fenced, as the catalog's append is
        stored = await bus.js.get_msg(s.stream_name, seq)
        assert stored.subject.endswith(f".{attacker}.{export_id}.ExportCataloged")  # the forgery is in the log

        view = await wait_api_status(http, live, attacker, export_id, {"complete", "failed", "cancelled"}, 120)
        assert view["status"] == "complete", (view, logs_of(live.stack))
        history = [e async for _, e in bus.log.history(attacker, export_id)]
        cataloged = [e for e in history if isinstance(e, ev.ExportCataloged)]
        assert len(cataloged) == 1 and keys.is_snapshot_key_of(attacker, export_id, cataloged[0].snapshot_key), cataloged
        assert fold(history).completed is not None
        assert keys.is_archive_key_of(attacker, export_id, fold(history).completed.archive_key)

        # The attacker's archive holds the attacker's content only; the victim's archive is untouched.
        with zipfile.ZipFile(io.BytesIO(await _download(http, view))) as z:
            readme = z.read("README.md").decode()
        assert attacker in readme and victim not in readme, readme[:400]
        assert hashlib.sha256(await live_store_read(live, victim_key)).hexdigest() == victim_sha
        again = await wait_api_status(http, live, victim, victim_export, {"complete"})
        assert hashlib.sha256(await _download(http, again)).hexdigest() == victim_sha
    finally:
        await bus.close()


async def live_store_read(live: Live, key: str) -> bytes:
    from shared.objectstore.factory import open_store

    store = await open_store(live.settings)
    try:
        return await store.read(live.settings.buckets.exports, key)
    finally:
        await store.close()
