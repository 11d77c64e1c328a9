"""Import puts every object under the target tenant's keys, and refuses an archive whose index
names a key a normalising store or proxy would move elsewhere — before anything is written."""

from __future__ import annotations

import pytest

from services.archivetools.importer import ImportRefused, Rekey

REKEY = Rekey("tenant_a", "tenant_b")


@pytest.mark.parametrize(("old", "new"), [
    ("tenant_a/media/1a2b-photo.jpg", "tenant_b/media/1a2b-photo.jpg"),
    ("elsewhere/x.png", "tenant_b/imported/elsewhere/x.png"),
    ("tenant_a/media/..hidden..jpg", "tenant_b/media/..hidden..jpg"),  # dots inside a name are a name
    ("tenant_a/media/a\\b.jpg", "tenant_b/media/a\\b.jpg"),  # so is a backslash between names
])
def test_keys_move_under_the_target_tenant(old: str, new: str) -> None:
    assert REKEY.key(old) == new


@pytest.mark.parametrize("old", [
    "tenant_a/../tenant_c/media/x.jpg", "../tenant_c/x.jpg", "tenant_a/media/..", "tenant_a/./x.jpg",
    "tenant_a//x.jpg", "tenant_a/", "/tenant_c/x.jpg", "tenant_a/media/x/../../../tenant_c/y", "tenant_a/a\x00b",
    "tenant_a/..\\tenant_c\\x.jpg", "tenant_a/media\\..\\..\\tenant_c\\y", "tenant_a/media\\.\\x", "tenant_a/x\\",
    "tenant_a/media/\ud83c.jpg",  # JSON spells a lone surrogate; no store or URL holds one (it was a traceback)
])
def test_a_key_with_an_empty_dot_or_dot_dot_segment_is_refused(old: str) -> None:
    with pytest.raises(ImportRefused, match="unsafe object key"):
        REKEY.key(old)


def test_an_id_grows_by_one_tenant_id_at_most_whatever_the_archive_names_its_tenant() -> None:
    """The archive chooses its tenant id: one letter would be in every id, and replacing each
    occurrence turned a 64 MiB index of such ids into gigabytes (and mangled the ids)."""
    rekey = Rekey("a", "tenant_with_a_long_name")
    old = "a" * 100_000
    new = rekey.id(old)
    assert len(new) <= len(old) - 1 + len("tenant_with_a_long_name")
    assert REKEY.id("med_1_tenant_a") == "med_1_tenant_b"  # the usual id keeps its shape


def test_ids_without_the_tenant_id_keep_their_order() -> None:
    """The content source breaks ties (posts of one second, pages of one order) by id, and the
    archive's names follow that order: two posts with one slug are `same.md` and `same-2.md` by id.
    A platform's ids that do not carry the tenant id (UUIDs) became digests in a random order, so
    the restored tenant's export gave `same.md` to another post than the original's did."""
    old = ["0b-uuid", "7f-uuid", "a1-uuid", "a1-uuid2", "ff", "Z", "\u00e9t\u00e9"]
    assert sorted(REKEY.id(i) for i in old) == [REKEY.id(i) for i in sorted(old)]
    assert sorted(REKEY.id(i).encode() for i in old) == [REKEY.id(i).encode() for i in sorted(old)]  # bytewise too
    assert len({REKEY.id(i) for i in old}) == len(old)
    assert Rekey("tenant_a", "tenant_c").id("7f-uuid") != REKEY.id("7f-uuid")  # unique across targets
