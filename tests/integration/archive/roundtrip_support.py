"""Round trip support: tenants with hard content, export → import → export on the real stack, and a
comparison of two archives and two tenants' rows that counts what it compared.

Two archives of the same content may differ only in ids of the tenant and the export and in the
export's timestamps. Row ids and object keys that carry the tenant id carry the other tenant's id
instead, so "equal" here means equal once tenant A's id is read as tenant B's — and nothing else is
normalised: every other byte of every member and every column of every row must match.
"""

from __future__ import annotations

import json
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.content.port import ContentSource
from shared.content.seed import make_image, seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings

VARYING_JSON = ("manifest.json",)  # carries export id, tenant id and created_at
MEDIA_URL = re.compile(r"(https://cdn\.example/[^\s)\"'<>?#]+)")
TABLES = ("posts", "pages", "media", "amber_files")


@dataclass
class Compared:
    members: int = 0
    member_bytes: int = 0
    rows: int = 0
    fields: int = 0
    differences: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.members} members ({self.member_bytes} bytes) and {self.rows} rows ({self.fields} fields) "
                f"compared, {len(self.differences)} differences")


def compare_archives(a: Path, b: Path, ids_a: tuple[str, str], ids_b: tuple[str, str], out: Compared) -> None:
    """Media and files byte for byte; text members byte for byte once A's tenant id reads as B's (object
    keys in front matter and index.json carry it); README.md and manifest.json with only the export id,
    tenant id and time allowed to differ (and the checksums of text members, compared by content)."""
    (tenant_a, export_a), (tenant_b, export_b) = ids_a, ids_b
    with zipfile.ZipFile(a) as za, zipfile.ZipFile(b) as zb:
        names_a = [_swap(n, tenant_a, tenant_b) for n in za.namelist()]  # names from ids carry the tenant
        if names_a != zb.namelist():
            out.differences.append(f"member lists differ: {set(names_a) ^ set(zb.namelist())}")
            return
        for name_a, name in zip(za.namelist(), names_a, strict=True):
            da, db = za.read(name_a), zb.read(name)
            out.members += 1
            out.member_bytes += len(da)
            if name == "manifest.json":
                ma, mb = json.loads(da), json.loads(db)
                for m in (ma, mb):
                    for key in ("export_id", "tenant_id", "created_at"):
                        m.pop(key)
                    for member in m["members"]:  # text members may name the tenant (README, original
                        if member["path"].endswith((".md", ".json")):  # keys): compared by content above
                            member.pop("sha256"), member.pop("size")
                ja = json.loads(_swap(json.dumps(ma), tenant_a, tenant_b))
                for x, y in zip(ja["members"], mb["members"], strict=False):
                    if x != y:
                        out.differences.append(f"manifest.json member {x} != {y}")
                for key in sorted(set(ja) | set(mb)):
                    if key != "members" and ja.get(key) != mb.get(key):
                        out.differences.append(f"manifest.json {key}: {str(ja.get(key))[:300]} != {str(mb.get(key))[:300]}")
            elif name == "README.md":
                la = [ln for ln in da.decode().splitlines() if not _varies(ln, tenant_a, export_a)]
                lb = [ln for ln in db.decode().splitlines() if not _varies(ln, tenant_b, export_b)]
                if la != lb:
                    out.differences.append("README.md differs beyond export id, tenant id and time")
            elif name.endswith(".md") or name == "feed.json":
                _texts_equal(name, da.decode(), db.decode(), tenant_a, tenant_b, out)
            elif name.endswith(".json"):
                xa = _swap(da.decode(), tenant_a, tenant_b).encode()
                if xa != db:
                    at = next(i for i in range(min(len(xa), len(db)) + 1) if xa[i:i + 1] != db[i:i + 1])
                    out.differences.append(f"{name} differs at byte {at}: {xa[at - 40:at + 60]!r} != {db[at - 40:at + 60]!r}")
            elif da != db:
                out.differences.append(f"{name} differs")


def _texts_equal(name: str, a: str, b: str, tenant_a: str, tenant_b: str, out: Compared) -> None:
    """Front matter (and feed fields) may name the tenant in ids and keys; bodies must be identical
    bytes — a URL inside code stays the one the person wrote, whichever tenant holds it now."""
    if name == "feed.json":
        fa, fb = json.loads(a), json.loads(b)
        bodies_a = [item.pop("content_text") for item in fa["items"]]
        bodies_b = [item.pop("content_text") for item in fb["items"]]
        same = bodies_a == bodies_b and json.loads(_swap(json.dumps(fa), tenant_a, tenant_b)) == fb
    else:
        head_a, _, body_a = a.partition("\n---\n")
        head_b, _, body_b = b.partition("\n---\n")
        same = body_a == body_b and _swap(head_a, tenant_a, tenant_b) == head_b
    if not same:
        out.differences.append(f"{name} differs")


def same_body(a: str, b: str, tenant_a: str, tenant_b: str) -> bool:
    """B's body is A's, but a media URL of A's may read as B's (a link import restored to B's media)."""
    pieces_a, pieces_b = MEDIA_URL.split(a), MEDIA_URL.split(b)
    if len(pieces_a) != len(pieces_b):
        return False
    for i, (x, y) in enumerate(zip(pieces_a, pieces_b, strict=True)):
        if x != y and not (i % 2 and _swap(x, tenant_a, tenant_b) == y):
            return False
    return True


def _varies(line: str, tenant: str, export: str) -> bool:
    return tenant in line or export in line or " UTC" in line


def _swap(text: str, a: str, b: str) -> str:
    return text.replace(a, b)


async def rows_of(db: ContentSource, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every row the content source holds for the tenant, through the port (every column it reads)."""
    readers = {"posts": db.posts, "pages": db.pages, "media": db.media, "amber_files": db.amber_files}
    return {table: sorted([r async for r in read(tenant)], key=lambda r: r["id"]) for table, read in readers.items()}


def compare_rows(a: dict[str, list[dict[str, Any]]], b: dict[str, list[dict[str, Any]]], tenant_a: str,
                 tenant_b: str, out: Compared, tables: tuple[str, ...]) -> None:
    for table in tables:
        ra = sorted((_swap_row(r, tenant_a, tenant_b) for r in a[table]), key=lambda r: r["id"])
        a_rows = {_swap(r["id"], tenant_a, tenant_b): r for r in a[table]}
        rb = sorted(b[table], key=lambda r: r["id"])
        if len(ra) != len(rb):
            out.differences.append(f"{table}: {len(ra)} rows in A, {len(rb)} in B")
        for x, y in zip(ra, rb, strict=False):
            out.rows += 1
            for col in x:
                out.fields += 1
                if col == "markdown_content" and same_body(a_rows[x["id"]][col], y[col], tenant_a, tenant_b):
                    continue
                if x[col] != y.get(col):
                    out.differences.append(f"{table} {y['id']}.{col}: {x[col]!r} != {y.get(col)!r}")


def _swap_row(row: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    return {k: _swap(v, a, b) if isinstance(v, str) else v for k, v in row.items()}


# -- tenants ---------------------------------------------------------------------------------------

HOSTILE_TITLES = ['Quotes "and" \'more\': colon', "---", "yes", "null", "Line\nbreak", "  spaced  ", "Ünïcödé ✓",
                  "# not a heading", "[link](x)", "\u202eevil"]
HOSTILE_SLUGS = ["../../etc/passwd", "CON", "same", "same", "a/b\\c", "", "...", "trailing.", "ünï", "x" * 300]


async def hostile_tenant(db: ContentSource, store: ObjectStore, settings: Settings, tenant: str) -> None:
    """Titles and slugs that break naive writers, bodies with `---`, code with image syntax, HTML,
    reference links, query strings, other sites — all pointing at this tenant's own images too."""
    rng = random.Random(5)
    await seed_tenant(db, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                      tenant_id=tenant, posts=2, pages=1, images=3, files=0, image_size=(64, 48), seed=3)
    key = f"{tenant}/media/odd name (1).jpg"
    await store.put(settings.buckets.images, key, make_image(rng, 32, 32), "image/jpeg")
    url = "https://cdn.example/" + quote(key, safe="/")  # the platform's scheme: the template over the key
    await db.insert("media", [{"id": f"med_odd_{tenant}", "tenant_id": tenant, "filename": "odd name (1).jpg",
                               "original_name": "Odd Name (1).JPG", "r2_key": key, "url": url, "size": 1,
                               "mime_type": "image/jpeg", "alt_text": 'Alt "with" quotes\nand a line', "uploaded_at": 7}])
    own = url
    bodies = [
        f"---\ntitle: fake\n---\n![odd]({own} \"Title (x)\")\n\n```md\n![code]({own})\n```\n",
        f"Inline `![c]({own})` and <img src=\"{own}?w=10&amp;h=2\" alt=x> and [ref][r].\n\n[r]: {own}?v=2#f\n",
        f"    ![indented code]({own})\n\nText [other](https://elsewhere.example/x.jpg) ![q]({own}?size=large)\n",
        f"<a href='{own}'>html link</a>\n\n> ![quoted]({own})\n\n- ![item]({own})\n",
    ]
    posts = []
    for i, (title, slug) in enumerate(zip(HOSTILE_TITLES, HOSTILE_SLUGS, strict=True)):
        posts.append({"id": f"hpost_{i}_{tenant}", "tenant_id": tenant, "slug": slug, "title": title,
                      "description": None if i % 3 else "desc: with colon", "markdown_content": bodies[i % len(bodies)],
                      "tags": json.dumps(["a", "yes", "1e3"][: i % 4]), "status": ("draft", "published")[i % 2],
                      "featured_image": (key, own + "?w=5", None)[i % 3], "published_at": 1_700_000_000 + i if i % 2 else None,
                      "created_at": 1_600_000_000 + i, "updated_at": None if i == 3 else 1_650_000_000 + i})
    await db.insert("posts", posts)
    await db.insert("pages", [{"id": f"hpage_{tenant}", "tenant_id": tenant, "slug": "same", "title": "---",
                               "description": "x", "markdown_content": bodies[1], "type": None, "display_order": 9,
                               "created_at": 5, "updated_at": 6}])


async def many_images_tenant(db: ContentSource, store: ObjectStore, settings: Settings, tenant: str, n: int) -> None:
    seeded = await seed_tenant(db, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                               tenant_id=tenant, posts=6, pages=1, images=n, files=0, image_size=(48, 32), seed=11)
    body = "\n".join(f"![img {i}](https://cdn.example/{k})" for i, k in enumerate(seeded.image_keys)) + "\n"
    await db.insert("posts", [{"id": f"gallery_{tenant}", "tenant_id": tenant, "slug": "gallery", "title": "Gallery",
                               "description": None, "markdown_content": body, "tags": "[]", "status": "published",
                               "featured_image": seeded.image_keys[0], "published_at": 3, "created_at": 3,
                               "updated_at": 4}])


# A value of each kind the catalog cannot read and keeps under `unreadable`: milliseconds (year
# ~55,000), a time before year 1, text that is no time, tags that are no list of words.
UNREADABLE_MS, UNREADABLE_EARLY, UNREADABLE_DEEP = 1_700_000_000_000_000, -10**12, "[" * 2000 + "]" * 2000


async def unreadable_tenant(db: ContentSource, store: ObjectStore, settings: Settings, tenant: str) -> None:
    """Rows holding what their columns cannot mean, in every table and every time column."""
    await seed_tenant(db, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                      tenant_id=tenant, posts=1, pages=1, images=1, files=1, image_size=(32, 24), seed=9)
    base = {"tenant_id": tenant, "description": None, "markdown_content": "odd\n", "status": "published",
            "featured_image": None, "created_at": 100, "updated_at": None}
    await db.insert("posts", [
        base | {"id": f"ms_{tenant}", "slug": "ms", "title": "Ms", "tags": '{"a": 1}',
                "published_at": UNREADABLE_MS, "updated_at": "yesterday"},
        base | {"id": f"deep_{tenant}", "slug": "deep", "title": "Deep", "tags": UNREADABLE_DEEP,
                "published_at": 100, "created_at": "not a time"},
        base | {"id": f"early_{tenant}", "slug": "early", "title": "Early", "tags": "[]", "status": "draft",
                "published_at": None, "created_at": UNREADABLE_EARLY}])
    await db.insert("pages", [{"id": f"badtime_{tenant}", "tenant_id": tenant, "slug": "bad", "title": "Bad",
                               "description": None, "markdown_content": "x\n", "type": None, "display_order": 5,
                               "created_at": "2024-13-45", "updated_at": UNREADABLE_MS}])
    rng = random.Random(9)
    image, file = f"{tenant}/media/when.jpg", f"{tenant}/uploads/when.txt"
    await store.put(settings.buckets.images, image, make_image(rng, 16, 16), "image/jpeg")
    await store.put(settings.buckets.amber, file, b"when?\n", "text/plain")
    await db.insert("media", [{"id": f"med_when_{tenant}", "tenant_id": tenant, "filename": "when.jpg",
                               "original_name": None, "r2_key": image, "url": None, "size": 1,
                               "mime_type": "image/jpeg", "alt_text": None, "uploaded_at": UNREADABLE_MS}])
    await db.insert("amber_files", [{"id": f"file_when_{tenant}", "tenant_id": tenant, "filename": "when.txt",
                                     "original_name": None, "r2_key": file, "size": 6, "mime_type": "text/plain",
                                     "category": "uploads", "product": "amber", "uploaded_at": "not a time"}])


async def odd_numbers_tenant(db: ContentSource, store: ObjectStore, settings: Settings, tenant: str) -> None:
    """Sizes that are no byte count (negative, a fraction, text) and page orders that are no whole
    number: SQLite's INTEGER columns keep what a platform wrote there, PostgreSQL's BIGINT a negative size."""
    await seed_tenant(db, store, images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber,
                      tenant_id=tenant, posts=1, pages=0, images=0, files=0, image_size=(16, 16), seed=4)
    rng = random.Random(4)
    media, files = [], []
    for i, size in enumerate((-5, 1.5, "big")):
        image, file = f"{tenant}/media/odd{i}.jpg", f"{tenant}/uploads/odd{i}.txt"
        await store.put(settings.buckets.images, image, make_image(rng, 16, 16), "image/jpeg")
        await store.put(settings.buckets.amber, file, b"odd\n", "text/plain")
        media.append({"id": f"med_odd{i}_{tenant}", "tenant_id": tenant, "filename": f"odd{i}.jpg",
                      "original_name": None, "r2_key": image, "url": None, "size": size, "mime_type": "image/jpeg",
                      "alt_text": None, "uploaded_at": 10 + i})
        files.append({"id": f"file_odd{i}_{tenant}", "tenant_id": tenant, "filename": f"odd{i}.txt",
                      "original_name": None, "r2_key": file, "size": size, "mime_type": "text/plain",
                      "category": "uploads", "product": "amber", "uploaded_at": 10 + i})
    await db.insert("media", media)
    await db.insert("amber_files", files)
    await db.insert("pages", [{"id": f"order{i}_{tenant}", "tenant_id": tenant, "slug": f"order{i}", "title": "Order",
                               "description": None, "markdown_content": "x\n", "type": None, "display_order": order,
                               "created_at": 5, "updated_at": None} for i, order in enumerate((1.5, "first", -2))])
