"""`grove-export import` never replaces or deletes a file it did not put. The tenant's rows are empty,
but its folder in the store need not be: seen (filesystem store and S3), a file the operator kept at
`tenant_dst/media/a.jpg` was deleted by the undo of an import the database then refused (it put the
archive's image over it, then deleted the key), and replaced by an import that succeeded."""

from __future__ import annotations

import gc
import hashlib
import os
import time
import zipfile
from pathlib import Path

import pytest

from services.archivetools.importer import ImportRefused, Rekey, Restore, _keep_what_is_there, import_archive
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentError, ContentSource
from shared.content.restore import content_counts
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings
from tests.integration.archive.test_import_refusals import IMAGE, SOURCE, archive, cli

KEY = "tenant_dst/media/a.jpg"  # where the archive's image goes


async def _import(path: Path, content: ContentSource, store: ObjectStore, settings: Settings) -> str:
    plan = await import_archive(path, "tenant_dst", content, store, url_template="https://cdn.example/{key}",
                                images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber)
    return plan.summary()


async def _another_tenant_holds_a_post_id(content: ContentSource) -> None:
    """A write the database refuses after the files were put (until it is checked before)."""
    await content.insert("tenants", [{"id": "other", "username": "o", "display_name": None, "email": None,
                                      "created_at": 1}])
    await content.insert("posts", [{"id": Rekey(SOURCE, "tenant_dst").id(f"post_2_{SOURCE}"), "tenant_id": "other",
                                    "slug": "s", "title": "t", "created_at": 1}])


@pytest.mark.parametrize("database_refuses", [False, True])
async def test_a_file_already_at_a_key_with_other_bytes_is_refused_and_kept_on_either_store(
        either_store_settings: Settings, tmp_path: Path, database_refuses: bool) -> None:
    settings, images = either_store_settings, either_store_settings.buckets.images
    store = await open_store(settings, create_buckets=True)
    content = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    try:
        await content.init()
        if database_refuses:
            await _another_tenant_holds_a_post_id(content)
        await store.put(images, KEY, b"the operator's own file", "image/jpeg")
        with pytest.raises(ImportRefused) as refused:
            await _import(archive(tmp_path / "a.zip"), content, store, settings)
        assert str(refused.value) == (
            f"the store already holds a file at {KEY!r} in bucket {images!r}, with other bytes than the archive's: "
            "import never replaces a file it did not put; move it away or import into another tenant; nothing "
            "was written")
        assert await store.read(images, KEY) == b"the operator's own file"
        assert [o.key for o in await store.list_keys(images, "tenant_dst/")] == [KEY]
        assert await content.tenant("tenant_dst") is None
        assert set((await content_counts(content, "tenant_dst")).values()) == {0}
    finally:
        await content.close()
        await store.close()


async def test_a_file_already_at_a_key_with_the_archives_bytes_is_kept_and_never_deleted_on_either_store(
        either_store_settings: Settings, tmp_path: Path) -> None:
    """The same bytes (a killed import's file, run again): not put again, and not the undo's to delete
    when the database refuses the rows; an import that succeeds restores the tenant around it."""
    settings, images = either_store_settings, either_store_settings.buckets.images
    store = await open_store(settings, create_buckets=True)
    content = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    try:
        await content.init()
        await store.put(images, KEY, IMAGE, "image/jpeg")
        await _another_tenant_holds_a_post_id(content)
        with pytest.raises((ImportRefused, ContentError)):
            await _import(archive(tmp_path / "a.zip"), content, store, settings)
        assert await store.read(images, KEY) == IMAGE, "the undo deleted a file the import did not put"

        fresh = open_content(sqlite_dsn(tmp_path / "fresh.db"), pool_max=2)
        try:
            await fresh.init()
            summary = await _import(archive(tmp_path / "a.zip"), fresh, store, settings)
        finally:
            await fresh.close()
        assert summary == "restored 1 media, 2 posts, 1 pages; 0 files put in the store (1 already there with " \
                          "the archive's bytes, kept as they were)"
        assert await store.read(images, KEY) == IMAGE
    finally:
        await content.close()
        await store.close()


@pytest.mark.parametrize(("held", "says"), [
    ("tenant_dst/media", "'tenant_dst/media' is a file, and 'tenant_dst/media/a.jpg' would need it to be a folder"),
    ("tenant_dst/media/a.jpg/old.jpg", "'tenant_dst/media/a.jpg' is a file, and 'tenant_dst/media/a.jpg/old.jpg' "
                                       "would need it to be a folder"),
])
async def test_a_file_where_the_archive_needs_a_folder_or_one_in_a_folder_it_puts_a_file_at_is_refused_on_fs(
        either_store_settings: Settings, tmp_path: Path, held: str, says: str) -> None:
    """Seen (filesystem store): the operator's file at `tenant_dst/media`, or one in a folder
    `tenant_dst/media/a.jpg/`, and the archive's `tenant_dst/media/a.jpg`: the put failed as the machine's
    error ("Not a directory: …/.a.jpg.<hex>.tmp", "Is a directory: …", exit 1). Refused before anything
    is put now, naming the keys; S3 holds both side by side and the import goes on."""
    settings, images = either_store_settings, either_store_settings.buckets.images
    store = await open_store(settings, create_buckets=True)
    content = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    try:
        await content.init()
        await store.put(images, held, b"the operator's own file", "image/jpeg")
        if settings.store != "fs":
            assert await _import(archive(tmp_path / "a.zip"), content, store, settings) == \
                "restored 1 media, 2 posts, 1 pages; 1 files put in the store"
            return
        with pytest.raises(ImportRefused) as refused:
            await _import(archive(tmp_path / "a.zip"), content, store, settings)
        assert str(refused.value) == (
            f"the store cannot hold the files this archive names beside those it holds already: {says} (the "
            "filesystem store keeps each key as a file); import never replaces a file it did not put: move it away "
            "or import into another tenant; nothing was written"), str(refused.value)
        assert [o.key for o in await store.list_keys(images, "tenant_dst/")] == [held]
        assert await store.read(images, held) == b"the operator's own file"
        assert set((await content_counts(content, "tenant_dst")).values()) == {0}
    finally:
        await content.close()
        await store.close()


def test_the_cli_refuses_a_file_already_there_in_one_line_exit_2(tmp_path: Path) -> None:
    held = tmp_path / "store" / "grove-images" / "tenant_dst" / "media" / "a.jpg"
    held.parent.mkdir(parents=True)
    held.write_bytes(b"mine")
    done = cli(tmp_path, "import", str(archive(tmp_path / "a.zip")), "--tenant", "tenant_dst")
    assert done.returncode == 2, done.stderr
    line, = done.stderr.strip().splitlines()
    assert line.startswith("grove-export: import refused: the store already holds a file at 'tenant_dst/media/a.jpg'")
    assert held.read_bytes() == b"mine"
    # besides a.jpg, at most the store's cache of its digest, written when the check read it (fs._read_etag
    # caches only once the file is a second old: present on a slow machine, not on a fast one)
    files = sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert files in (["a.jpg"], [".a.jpg.etag", "a.jpg"]), files


async def test_a_store_holding_many_of_the_files_already_is_checked_in_time_linear_in_their_number(
        tmp_path: Path) -> None:
    """Seen: an import run again after one killed outright, its 40,000 images already in the store with
    the archive's bytes, took 42 s where the first run took 15 s (20,000: 13 s): each file kept was then
    looked for in the list of those kept, once per file of the plan, the work growing with the square
    of the files. Here the check alone, on 5,000 and on 40,000 files the store holds, on this machine:
    eight times the files must take under 15 times as long, in this process's CPU time (2026-12-06: the
    set 7.8× and 9.7×, the list put back 20.3×; the set's own growth is a little over linear). An
    absolute bound (once "under 12 s", 5 s where it was written) failed on a machine that took
    11.6–17.7 s for the very same work; wall time, with another pytest worker busy beside it, 15.8×."""

    async def check(n: int) -> float:
        store = FilesystemStore(tmp_path / f"store-{n}")
        folder = store.root / "images" / "tenant_dst" / "media"
        folder.mkdir(parents=True)
        path = tmp_path / f"a-{n}.zip"
        # 1,000 files a folder, whatever n: the folder's size is not what is measured
        names = [f"{i // 1000}/{i}.jpg" for i in range(n)]
        # Every file's time an hour ahead, in both runs: the store caches a file's digest beside it once
        # the file is a second old, so 5,000 files just written were checked without writing that cache
        # and most of 40,000 (written over several seconds) with it — 14.9–18.9× the time for 8× the
        # files with the set, on a quiet machine, from those writes alone. With no cache written in
        # either, the work per file is the same and what grows is the lookups this test is about.
        young_ns = time.time_ns() + 3600 * 10**9
        with zipfile.ZipFile(path, "w") as zf:
            for name in names:
                zf.writestr(f"media/{name}", b"x")
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_bytes(b"x")
                os.utime(folder / name, ns=(young_ns, young_ns))  # see above
        plan = Restore(objects=[("images", f"tenant_dst/media/{name}", f"media/{name}", "image/jpeg")
                                for name in names])
        digest = hashlib.sha256(b"x").hexdigest()
        with zipfile.ZipFile(path) as zf:
            gc.collect()
            gc.disable()  # the collector's passes grow with everything alive: superlinear in n on their own
            try:
                started = time.process_time()  # this process's CPU (its threads' too): not the other workers' load
                await _keep_what_is_there(store, "tenant_dst", plan, zf, {f"media/{name}": digest for name in names})
                took = time.process_time() - started
            finally:
                gc.enable()
        assert (plan.objects, plan.kept) == ([], n)
        return took

    small, large = await check(5_000), await check(40_000)
    assert large < 15 * small, \
        f"checking 5,000 held files took {small:.1f} CPU-s, 40,000 took {large:.1f} ({large / small:.1f}×)"
