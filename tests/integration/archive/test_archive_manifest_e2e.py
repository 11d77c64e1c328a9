"""Issue 8: manifest.json and README.md of real archives (blog and storage mode) tell the truth.

manifest.json: export id, tenant, mode, created time, generator version, and for every member its
path, size, SHA-256, content type and source id — each checked here against the archive's actual
bytes and against the content database. README.md: the counts, the layout, how to verify (its own
verification one-liner is run on the extracted archive; the archive checksum it points to is in
the export-ready email) and errors.json.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from services.devtools.stack.supervisor import Stack
from shared import __version__
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.archive.archive_e2e_support import Exported, cli_extract, export_through_stack, run_async
from tests.support.env import settings_for
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

TEXT = "text/markdown; charset=utf-8"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[tuple[dict, Stack]]:
    tmp = tmp_path_factory.mktemp("manifest")
    values = settings_for(tmp, nats_server.url)
    running = start_stack(tmp / "stack", values)
    yield values, running
    running.stop()


def _run(stack: tuple[dict, Stack], out: Path, mode: str) -> Exported:
    async def prepare(content: ContentSource, store: ObjectStore, settings: Settings) -> tuple[str, dict]:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=4, pages=2, images=3, files=5,
                                   seed=21)
        rows: dict[str, dict[str, Any]] = {}
        for kind, it in (("post", content.posts), ("page", content.pages), ("media", content.media),
                         ("file", content.amber_files)):
            rows.update({r["id"]: {**r, "kind": kind} async for r in it(seeded.tenant_id)})
        return seeded.tenant_id, {"rows": rows, "seeded": seeded}

    try:
        return export_through_stack(stack[0], out, prepare, mode=mode)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{logs_of(stack[1])}") from None


@pytest.fixture(scope="module")
def blog(stack: tuple[dict, Stack], tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _run(stack, tmp_path_factory.mktemp("blog") / "blog.zip", "blog")


@pytest.fixture(scope="module")
def storage(stack: tuple[dict, Stack], tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _run(stack, tmp_path_factory.mktemp("storage") / "storage.zip", "storage")


@pytest.fixture(params=["blog", "storage"])
def exported(request: pytest.FixtureRequest) -> Exported:
    return request.getfixturevalue(request.param)


def _source_bytes(e: Exported, row: dict[str, Any]) -> bytes:
    bucket = e.settings.buckets.images if row["kind"] == "media" else e.settings.buckets.amber
    return (Path(e.settings.store_root) / bucket / row["r2_key"]).read_bytes()


def test_manifest_header_names_the_export(exported: Exported) -> None:
    m = exported.manifest()
    req = exported.state.request
    assert req is not None and exported.state.completed is not None
    assert m["export_id"] == exported.export_id
    assert m["tenant_id"] == exported.tenant_id
    assert m["mode"] == req.mode
    assert m["username"] == req.username
    assert m["created_at"] == req.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert m["created_at"].endswith("Z")
    assert m["generator"] == f"grove-export {__version__}"
    assert m["format_version"] == 1
    assert m["item_counts"] == exported.state.completed.item_counts


def test_manifest_members_match_the_actual_bytes_and_the_database(exported: Exported) -> None:
    m = exported.manifest()
    rows = exported.info["rows"]
    with zipfile.ZipFile(exported.path) as zf:
        names = zf.namelist()
        assert names[-2:] == ["manifest.json", "errors.json"]
        assert [x["path"] for x in m["members"]] == names[:-2], "manifest lists exactly the other members, in order"
        seen: set[str] = set()
        for member in m["members"]:
            data = zf.read(member["path"])
            assert member["size"] == len(data) == zf.getinfo(member["path"]).file_size, member["path"]
            assert member["sha256"] == hashlib.sha256(data).hexdigest(), member["path"]
            sid = member["source_id"]
            assert sid not in seen
            seen.add(sid)
            if member["path"] == "README.md":
                assert (sid, member["content_type"]) == ("readme", TEXT)
                continue
            if member["path"] in ("index.json", "feed.json"):  # issue 17: the structured side
                assert (sid, member["content_type"]) == (member["path"][:-5], "application/json")
                continue
            row = rows[sid]
            if row["kind"] in ("post", "page"):
                assert member["path"].startswith(f"{row['kind']}s/") and member["content_type"] == TEXT
                assert data.decode().endswith(row["markdown_content"])
            else:
                assert member["content_type"] == row["mime_type"]
                assert data == _source_bytes(exported, row), f"{member['path']} is not the stored object"
        assert json.loads(zf.read("errors.json")) == []
    mode = m["mode"]
    kinds = {"post", "page", "media"} if mode == "blog" else {"file"}
    assert seen - {"readme", "index", "feed"} == {rid for rid, r in rows.items() if r["kind"] in kinds}, "every row exactly once"


def test_the_archive_checksum_and_size_are_the_ones_recorded(exported: Exported) -> None:
    c = exported.state.completed
    assert c is not None
    assert exported.path.stat().st_size == c.size_bytes
    assert hashlib.sha256(exported.path.read_bytes()).hexdigest() == c.sha256


def _readme(e: Exported) -> str:
    with zipfile.ZipFile(e.path) as zf:
        return zf.read("README.md").decode("utf-8")


def test_readme_states_counts_layout_verification_and_errors(exported: Exported) -> None:
    text = _readme(exported)
    counts = exported.state.completed.item_counts  # type: ignore[union-attr]
    assert exported.export_id in text and exported.tenant_id in text
    for kind, n in counts.items():
        assert f"{n} {kind}" in text, (kind, n)
    if exported.manifest()["mode"] == "blog":
        layout = ["posts/{slug}.md", "pages/{slug}.md", "media/{filename}"]
    else:
        layout = ["files/{category}/{filename}"]
    for entry in [*layout, "README.md", "manifest.json", "errors.json"]:
        assert entry in text, entry
    assert "SHA-256" in text and "sha256sum" in text
    assert re.search(r"errors\.json.*(could NOT|could not)", text, re.S)


def test_the_readme_verification_command_verifies_the_extracted_archive(exported: Exported, tmp_path: Path) -> None:
    """Follow the README literally: unzip, run its one-liner, every file prints OK."""
    command = re.search(r"`(python3 -c \".*?\")`", _readme(exported))
    assert command, "README has no verification one-liner"
    cli_extract("unzip", exported.path, tmp_path / "x")
    out = subprocess.run(command.group(1), shell=True, cwd=tmp_path / "x", capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(exported.manifest()["members"])
    assert all(line.startswith("OK ") for line in lines), lines
    (tmp_path / "x" / "README.md").write_text("tampered\n")  # and it does catch a damaged file
    out = subprocess.run(command.group(1), shell=True, cwd=tmp_path / "x", capture_output=True, text=True,
                         timeout=60, check=False)
    assert "BAD README.md" in out.stdout


def test_the_checksum_the_readme_points_to_is_in_the_export_ready_email(blog: Exported) -> None:
    assert "export ready" in _readme(blog).lower()
    outbox = Path(blog.settings.mail.outbox_dir)

    async def mail() -> list[Path]:
        return list(outbox.glob(f"{blog.export_id}*.eml"))

    found = run_async(lambda: until(mail, 30, 0.2, "the export-ready email"))
    message = email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
    bodies = [part.get_content() for part in message.walk() if part.get_content_type().startswith("text/")]
    assert any(blog.state.completed.sha256 in body for body in bodies)  # type: ignore[union-attr]


def test_odd_column_values_and_odd_object_keys_never_fail_the_export(stack: tuple[dict, Stack], tmp_path: Path) -> None:
    # One odd column failed the whole export (4 attempts, then "An internal error occurred"): tags
    # nested 2000 deep, a time in milliseconds, text that is no time, and on the filesystem store a
    # media key with `//`, `..` or a trailing `/`. Now the export completes: an odd value is shown
    # as null or [] and kept as stored under `unreadable`; a file whose key names none is in errors.json.
    deep, ms = "[" * 2000 + "]" * 2000, 1_700_000_000_000_000
    odd_keys = {"m_slashes": "{t}//media/a.jpg", "m_folder": "{t}/media/c.jpg/", "m_nul": "{t}/media/d\x00.jpg",
                "m_long": "{t}/media/" + "é" * 150 + ".jpg"}
    climbing = {"m_dots": "{t}/media/../../other/media/b.jpg"}  # starts with the tenant's prefix, leaves it

    async def prepare(content: ContentSource, store: ObjectStore, settings: Settings) -> tuple[str, dict]:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=2, pages=1, images=2, files=0, seed=4)
        t = seeded.tenant_id
        base = {"tenant_id": t, "description": None, "markdown_content": "hi\n", "status": "published",
                "featured_image": None, "created_at": 100, "updated_at": None}
        await content.insert("posts", [
            base | {"id": f"deep_{t}", "slug": "deep", "title": "Deep", "tags": deep, "published_at": 100},
            base | {"id": f"ms_{t}", "slug": "ms", "title": "Ms", "tags": '{"a": 1}', "published_at": ms}])
        await content.insert("pages", [{"id": f"badtime_{t}", "tenant_id": t, "slug": "bad", "title": "Bad",
                                        "description": None, "markdown_content": "x\n", "type": None,
                                        "display_order": 5, "created_at": "not a time", "updated_at": None}])
        await content.insert("media", [
            {"id": f"{mid}_{t}", "tenant_id": t, "filename": f"{mid}.jpg", "original_name": None,
             "r2_key": key.format(t=t), "url": None, "size": 1, "mime_type": "image/jpeg", "alt_text": None,
             "uploaded_at": 100} for mid, key in (odd_keys | climbing).items()])
        await content.insert("posts", [base | {"id": None, "slug": "no-id", "title": "No id", "tags": None,
                                               "published_at": 100}])  # SQLite's TEXT PRIMARY KEY holds NULL
        return t, {}

    try:
        e = export_through_stack(stack[0], tmp_path / "odd.zip", prepare)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{logs_of(stack[1])}") from None
    t = e.tenant_id
    with zipfile.ZipFile(e.path) as zf:
        index = json.loads(zf.read("index.json"))
        errors = json.loads(zf.read("errors.json"))
        readme = zf.read("README.md").decode()
        posts = {p["id"]: p for p in index["posts"]}
        assert posts[f"deep_{t}"]["tags"] == [] and posts[f"deep_{t}"]["unreadable"] == {"tags": deep}
        assert posts[f"ms_{t}"]["published_at"] is None and posts[f"ms_{t}"]["date"] == "1970-01-01T00:01:40Z"
        assert posts[f"ms_{t}"]["unreadable"] == {"tags": '{"a": 1}', "published_at": ms}
        assert "{'a': 1}" not in zf.read(posts[f"ms_{t}"]["path"]).decode()
        page = index["pages"][-1]
        assert page["created_at"] is None and page["unreadable"] == {"created_at": "not a time"}
    skipped = {x["source_id"]: x["reason"] for x in errors}
    assert set(skipped) == {f"{mid}_{t}" for mid in odd_keys | climbing}, errors
    assert all(skipped[f"{mid}_{t}"].startswith("unreadable: its storage key cannot name a file") for mid in odd_keys)
    assert skipped[f"m_dots_{t}"].startswith("outside: its storage key is not under this tenant's")
    assert "5 items could not be included (see errors.json)" in readme
    assert len(index["media"]) == 7 and sum(m["in_archive"] for m in index["media"]) == 2
    assert [p["path"] for p in index["posts"] if p["id"] is None] == ["posts/no-id.md"]


@pytest.mark.parametrize("mode", ["blog", "storage"])
def test_a_content_row_naming_another_tenants_object_does_not_put_it_in_this_archive(
        stack: tuple[dict, Stack], tmp_path: Path, mode: str) -> None:
    # Seen: tenant A's media row (or Amber file row) with r2_key = one of tenant B's keys, and A's
    # export held B's private file byte for byte. Now the row is in errors.json and B's object is never read.
    secret = b"B's private bytes " + mode.encode() * 1000

    async def prepare(content: ContentSource, store: ObjectStore, settings: Settings) -> tuple[str, dict]:
        a = (await seed_tenant(content, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                               posts=1, pages=0, images=1, files=1, seed=21)).tenant_id
        b = (await seed_tenant(content, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                               posts=1, pages=0, images=0, files=0, seed=22)).tenant_id
        if mode == "blog":
            bucket, key = settings.buckets.images, f"{b}/media/private.jpg"
            await content.insert("media", [{"id": f"stolen_{a}", "tenant_id": a, "filename": "stolen.jpg",
                                            "original_name": None, "r2_key": key, "url": None, "size": len(secret),
                                            "mime_type": "image/jpeg", "alt_text": None, "uploaded_at": 100}])
        else:
            bucket, key = settings.buckets.amber, f"{b}/files/private.bin"
            await content.insert("amber_files", [{"id": f"stolen_{a}", "tenant_id": a, "filename": "stolen.bin",
                                                  "original_name": None, "r2_key": key, "size": len(secret),
                                                  "mime_type": "application/octet-stream", "category": "documents",
                                                  "product": None, "uploaded_at": 100}])
        await store.put(bucket, key, secret, "application/octet-stream")
        return a, {}

    try:
        e = export_through_stack(stack[0], tmp_path / f"{mode}.zip", prepare, mode=mode)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{logs_of(stack[1])}") from None
    with zipfile.ZipFile(e.path) as zf:
        assert not any(zf.read(n) == secret for n in zf.namelist())
        assert all(secret[:20] not in zf.read(n) for n in zf.namelist())
        errors = {x["source_id"]: x["reason"] for x in json.loads(zf.read("errors.json"))}
    assert errors[f"stolen_{e.tenant_id}"].startswith("outside: its storage key is not under this tenant's"), errors
