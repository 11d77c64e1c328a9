"""Demo content: a fresh tenant with posts, pages, real images and Amber files.

Images are real JPEG/PNG files (noise plus a gradient, a few hundred KB) written to the images
bucket; Amber files go to the amber bucket. Used by ``make run``, the tests and the benchmarks.
Every time is at or before the moment it runs: a post a day apart from the next, edited a minute
after it was written, the newest edited just now (an archive made next has nothing dated later).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PIL import Image

from shared.content.port import ContentSource
from shared.content.restore import rows_name_files
from shared.objectstore import ObjectStore

WORDS = ("grove moss fern cedar river stone lantern meadow hollow ember willow thistle "
         "amber quiet north path seed root canopy dusk").split()


@dataclass(frozen=True)
class SeedResult:
    tenant_id: str
    username: str
    email: str
    posts: int
    pages: int
    images: int
    files: int
    image_keys: list[str] = field(default_factory=list)


def make_image(rng: random.Random, width: int = 640, height: int = 480, fmt: str = "JPEG") -> bytes:
    """A real image file: colour noise over a gradient (incompressible, like a photo)."""
    noise = Image.merge("RGB", [Image.effect_noise((width, height), 60 + rng.randint(0, 40)) for _ in range(3)])
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    img = Image.blend(noise, gradient, 0.3)
    buf = io.BytesIO()
    img.save(buf, format=fmt, quality=92) if fmt == "JPEG" else img.save(buf, format=fmt)
    return buf.getvalue()


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()


async def seed_tenant(
    db: ContentSource,
    store: ObjectStore,
    *,
    images_bucket: str,
    amber_bucket: str,
    tenant_id: str | None = None,
    username: str = "autumn",
    posts: int = 12,
    pages: int = 3,
    images: int = 8,
    files: int = 6,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 7,
) -> SeedResult:
    """Create a tenant with content. Each call makes a new tenant unless ``tenant_id`` is given."""
    rng = random.Random(seed)
    tenant_id = tenant_id or f"demo_{uuid.uuid4().hex[:12]}"
    email = f"{username}@example.org"
    now = int(datetime.now(UTC).timestamp())
    await db.init()
    # All or nothing: the files are put first and every row is written in one transaction at the end;
    # a seed cut short (Ctrl-C, SIGTERM) or failing deletes the files it put, unless its rows are in
    # (committed before the interruption): then the tenant is whole and keeps them. Rows went in table by
    # table as it went: an interrupted seed left a tenant row with no content, and images in the
    # store, under an id it never printed.
    put: list[tuple[str, str]] = []
    writing = False
    try:
        tenant_row = {"id": tenant_id, "username": username, "display_name": username.title(), "email": email,
                      "created_at": now}
        media_rows, keys = [], []
        for i in range(images):
            fmt, ext, mime = ("PNG", "png", "image/png") if i % 5 == 4 else ("JPEG", "jpg", "image/jpeg")
            data = make_image(rng, *image_size, fmt=fmt)
            filename = f"{rng.choice(WORDS)}-{i + 1}.{ext}"
            key = f"{tenant_id}/media/{uuid.uuid4().hex[:8]}-{filename}"
            put.append((images_bucket, key))
            await store.put(images_bucket, key, data, mime)
            keys.append(key)
            media_rows.append({"id": f"med_{i + 1}_{tenant_id}", "tenant_id": tenant_id, "filename": filename,
                               "original_name": filename, "r2_key": key, "url": f"https://cdn.example/{key}",
                               "size": len(data), "mime_type": mime, "alt_text": _sentence(rng, 4),
                               "uploaded_at": now - i * 3600})
        post_rows = []
        for i in range(posts):
            title = _sentence(rng, 4)
            body = "\n\n".join(_sentence(rng, 40) + "." for _ in range(6))
            post_rows.append({
                "id": f"post_{i + 1}_{tenant_id}", "tenant_id": tenant_id,
                "slug": title.lower().replace(" ", "-"), "title": title,
                "description": _sentence(rng, 10), "markdown_content": f"# {title}\n\n{body}\n",
                "tags": json.dumps(rng.sample(WORDS, 3)), "status": "published" if i % 4 else "draft",
                "featured_image": keys[i % len(keys)] if keys else None,
                # edited a minute after it was written, and the newest edited as the seed runs: never after
                "published_at": now - i * 86400 - 60 if i % 4 else None,
                "created_at": now - i * 86400 - 60, "updated_at": now - i * 86400,
            })
        page_rows = [{"id": f"page_{i + 1}_{tenant_id}", "tenant_id": tenant_id, "slug": slug,
                      "title": slug.title(), "description": _sentence(rng, 8),
                      "markdown_content": f"# {slug.title()}\n\n{_sentence(rng, 60)}.\n", "type": "page",
                      "display_order": i, "created_at": now - 40 * 86400, "updated_at": now}
                     for i, slug in enumerate(["about", "contact", "now", "uses", "colophon"][:pages])]
        amber_rows = []
        for i in range(files):
            category = ("uploads", "attachments", "documents")[i % 3]
            data = (_sentence(rng, 200) + "\n").encode() if i % 2 else make_image(rng, 320, 240)
            ext, mime = ("txt", "text/plain") if i % 2 else ("jpg", "image/jpeg")
            filename = f"{category}-{i + 1}.{ext}"
            key = f"{tenant_id}/{category}/{uuid.uuid4().hex[:8]}-{filename}"
            put.append((amber_bucket, key))
            await store.put(amber_bucket, key, data, mime)
            amber_rows.append({"id": f"amb_{i + 1}_{tenant_id}", "tenant_id": tenant_id, "filename": filename,
                               "original_name": filename, "r2_key": key, "size": len(data), "mime_type": mime,
                               "category": category, "product": "amber", "uploaded_at": now - i * 60})
        writing = True
        await db.insert_tables([("tenants", [tenant_row]), ("media", media_rows), ("posts", post_rows),
                                ("pages", page_rows), ("amber_files", amber_rows)])
    except BaseException:
        if writing and put and await rows_name_files(db, tenant_id, {key for _, key in put}):
            raise  # committed, then cut short (the connection's close): the tenant is whole, its files stay
        for bucket, key in reversed(put):  # the one being put too: a put cut short may have landed
            with contextlib.suppress(Exception):
                await store.delete(bucket, key)
        raise
    return SeedResult(tenant_id, username, email, posts, len(page_rows), images, files, keys)
