"""The catalog learns every source object's real size and ETag: a folder of many wanted keys (a
tenant's media) from one listing, anything the listing does not show from its own HEAD — with the
same answers a HEAD per key gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.catalog.service import LIST_AT_LEAST, Catalog
from shared.objectstore import StoreRefused, StoreUnavailable
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings


class CountingStore(FilesystemStore):
    """The filesystem store (the zero-setup adapter), counting the calls the catalog makes."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.heads: list[str] = []
        self.listings: list[str] = []

    async def head(self, bucket, key):  # type: ignore[no-untyped-def]
        self.heads.append(key)
        return await super().head(bucket, key)

    async def list_keys(self, bucket, prefix):  # type: ignore[no-untyped-def]
        self.listings.append(prefix)
        return await super().list_keys(bucket, prefix)


async def test_a_folder_of_many_wanted_keys_is_listed_once_and_the_rest_headed(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    many = [f"t1/media/{i:03d}.jpg" for i in range(LIST_AT_LEAST + 3)]
    for i, key in enumerate(many):
        await store.put("img", key, b"x" * i)
    await store.put("img", "t1/media/not-wanted.jpg", b"other")
    await store.put("img", "t1/few/one.jpg", b"one")
    wanted = [("img", k) for k in many] + [("img", "t1/media/gone.jpg"), ("img", "t1/few/one.jpg"),
                                           ("img", "top-level.jpg")]
    heads = await Catalog(Settings(), store, None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]

    assert store.listings == ["t1/media/"]
    assert sorted(store.heads) == ["t1/few/one.jpg", "t1/media/gone.jpg", "top-level.jpg"]
    by_head = {}
    for bucket, key in wanted:
        try:
            info = await FilesystemStore(tmp_path).head(bucket, key)
            by_head[(bucket, key)] = (info.size, info.etag)
        except Exception:
            by_head[(bucket, key)] = "missing: the file is not in storage"
    assert heads == by_head


async def test_a_key_the_store_cannot_hold_is_that_items_error_and_an_outage_still_fails_the_step(
        tmp_path: Path) -> None:
    # On the filesystem store `a//b`, `..` and a trailing `/` raise (InvalidKey): one such media row
    # failed the whole export; it is now that item's reason in errors.json, the others are exported.
    store = FilesystemStore(tmp_path)
    await store.put("img", "t1/media/ok.jpg", b"fine")
    odd = ["t1//media/a.jpg", "t1/media/../../t2/media/b.jpg", "t1/media/c.jpg/", "/t1/d.jpg", "t1\\e.jpg"]
    wanted = [("img", "t1/media/ok.jpg"), *(("img", k) for k in odd)]
    heads = await Catalog(Settings(), store, None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]
    assert heads[("img", "t1/media/ok.jpg")] == (4, (await store.head("img", "t1/media/ok.jpg")).etag)
    for key in odd:
        reason = heads[("img", key)]
        assert isinstance(reason, str) and reason.startswith("unreadable: its storage key cannot name a file"), key

    class Down(FilesystemStore):
        async def head(self, bucket, key):  # type: ignore[no-untyped-def]
            raise StoreUnavailable("the store did not answer")

    with pytest.raises(StoreUnavailable):
        await Catalog(Settings(), Down(tmp_path), None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]

    class Refusing(FilesystemStore):
        async def head(self, bucket, key):  # type: ignore[no-untyped-def]
            raise StoreRefused("the storage service denied access")

    with pytest.raises(StoreRefused):
        await Catalog(Settings(), Refusing(tmp_path), None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]


async def test_a_key_with_a_nul_or_a_name_too_long_for_the_file_system_is_that_items_error(tmp_path: Path) -> None:
    # SQLite keeps a NUL in text, and a key may carry an uploaded file's long name: on the filesystem
    # store os.stat raised ValueError ("embedded null byte") or OSError (ENAMETOOLONG), neither a
    # StoreError, so one such media row failed the tenant's every export ("An internal error occurred").
    store = FilesystemStore(tmp_path)
    await store.put("img", "t1/media/ok.jpg", b"fine")
    long_folder = [f"t1/{'f' * 300}/{i}.jpg" for i in range(LIST_AT_LEAST)]  # read by listing the folder
    odd = ["t1/media/a\x00b.jpg", "t1/media/" + "é" * 150 + ".jpg", "t1/" + "/".join(["d" * 200] * 25) + "/a.jpg",
           *long_folder]
    wanted = [("img", "t1/media/ok.jpg"), *(("img", k) for k in odd)]
    heads = await Catalog(Settings(), store, None)._head_all(wanted, lambda: None)  # type: ignore[arg-type]
    assert heads[("img", "t1/media/ok.jpg")] == (4, (await store.head("img", "t1/media/ok.jpg")).etag)
    for key in odd:
        reason = heads[("img", key)]
        assert isinstance(reason, str) and reason.startswith("unreadable: its storage key cannot name a file"), key[:20]
