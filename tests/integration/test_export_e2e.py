"""An export runs end to end through the running services (catalog → assembler → finalizer →
notifier as separate processes on a real nats-server), on the filesystem store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.archivetools.reference import assemble_to_file
from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import s3_values, settings_for
from tests.support.pipeline import fetch_archive, request_export, unzip_test, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until


@pytest.fixture(scope="module", params=["fs", "s3", "fs+postgresql"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            nats_server: NatsServer) -> Iterator[tuple[dict, Stack]]:
    """The step services on their own settings; every test runs on both stores, and once with the
    catalog reading PostgreSQL."""
    tmp = tmp_path_factory.mktemp(f"e2e-{request.param}")
    extra = s3_values(request.getfixturevalue("moto_server")) if request.param == "s3" else {}
    if request.param.endswith("+postgresql"):
        extra["content_dsn"] = request.getfixturevalue("module_postgres_dsn")
    values = settings_for(tmp, nats_server.url, **extra)
    stack = start_stack(tmp / "stack", values)
    yield values, stack
    stack.stop()


@pytest.fixture
def values(running: tuple[dict[str, Any], Stack]) -> dict[str, Any]:
    return running[0]


async def _seed(content: ContentSource, store: ObjectStore, settings: Settings, **kw: Any):
    return await seed_tenant(content, store, images_bucket=settings.buckets.images,
                             amber_bucket=settings.buckets.amber, **kw)


async def test_blog_export_with_images_holds_every_byte_of_the_source(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, tmp_path: Path,
        running: tuple[dict, Stack]) -> None:
    seeded = await _seed(content, store, settings, posts=9, pages=3, images=6)
    export_id = await request_export(bus, seeded.tenant_id)
    state = await wait_status(bus, seeded.tenant_id, export_id)
    assert state.status == "complete", (state.failure, logs_of(running[1]))
    archive = await fetch_archive(store, settings, state)
    names = archive.names()
    assert names[0] == "README.md"
    assert names[-2:] == ["manifest.json", "errors.json"]
    assert sum(n.startswith("posts/") for n in names) == 9
    assert sum(n.startswith("pages/") for n in names) == 3
    media = [m for m in archive.manifest["members"] if m["path"].startswith("media/")]
    assert len(media) == 6
    rows = {r["id"]: r async for r in content.media(seeded.tenant_id)}
    for m in media:
        source = await store.read(settings.buckets.images, rows[m["source_id"]]["r2_key"])
        assert archive.zf.read(m["path"]) == source
    assert archive.errors == []
    assert state.completed and state.completed.item_counts == {"posts": 9, "pages": 3, "images": 6}
    out = tmp_path / "a.zip"
    out.write_bytes(archive.data)
    unzip_test(str(out))

    async def emailed() -> list[Path]:
        return list(Path(settings.mail.outbox_dir).glob(f"{export_id}*.eml"))

    assert len(await until(emailed, 30, what="the export-ready email in the outbox")) == 1
    logged = [json.loads(line) for line in Path(running[1].child("assembler").log_path).read_text().splitlines()
              if line.startswith("{")]
    assert any(line.get("export_id") == export_id and line.get("step") == "assemble" for line in logged)


async def test_text_only_export_has_no_media(bus: Bus, store: ObjectStore, content: ContentSource,
                                             settings: Settings) -> None:
    seeded = await _seed(content, store, settings, posts=4, pages=2, images=3)
    export_id = await request_export(bus, seeded.tenant_id, include_images=False)
    state = await wait_status(bus, seeded.tenant_id, export_id)
    archive = await fetch_archive(store, settings, state)
    assert not [n for n in archive.names() if n.startswith("media/")]
    assert len([n for n in archive.names() if n.startswith("posts/")]) == 4


async def test_a_big_blogs_indexes_deflated_ahead_give_the_reference_archive(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, tmp_path: Path,
        running: tuple[dict, Stack]) -> None:
    """index.json and feed.json of 400 posts (~330 KB and ~840 KB) are compressed on another core
    while the assembler encodes the posts (services/assembler/ahead.py): the archive is byte for
    byte the one ``grove-export assemble`` writes from the snapshot alone, and the assembler says
    it took both from there."""
    seeded = await _seed(content, store, settings, posts=400, pages=1, images=1, files=0)
    export_id = await request_export(bus, seeded.tenant_id)
    state = await wait_status(bus, seeded.tenant_id, export_id, timeout=120)
    assert state.status == "complete", (state.failure, logs_of(running[1]))
    assert state.cataloged is not None and state.completed is not None
    _, sha = await assemble_to_file(store, settings.buckets.exports, state.cataloged.snapshot_key,
                                    tmp_path / "reference.zip")
    assert sha == state.completed.sha256
    log_path = Path(running[1].child("assembler").log_path)

    async def said() -> bool:
        return f"{export_id}: 2 large member(s) deflated ahead" in log_path.read_text()

    await until(said, timeout=10, what="the assembler's line about the members it took from the thread")


async def test_tenant_with_no_content_gets_a_valid_archive(bus: Bus, store: ObjectStore,
                                                           content: ContentSource, settings: Settings) -> None:
    seeded = await _seed(content, store, settings, posts=0, pages=0, images=0, files=0)
    export_id = await request_export(bus, seeded.tenant_id)
    state = await wait_status(bus, seeded.tenant_id, export_id)
    archive = await fetch_archive(store, settings, state)
    assert archive.names() == ["README.md", "index.json", "feed.json", "manifest.json", "errors.json"]


async def test_counts_say_what_the_archive_holds_and_errors_json_what_it_does_not(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings) -> None:
    seeded = await _seed(content, store, settings, posts=2, pages=1, images=3)
    await store.delete(settings.buckets.images, seeded.image_keys[1])
    export_id = await request_export(bus, seeded.tenant_id)
    state = await wait_status(bus, seeded.tenant_id, export_id)
    archive = await fetch_archive(store, settings, state)
    assert state.completed and state.completed.item_counts == {"posts": 2, "pages": 1, "images": 2}
    assert archive.manifest["item_counts"] == state.completed.item_counts and state.completed.error_count == 1
    readme = archive.zf.read("README.md").decode()
    assert "2 posts, 1 pages, 2 images; 1 item could not be included (see errors.json)" in readme
    assert [e["reason"] for e in archive.errors] == ["missing: the file is not in storage"]
    index = json.loads(archive.zf.read("index.json"))
    assert [m["in_archive"] for m in index["media"]] == [True, False, True]
    assert len([n for n in archive.names() if n.startswith("media/")]) == 2


async def test_two_tenants_export_at_once(bus: Bus, store: ObjectStore, content: ContentSource,
                                          settings: Settings) -> None:
    a = await _seed(content, store, settings, posts=3, images=2, seed=1)
    b = await _seed(content, store, settings, posts=5, images=3, seed=2)
    ea, eb = await asyncio.gather(request_export(bus, a.tenant_id), request_export(bus, b.tenant_id))
    sa, sb = await asyncio.gather(wait_status(bus, a.tenant_id, ea), wait_status(bus, b.tenant_id, eb))
    aa, ab = await fetch_archive(store, settings, sa), await fetch_archive(store, settings, sb)
    assert aa.manifest["tenant_id"] == a.tenant_id and ab.manifest["tenant_id"] == b.tenant_id
    assert len([n for n in ab.names() if n.startswith("media/")]) == 3


async def test_a_media_file_that_is_a_link_out_of_the_tenants_folder_is_never_exported(
        bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings, tmp_path: Path) -> None:
    """On the filesystem store a tenant's media file replaced by a symbolic link — to a file outside
    the store, to another tenant's photo — is not a file in storage: errors.json says `missing`, and
    neither target's bytes are in the archive."""
    if settings.store != "fs":
        pytest.skip("symbolic links are the filesystem store's")
    victim = await _seed(content, store, settings, posts=1, images=2, seed=3)
    thief = await _seed(content, store, settings, posts=1, images=3, seed=4)
    images = Path(settings.store_root) / settings.buckets.images
    secret = tmp_path / "passwd"
    secret.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    for key, target in ((thief.image_keys[1], images / victim.image_keys[0]), (thief.image_keys[2], secret)):
        (images / key).unlink()
        (images / key).symlink_to(target)
    export_id = await request_export(bus, thief.tenant_id)
    state = await wait_status(bus, thief.tenant_id, export_id)
    archive = await fetch_archive(store, settings, state)
    assert [e["reason"] for e in archive.errors] == ["missing: the file is not in storage"] * 2
    held = [archive.zf.read(n) for n in archive.names() if n.startswith("media/")]
    assert len(held) == 1
    assert secret.read_bytes() not in held and (images / victim.image_keys[0]).read_bytes() not in held
