"""Drive real exports: request one on the bus, wait for its outcome, check its archive."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from dataclasses import dataclass

from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core.lifecycle import TERMINAL, ExportState
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.wait import until


async def request_export(bus: Bus, tenant_id: str, *, mode: str = "blog", include_images: bool = True,
                         delivery: str = "email", username: str = "autumn") -> str:
    """Publish ExportRequested straight onto the bus, as an external API gateway would."""
    export_id = ev.new_export_id()
    event = ev.ExportRequested(export_id=export_id, tenant_id=tenant_id, user_id="u1",
                               user_email=f"{username}@example.org", username=username, mode=mode,  # type: ignore[arg-type]
                               include_images=include_images, delivery_method=delivery)  # type: ignore[arg-type]
    await bus.log.append(event, 0, msg_id=f"{export_id}:ExportRequested")
    return export_id


async def small_text_export(settings: Settings, store: ObjectStore, bus: Bus) -> tuple[str, str]:
    """A new tenant (posts and one image, in the test's content database) and an export of its texts
    requested: its ``(tenant_id, export_id)``."""
    from shared.content.factory import content_source
    from shared.content.seed import seed_tenant

    content = content_source(settings)
    await content.init()
    try:
        tenant = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                    amber_bucket=settings.buckets.amber, images=1)).tenant_id
    finally:
        await content.close()
    return tenant, await request_export(bus, tenant, include_images=False)


async def wait_status(bus: Bus, tenant_id: str, export_id: str, statuses: set[str] | None = None,
                      timeout: float = 90.0) -> ExportState:
    want = statuses or TERMINAL

    async def check() -> ExportState | None:
        state = (await bus.log.load(tenant_id, export_id)).state
        return state if state.status in want else None

    return await until(check, timeout, 0.2, f"export {export_id} to reach {sorted(want)}")


async def cancel(bus: Bus, tenant_id: str, export_id: str) -> bool:
    """Ask for a cancel through the production protocol; True if this call appended it."""
    from shared.cancel import NotCancellable, request_cancel

    try:
        return await request_cancel(bus.log, tenant_id, export_id, "u1") is not None
    except NotCancellable:
        return False


@dataclass
class Archive:
    data: bytes
    zf: zipfile.ZipFile
    manifest: dict
    errors: list

    def names(self) -> list[str]:
        return self.zf.namelist()


async def fetch_archive(store: ObjectStore, settings: Settings, state: ExportState) -> Archive:
    assert state.completed is not None, f"export not complete: {state.status} {state.failure}"
    data = await store.read(settings.buckets.exports, state.completed.archive_key)
    assert len(data) == state.completed.size_bytes
    assert hashlib.sha256(data).hexdigest() == state.completed.sha256
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    manifest = json.loads(zf.read("manifest.json"))
    for member in manifest["members"]:
        assert hashlib.sha256(zf.read(member["path"])).hexdigest() == member["sha256"], member["path"]
        assert zf.getinfo(member["path"]).file_size == member["size"]
    return Archive(data, zf, manifest, json.loads(zf.read("errors.json")))


def unzip_test(path: str) -> None:
    """``unzip -t`` must pass (skips when unzip is missing, unless GROVE_REQUIRE_ALL=1)."""
    from tests.support.tools import require_tool

    require_tool("unzip")
    out = subprocess.run(["unzip", "-t", path], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No errors detected" in out.stdout


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
