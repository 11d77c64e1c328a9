"""``grove-export backup`` / ``restore`` round trip: a fresh nats-server restored from a backup shows the
same exports, and the services finish the export that was in flight when the backup was taken —
into the same archive ``grove-export assemble`` makes of its snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.support.env import build, settings_for, to_env
from tests.support.pipeline import fetch_archive, request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


def cli(values: dict[str, Any], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **to_env(values)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def exports(values: dict[str, Any]) -> dict[str, str]:
    out = cli(values, "exports", "--json", "--limit", "100")
    assert out.returncode == 0, out.stderr
    return {r["exportId"]: r["status"] for r in json.loads(out.stdout)["exports"]}


async def test_a_restored_server_shows_the_same_exports_and_finishes_the_one_in_flight(tmp_path: Path) -> None:
    first = NatsServer(tmp_path / "nats-a", log_file=tmp_path / "nats-a.log").start()
    values = settings_for(tmp_path, first.url)
    settings = build(values)
    bus = await connect(settings, "test", ensure=True)
    store = await open_store(settings, create_buckets=True)
    content = content_source(settings)
    await content.init()
    stack = None
    try:
        seeded = [await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                    amber_bucket=settings.buckets.amber, images=n, image_size=(1600, 1200))
                  for n in (1, 16)]
        stack = start_stack(tmp_path / "stack-a", values, extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:2"})
        done = await request_export(bus, seeded[0].tenant_id, include_images=False)
        assert (await wait_status(bus, seeded[0].tenant_id, done, timeout=90)).status == "complete", logs_of(stack)
        flying = await request_export(bus, seeded[1].tenant_id)
        await until(lambda: _parts(bus, seeded[1].tenant_id, flying), 60, 0.2, "a logged part")
        out = cli(values, "backup", str(tmp_path / "backup"))
        assert out.returncode == 0, out.stderr
        assert f"{settings.stream_name}: " in out.stdout and "manifest.json" in out.stdout
        seen = exports(values)
        assert seen[done] == "complete" and seen[flying] in ("assembling", "uploading", "complete")
        again = cli(values, "backup", str(tmp_path / "backup"))
        assert again.returncode == 1 and "already holds a backup" in again.stderr
    finally:
        if stack:
            stack.stop()
        await bus.close()
        first.stop()

    second = NatsServer(tmp_path / "nats-b", log_file=tmp_path / "nats-b.log").start()
    values_b = {**values, "nats_url": second.url}
    bus = None
    stack = None
    try:
        out = cli(values_b, "restore", str(tmp_path / "backup"))
        assert out.returncode == 0, out.stderr
        assert f"{settings.stream_name}: restored" in out.stdout
        assert exports(values_b) == seen
        twice = cli(values_b, "restore", str(tmp_path / "backup"))
        assert twice.returncode == 1 and "the server already has streams" in twice.stderr, twice.stderr
        assert "nothing was restored" in twice.stderr and twice.stdout == "", twice.stderr
        bus = await connect(build(values_b), "test", ensure=True)
        stack = start_stack(tmp_path / "stack-b", values_b)
        state = await wait_status(bus, seeded[1].tenant_id, flying, timeout=120)
        assert state.status == "complete", logs_of(stack)
        archive = await fetch_archive(store, settings, state)
        assert state.cataloged is not None
        ref = cli(values_b, "assemble", "--snapshot", state.cataloged.snapshot_key, "--out", str(tmp_path / "ref.zip"))
        assert ref.returncode == 0, ref.stderr
        assert (tmp_path / "ref.zip").read_bytes() == archive.data
        assert exports(values_b)[done] == "complete"
    finally:
        if stack:
            stack.stop()
        if bus:
            await bus.close()
        await store.close()
        second.stop()


async def _parts(bus: Any, tenant: str, export_id: str) -> bool:
    return bool((await bus.log.load(tenant, export_id)).state.parts)
