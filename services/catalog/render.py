"""Pure: content rows → the snapshot's member list and its rendered text (README, posts, pages)."""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.archive.frontmatter import render_markdown
from shared.archive.names import NameAllocator, safe_component
from shared.content.port import Row
from shared.snapshot import SnapshotError

EPOCH_FALLBACK = datetime(1980, 1, 1, tzinfo=UTC)


def ts(value: Any) -> datetime | None:
    """Unix seconds (the spec's INTEGER columns) or ISO text → aware UTC datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(value: Any) -> str | None:
    t = ts(value)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


@dataclass
class TextMember:
    path: str
    kind: str
    source_id: str
    modified_at: datetime
    data: bytes


@dataclass
class ObjectMember:
    path: str
    kind: str
    source_id: str
    modified_at: datetime
    bucket: str
    key: str
    content_type: str
    declared_size: int | None


@dataclass
class Plan:
    texts: list[TextMember] = field(default_factory=list)
    objects: list[ObjectMember] = field(default_factory=list)
    errors: list[SnapshotError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _tags(raw: Any) -> list[str]:
    if raw in (None, ""):
        return []
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        value = [t.strip() for t in str(raw).split(",")]
    return [str(t) for t in value] if isinstance(value, list) else [str(value)]


def post_markdown(row: Row, media_paths: dict[str, str] | None = None) -> str:
    """A post as Markdown; ``featured_image`` points into the archive when that image is in it."""
    featured = row.get("featured_image")
    meta = {
        "title": row["title"], "description": row.get("description"), "slug": row["slug"],
        "tags": _tags(row.get("tags")), "status": row.get("status"),
        "featured_image": (media_paths or {}).get(featured, featured) if featured else None,
        "published_at": iso(row.get("published_at")),
        "created_at": iso(row.get("created_at")), "updated_at": iso(row.get("updated_at")),
    }
    return render_markdown(meta, row.get("markdown_content") or "")


def page_markdown(row: Row) -> str:
    meta = {
        "title": row["title"], "description": row.get("description"), "slug": row["slug"],
        "type": row.get("type"), "created_at": iso(row.get("created_at")), "updated_at": iso(row.get("updated_at")),
    }
    return render_markdown(meta, row.get("markdown_content") or "")


def _modified(row: Row, *cols: str) -> datetime:
    for col in cols:
        if (t := ts(row.get(col))) is not None:
            return t
    return EPOCH_FALLBACK


def plan_blog(posts: list[Row], pages: list[Row], media: list[Row], include_images: bool,
              images_bucket: str) -> Plan:
    plan, names = Plan(), NameAllocator()
    media_paths = {}
    if include_images:  # names first, so posts can point at their featured image inside the archive
        for row in media:
            path = names.allocate("media", keep_extension(row.get("filename") or "", f"media-{row['id']}"),
                                  f"media-{row['id']}")
            media_paths[row["r2_key"]] = path
            plan.objects.append(ObjectMember(path, "media", row["id"], _modified(row, "uploaded_at"),
                                             images_bucket, row["r2_key"], _ctype(row, path), row.get("size")))
    for row in posts:
        stem = safe_component(row["slug"] or "", f"post-{row['id']}")  # clean first, then add .md
        path = names.allocate("posts", f"{stem}.md", f"post-{row['id']}.md")
        plan.texts.append(TextMember(path, "post", row["id"], _modified(row, "updated_at", "created_at"),
                                     post_markdown(row, media_paths).encode()))
    for row in pages:
        stem = safe_component(row["slug"] or "", f"page-{row['id']}")
        path = names.allocate("pages", f"{stem}.md", f"page-{row['id']}.md")
        plan.texts.append(TextMember(path, "page", row["id"], _modified(row, "updated_at", "created_at"),
                                     page_markdown(row).encode()))
    plan.counts = {"posts": len(posts), "pages": len(pages), "images": len(plan.objects)}
    return plan


def plan_storage(files: list[Row], amber_bucket: str) -> Plan:
    plan, names = Plan(), NameAllocator()
    for row in files:
        category = safe_component(row.get("category") or "uncategorized", "uncategorized")
        path = names.allocate(f"files/{category}", keep_extension(row.get("filename") or "", f"file-{row['id']}"),
                              f"file-{row['id']}")
        plan.objects.append(ObjectMember(path, "file", row["id"], _modified(row, "uploaded_at"),
                                         amber_bucket, row["r2_key"], _ctype(row, path), row.get("size")))
    plan.counts = {"files": len(files)}
    return plan


def keep_extension(filename: str, fallback_stem: str) -> str:
    """``"   .jpg"`` or ``"..jpg"`` keep their extension: the stem falls back, not the whole name."""
    stem, dot, ext = filename.rpartition(".")
    if not dot or not ext or "/" in ext or "\\" in ext or len(ext) > 10:
        return filename
    if not stem.strip(" .\t\r\n"):  # nothing usable left of the stem
        return f"{fallback_stem}.{ext}"
    return filename


def _ctype(row: Row, path: str) -> str:
    return row.get("mime_type") or mimetypes.guess_type(path)[0] or "application/octet-stream"
