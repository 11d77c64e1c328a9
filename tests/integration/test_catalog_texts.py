"""The texts object of a big export (past what the catalog keeps in memory, 8 MiB) goes up in parts
from the catalog's temporary file, and is read back by range with its multipart ETag; the archive is
byte for byte the one a single PUT gives — on the filesystem store and on S3 (moto)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.archivetools.reference import assemble_to_file
from services.catalog import spool
from services.catalog.service import Catalog
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import texts_key_beside, work_prefix
from shared.core.snapshot import Snapshot, sha256_hex
from shared.objectstore import ObjectStore, StoreUnavailable
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.support.env import build, s3_values

pytestmark = pytest.mark.timeout(120)

BODY = 64 * 1024
POSTS = 150  # ~9.8 MB of posts, and as much in feed.json: past spool.IN_MEMORY


@pytest.fixture(params=["fs", "s3"])
def settings(request: pytest.FixtureRequest, values: dict[str, Any]) -> Settings:
    if request.param == "s3":
        return build({**values, **s3_values(request.getfixturevalue("moto_server"))})
    return build(values)


class Recording:
    """The store, with the catalog's writes of the texts object counted."""

    def __init__(self, store: ObjectStore, fail_part: int | None = None) -> None:
        self._store, self.fail_part = store, fail_part
        self.puts: list[str] = []
        self.parts: list[tuple[str, int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        self.puts.append(key)
        return await self._store.put(bucket, key, data, content_type)

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: Any,
                          md5: str | None = None) -> str:
        if number == self.fail_part:
            raise StoreUnavailable("injected outage")
        self.parts.append((key, number, len(data)))
        return await self._store.upload_part(bucket, key, upload_id, number, data, md5)


class Step:
    """What the catalog asks of the worker's StepContext: the export's state, appends, progress marks."""

    def __init__(self, request: ev.ExportRequested) -> None:
        self.state = SimpleNamespace(request=request, status="cataloging")
        self.appended: list[ev.Event] = []
        self.marks = 0

    async def append(self, event: ev.Event, msg_id: str | None = None) -> None:
        self.appended.append(event)

    def progress(self) -> None:
        self.marks += 1


async def _big_tenant(content: ContentSource, store: ObjectStore, settings: Settings) -> ev.ExportRequested:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=4, pages=2, images=3)
    await content.insert("posts", [{
        "id": f"big{i}", "tenant_id": seeded.tenant_id, "slug": f"big-{i}", "title": f"Big {i} ünï",
        "description": None, "markdown_content": f"{i} " + "word " * (BODY // 5), "tags": '["a"]',
        "status": "published", "featured_image": None, "published_at": 1_700_000_000 + i,
        "created_at": 1_700_000_000, "updated_at": None} for i in range(POSTS)])
    return ev.ExportRequested(export_id="exp_big", tenant_id=seeded.tenant_id, user_id="u1",
                              user_email="a@example.org", username="autumn")


async def _catalog(settings: Settings, store: ObjectStore, content: ContentSource,
                   request: ev.ExportRequested) -> tuple[Step, ev.ExportCataloged]:
    step = Step(request)
    await Catalog(settings, store, content)(step)  # type: ignore[arg-type]
    cataloged = step.appended[-1]
    assert isinstance(cataloged, ev.ExportCataloged)
    return step, cataloged


async def _archive(store: ObjectStore, settings: Settings, cataloged: ev.ExportCataloged, out: Path) -> bytes:
    await assemble_to_file(store, settings.buckets.exports, cataloged.snapshot_key, out)
    return out.read_bytes()


async def test_a_big_texts_object_goes_up_in_parts_and_is_read_by_range_with_its_etag(
        settings: Settings, store: ObjectStore, content: ContentSource, tmp_path: Path) -> None:
    request = await _big_tenant(content, store, settings)
    recording = Recording(store)
    step, cataloged = await _catalog(settings, recording, content, request)  # type: ignore[arg-type]

    bucket, tkey = settings.buckets.exports, texts_key_beside(cataloged.snapshot_key)  # the run's own
    assert tkey not in recording.puts  # never one PUT of the whole
    sizes = [size for key, _, size in recording.parts if key == tkey]
    assert len(sizes) >= 2 and all(s == settings.min_part_size for s in sizes[:-1]), sizes
    assert await store.list_uploads(bucket, work_prefix(request.tenant_id, request.export_id)) == []
    assert step.marks >= len(sizes)  # a progress mark after each part

    data = await store.read(bucket, cataloged.snapshot_key)
    assert sha256_hex(data) == cataloged.snapshot_sha256
    snapshot = Snapshot.loads(data)
    texts = [m for m in snapshot.members if m.key == tkey]
    assert {m.etag for m in texts} == {(await store.head(bucket, tkey)).etag}
    assert texts[0].etag.endswith(f"-{len(sizes)}")  # the multipart ETag
    assert (cataloged.member_count, cataloged.total_bytes) == (len(snapshot.members), snapshot.total_bytes)
    for m in (texts[0], texts[len(texts) // 2], texts[-1]):
        chunks = [c async for c in store.get(bucket, tkey, start=m.start, end=m.start + m.size, if_match=m.etag)]
        assert len(b"".join(chunks)) == m.size
    assert b"".join([c async for c in store.get(bucket, tkey, start=texts[-1].start, end=texts[-1].start + 1,
                                                 if_match=texts[-1].etag)]) == b"{"  # feed.json, last


async def test_the_archive_is_the_same_whether_the_texts_went_up_whole_or_in_parts(
        settings: Settings, store: ObjectStore, content: ContentSource, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    request = await _big_tenant(content, store, settings)
    _, in_parts = await _catalog(settings, store, content, request)
    _, again = await _catalog(settings, store, content, request)  # a rerun (after a crash) writes the same snapshot,
    assert again.snapshot_key != in_parts.snapshot_key  # under keys of its own run, which it names for its texts
    first, second = [await store.read(settings.buckets.exports, c.snapshot_key) for c in (in_parts, again)]
    assert sha256_hex(second.replace(texts_key_beside(again.snapshot_key).encode(),
                                     texts_key_beside(in_parts.snapshot_key).encode())) == sha256_hex(first)

    whole_settings = settings.model_copy(update={"buckets": settings.buckets.model_copy(
        update={"exports": f"{settings.buckets.exports}-whole"})})
    whole_store = await open_store(whole_settings, create_buckets=True)
    try:
        with monkeypatch.context() as m:
            m.setattr(spool, "IN_MEMORY", 1 << 40)  # the texts object in memory, one PUT
            recording = Recording(whole_store)
            _, whole = await _catalog(whole_settings, recording, content, request)  # type: ignore[arg-type]
        assert recording.parts == [] and texts_key_beside(whole.snapshot_key) in recording.puts
        archive = await _archive(whole_store, whole_settings, whole, tmp_path / "whole.zip")
    finally:
        await whole_store.close()
    assert await _archive(store, settings, in_parts, tmp_path / "parts.zip") == archive
    assert whole.snapshot_sha256 != in_parts.snapshot_sha256  # its texts' ETag (one PUT's) and bucket differ


async def test_a_failed_part_aborts_the_texts_upload_and_the_step_fails_as_on_any_outage(
        settings: Settings, store: ObjectStore, content: ContentSource) -> None:
    request = await _big_tenant(content, store, settings)
    step = Step(request)
    with pytest.raises(StoreUnavailable):
        await Catalog(settings, Recording(store, fail_part=2), content)(step)  # type: ignore[arg-type]
    assert not any(isinstance(e, ev.ExportCataloged) for e in step.appended)
    assert await store.list_uploads(settings.buckets.exports, "exports/") == []
