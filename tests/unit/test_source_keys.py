"""A tenant's content rows may name only that tenant's source objects: a media or file row whose
key is outside the tenant's prefix is never read (a row naming another tenant's key put that
tenant's file in this tenant's archive)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.catalog.service import Catalog
from shared.core.keys import archive_key, is_exports_key, is_tenant_source
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Buckets, Settings


@pytest.mark.parametrize(("key", "ok"), [
    ("t1/media/a.jpg", True), ("t1/", True),
    ("t2/media/a.jpg", False), ("t10/media/a.jpg", False), ("t1", False), ("/t1/media/a.jpg", False),
    ("media/t1/a.jpg", False), ("exports/t1/e/work/snapshot.jsonl", False), ("", False),
])
def test_only_keys_under_the_tenants_prefix_are_its_own(key: str, ok: bool) -> None:
    assert is_tenant_source("{tenant}/", "t1", key) is ok


@pytest.mark.parametrize("key", ["t1/../t2/media/a.jpg", "t1/media/../../t2/a.jpg", "t1/./../t2/a.jpg",
                                 "t1/..", "t1\\..\\t2\\a.jpg", "t1/..\\t2/a.jpg"])
def test_a_key_that_climbs_out_of_the_tenants_prefix_is_not_its_own(key: str) -> None:
    # It starts with `t1/`, but a store or proxy that resolves dot segments (a backslash read as a
    # separator, as import reads it) answers with another tenant's object for it.
    assert not is_tenant_source("{tenant}/", "t1", key)
    assert not is_tenant_source("media/{tenant}/", "t1", "media/" + key)


def test_dots_inside_a_name_are_only_a_name() -> None:
    assert is_tenant_source("{tenant}/", "t1", "t1/media/..a.jpg")
    assert is_tenant_source("{tenant}/", "t1", "t1/media/a..jpg")
    assert is_tenant_source("{tenant}/", "t1", "t1/.../a.jpg")


def test_the_prefix_follows_the_platforms_layout_and_can_be_off() -> None:
    assert is_tenant_source("media/{tenant}/", "t1", "media/t1/a.jpg")
    assert not is_tenant_source("media/{tenant}/", "t1", "media/t2/a.jpg")
    assert is_tenant_source("", "t1", "t2/media/a.jpg")  # no check: keys carry no tenant
    assert is_tenant_source("{tenant}/", "t1", None)  # not text: the store and the renderer refuse it


@pytest.mark.parametrize("bad", ["{tenant}", "media/", "uploads/{tenant}"])
def test_a_prefix_must_name_the_tenant_and_end_with_a_slash(bad: str) -> None:
    with pytest.raises(ValidationError, match="must name \\{tenant\\} and end with /"):
        Settings(source_key_prefix=bad)


async def test_a_shared_bucket_never_gives_a_tenant_the_exports_own_objects(tmp_path: Path) -> None:
    """A deployment may keep media, files and exports in one bucket (the settings allow it). Every
    tenant's archives, snapshots and rendered posts are then at ``exports/{tenant}/…`` among the media,
    and the tenant whose id is ``exports`` — its prefix ``exports/`` — read another tenant's archive
    through a media row naming its key: it was in that tenant's archive. Such a key is outside."""
    one = "grove-shared"
    store = FilesystemStore(tmp_path)
    victim = archive_key("t2", "exp_1", "victim", "2026-01-01")
    await store.put(one, victim, b"t2's whole archive")
    await store.put(one, "exports/own.jpg", b"the tenant's own image")
    settings = Settings(buckets=Buckets(exports=one, images=one, amber=one))
    heads = await Catalog(settings, store, None)._tenant_heads(  # type: ignore[arg-type]
        "exports", [(one, victim), (one, "exports/own.jpg")], lambda: None)
    assert str(heads[(one, victim)]).startswith("outside:")
    assert str(heads[(one, "exports/own.jpg")]).startswith("outside:")
    # in a bucket of its own, the same key is only the tenant's
    apart = await Catalog(Settings(), store, None)._tenant_heads(  # type: ignore[arg-type]
        "exports", [("grove-images", "exports/own.jpg")], lambda: None)
    assert str(apart[("grove-images", "exports/own.jpg")]).startswith("missing:")


@pytest.mark.parametrize(("key", "theirs"), [
    ("exports/t2/e/a.zip", True), ("/exports/t2/e/a.zip", True), ("exports\\t2\\e\\a.zip", True),
    ("exports", False), ("exportsx/a.jpg", False), ("t1/exports/a.jpg", False), (None, False),
    # dot segments, as a store or proxy that resolves them reads the key (the prefix check off: any key)
    ("t1/../exports/t2/e/a.zip", True), ("./exports/t2/e/a.zip", True), ("a/./b/../../exports/t2", True),
    ("t1\\..\\exports\\t2\\e\\a.zip", True), ("t1/../exportsx/a.jpg", False), ("t1/./exports/a.jpg", False)])
def test_the_exports_own_keys_are_read_as_a_lenient_store_reads_them(key: str | None, theirs: bool) -> None:
    assert is_exports_key(key) is theirs
