"""`grove-export import` refuses, before it writes anything, an archive whose object keys the store
cannot hold: on the filesystem store a key over 255 bytes in a segment (or 1,024 in all, once the
target tenant's id is in front of it), or one key where another needs a folder (`x` and `x/y`, which
S3 holds side by side). They were put one by one until the store failed: exit 1, "the object store
failed … (check GROVE_STORE_ROOT)" or a bare "Not a directory: …/.y.<hex>.tmp", blaming the machine
for what the archive holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.archivetools.importer import ImportRefused, import_archive
from shared.content.factory import open_content, sqlite_dsn
from shared.content.restore import content_counts
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import Settings
from tests.integration.archive import test_import_refusals as base
from tests.integration.archive.test_import_refusals import SOURCE, archive, cli, files_in


def _two_images(first: str, second: str) -> Any:
    def edit(index: dict[str, Any]) -> None:
        image = index["media"][0]
        index["media"] = [{**image, "id": "med_1", "path": "media/a.jpg", "object_key": f"{SOURCE}/{first}"},
                          {**image, "id": "med_2", "path": "media/b.jpg", "object_key": f"{SOURCE}/{second}",
                           "filename": "b.jpg", "size": 5}]
    return edit


@pytest.mark.parametrize(("first", "second", "says"), [
    ("x", "x/y", "'tgt/x' is a file, and 'tgt/x/y' would need it to be a folder"),
    ("x/y", "x", "'tgt/x' is a file, and 'tgt/x/y' would need it to be a folder"),
    ("ok.jpg", "a" * 300, "is too long for a file name"),
    # 218 bytes: a file name Linux takes, but not the put's temporary .<name>.<32 hex>.tmp
    ("ok.jpg", "a" * 218, "is too long for a file name here"),
    ("ok.jpg", "/".join(["a" * 200] * 6), "is too long for a file name"),
    # the digest the store caches for tgt/a.jpg is the file tgt/.a.jpg.etag: reading a.jpg wrote it over
    # the restored image's bytes (import said "restored 2 media")
    ("a.jpg", ".a.jpg.etag", "'tgt/.a.jpg.etag' is named as the filesystem store names its own files"),
    (".a.jpg.etag", "a.jpg", "'tgt/.a.jpg.etag' is named as the filesystem store names its own files"),
    ("ok.jpg", "photos/b.etag", "'tgt/photos/b.etag' is named as the filesystem store names its own files"),
    # a folder named as a.jpg's cached digest: the put of a.jpg cannot write its digest there
    ("a.jpg", ".a.jpg.etag/z", "'tgt/.a.jpg.etag/z' is named as the filesystem store names its own files"),
])
def test_keys_the_filesystem_store_cannot_hold_are_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str, second: str, says: str) -> None:
    members = base.members
    monkeypatch.setattr(base, "members", lambda *a, **k: {**members(*a, **k), "media/b.jpg": b"other"})
    path = archive(tmp_path / "a.zip", edit_index=_two_images(first, second))
    assert cli(tmp_path, "verify", str(path)).returncode == 0  # sound as an archive: the store is what cannot
    done = cli(tmp_path, "import", str(path), "--tenant", "tgt")
    assert done.returncode == 2, done.stderr
    line, = done.stderr.strip().splitlines()
    assert line.startswith("grove-export: import refused: ") and says in line and "nothing was written" in line, line
    assert not files_in(tmp_path / "store")
    monkeypatch.undo()
    again = cli(tmp_path, "import", str(base.archive(tmp_path / "ok.zip")), "--tenant", "tgt")
    assert again.returncode == 0, again.stderr  # no row was written either: the tenant is still empty


async def test_a_key_longer_than_s3_takes_is_refused_before_anything_is_put(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_settings: Settings) -> None:
    """S3 refuses a key over 1,024 bytes (KeyTooLongError), after the first image was put: the import
    failed as the store's failure, exit 1. Moto takes such a key, so without the rule the import here
    "succeeds" where S3 would not; with it, nothing is put, on either."""
    members = base.members
    monkeypatch.setattr(base, "members", lambda *a, **k: {**members(*a, **k), "media/b.jpg": b"other"})
    path = archive(tmp_path / "a.zip", edit_index=_two_images("ok.jpg", "b" * 1100))
    store = await S3Store.open(s3_settings.s3)
    content = open_content(sqlite_dsn(tmp_path / "c.db"))
    await content.init()
    try:
        with pytest.raises(ImportRefused, match=r"longer than S3's 1,024 bytes.*nothing was written"):
            await import_archive(path, "tgt", content, store, url_template="https://cdn.example/{key}",
                                 images_bucket=s3_settings.buckets.images, amber_bucket=s3_settings.buckets.amber)
        assert await store.list_keys(s3_settings.buckets.images, "") == []
        assert set((await content_counts(content, "tgt")).values()) == {0}
    finally:
        await store.close()
        await content.close()
