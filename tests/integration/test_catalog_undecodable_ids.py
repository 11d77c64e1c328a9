"""Two rows of one table whose ids SQLite tells apart and the export does not: SQLite's primary key
compares bytes and types, the export reads text (bytes that are not UTF-8 as U+FFFD, a BLOB as the
TEXT of its bytes). Both rows are exported, the later one with a null id (as SQLite's NULL ids are),
and the archive verifies: index.json gave both rows one id, and verify called the archive damaged
("index.json: posts[3].id '\ufffd' appears twice in posts")."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import pytest

from services.archivetools.reference import assemble_to_file
from services.archivetools.verify import verify_archive
from services.catalog.service import Catalog
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.test_catalog_texts import Step

pytestmark = pytest.mark.timeout(60)

T = 1_700_000_000


def _insert(db: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    db.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


async def _export(settings: Settings, store: ObjectStore, content: ContentSource, tenant: str, mode: str,
                  out: Path) -> dict[str, Any]:
    request = ev.ExportRequested(export_id="exp_ids", tenant_id=tenant, user_id="u1", user_email="a@example.org",
                                 username="autumn", mode=mode)
    step = Step(request)
    await Catalog(settings, store, content)(step)  # type: ignore[arg-type]
    cataloged = step.appended[-1]
    assert isinstance(cataloged, ev.ExportCataloged)
    await assemble_to_file(store, settings.buckets.exports, cataloged.snapshot_key, out)
    report = verify_archive(out)
    assert report.ok, report.text()
    with zipfile.ZipFile(out) as zf:
        index: dict[str, Any] = json.loads(zf.read("index.json"))
        return index


async def test_rows_whose_ids_read_as_one_are_exported_and_the_archive_verifies(
        settings: Settings, store: ObjectStore, content: ContentSource, tmp_path: Path) -> None:
    seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                               amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0, files=0)
    tenant = seeded.tenant_id
    for name in ("a.jpg", "b.jpg", "c.txt", "d.txt"):
        bucket = settings.buckets.amber if name.endswith(".txt") else settings.buckets.images
        await store.put(bucket, f"{tenant}/{name}", b"bytes")
    db = sqlite3.connect(str(content.path))  # type: ignore[attr-defined]
    for n, row_id in enumerate((b"\xff", b"\xfe", "dup", b"dup")):  # two not UTF-8; a TEXT and a BLOB of its bytes
        _insert(db, "posts", {"id": row_id, "tenant_id": tenant, "slug": f"p{n}", "title": "T", "status": "published",
                              "markdown_content": "b", "created_at": T - n})
        _insert(db, "pages", {"id": row_id, "tenant_id": tenant, "slug": f"g{n}", "title": "T", "markdown_content": "b",
                              "display_order": n, "created_at": T})
    for n, row_id in enumerate((b"\xff", b"\xfe")):
        _insert(db, "media", {"id": row_id, "tenant_id": tenant, "filename": f"m{n}.jpg",
                              "r2_key": f"{tenant}/{'ab'[n]}.jpg", "uploaded_at": T - n})
        _insert(db, "amber_files", {"id": row_id, "tenant_id": tenant, "filename": f"f{n}.txt",
                                    "r2_key": f"{tenant}/{'cd'[n]}.txt", "uploaded_at": T - n})
    db.commit()
    db.close()

    blog = await _export(settings, store, content, tenant, "blog", tmp_path / "blog.zip")
    assert [p["id"] for p in blog["posts"] if p["slug"].startswith("p")] == ["\ufffd", None, "dup", None]
    assert [p["id"] for p in blog["pages"]] == ["\ufffd", None, "dup", None]
    assert [(m["id"], m["in_archive"]) for m in blog["media"]] == [("\ufffd", True), (None, True)]
    storage = await _export(settings, store, content, tenant, "storage", tmp_path / "storage.zip")
    assert [(f["id"], f["in_archive"]) for f in storage["files"]] == [("\ufffd", True), (None, True)]
