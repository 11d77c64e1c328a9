"""Pure: the archive's machine-readable side — index.json (posts, pages, media, files with every
column the catalog reads) and feed.json (the posts as a JSON Feed 1.1, jsonfeed.org).

Both are written once by the catalog, in pieces (each entry as it comes), and never depend on the
tenant or export id, so an archive restored into another tenant exports to the same index except
for row ids and object keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from shared.archive import jsontext
from shared.archive.layout import FEED_PATH
from shared.archive.ownmedia import OwnMedia, export_body, relative_link

INDEX_FORMAT = {"format": "grove-export-index", "version": 1}


def ts(value: Any) -> datetime | None:
    """Unix seconds (the spec's INTEGER columns) or ISO text → aware UTC datetime; None when the
    column is empty or holds no such time (:func:`unreadable` tells which)."""
    if value in (None, ""):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # `+02:00` is not UTC
    except (ValueError, OverflowError, OSError):  # years outside 1..9999 (seconds read as ms), NaN, not ISO
        return None


def raw(value: Any) -> Any:
    """A column's value as stored, in what JSON and YAML front matter both hold exactly: text,
    whole numbers, true/false, null; any other number or value as its text."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return repr(value) if isinstance(value, float) else str(value)


def unreadable_times(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    """The time columns holding something that is not a time, each with its value as stored.
    Asked through :func:`iso` (None exactly when :func:`ts` is), whose cache already holds the
    row's times: the documents write each of them."""
    return {c: raw(v) for c in columns if (v := row.get(c)) not in (None, "") and iso(v) is None}


def whole(value: Any, least: int | None = None) -> int | None:
    """A whole-number column (a size, a page's order) as its number, or None when it holds something
    else: SQLite's INTEGER keeps a fraction or text as it was written, and a size below 0 (``least``)
    counts no bytes. Front matter holds no float (the export failed on one) and import refused the
    others: :func:`unreadable_numbers` keeps them, as an unreadable time is kept."""
    if isinstance(value, int) and not isinstance(value, bool) and (least is None or value >= least):
        return value
    return None


def unreadable_numbers(row: dict[str, Any], *columns: str, least: int | None = None) -> dict[str, Any]:
    """The whole-number columns holding something :func:`whole` does not read, each as stored."""
    return {c: raw(v) for c in columns if (v := row.get(c)) not in (None, "") and whole(v, least) is None}


def with_unreadable(meta: dict[str, Any], unreadable: dict[str, Any]) -> dict[str, Any]:
    """``meta`` plus ``unreadable`` (the columns shown as null or [] and what they hold), only when
    there is any: the documents of rows without such a value stay byte for byte as they were."""
    return {**meta, "unreadable": unreadable} if unreadable else meta


CACHED_LENGTH = 64  # an ISO 8601 time is at most ~35 characters


def iso(value: Any) -> str | None:
    # The columns' usual types: the same few values come back many times per export (each post's
    # dates in front matter, index, feed). Only short text is cached: the cache kept any value, so a
    # megabyte of a tenant's text in a time column stayed in the catalog's memory after the export.
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= CACHED_LENGTH):
        return _iso_cached(value)
    return _iso(value)


def _iso(value: Any) -> str | None:
    t = ts(value)  # isoformat, not strftime: the year has 4 digits below 1000 too (glibc's %Y: "5")
    return t.replace(tzinfo=None).isoformat(timespec="seconds") + "Z" if t else None


_iso_cached = lru_cache(maxsize=4096)(_iso)  # ~2.6 us a call -> ~0.1; bounded, pure, thread-safe


@dataclass(frozen=True)
class RenderedText:
    """A rendered post or page: the file, its front matter, its body and what happened to its links."""

    text: str
    meta: dict[str, Any]
    body: str
    links: list[dict[str, str]]  # rewritten: original url → archive path, in order
    left: list[dict[str, str]]  # links to the person's media that could not point into the archive
    feed_body: str | None = None  # a post's body as feed.json holds it (links relative to feed.json)
    not_rewritten: str | None = None  # why its links were not rewritten (a body over the limit)


def media_meta(row: dict[str, Any]) -> dict[str, Any]:
    """Everything the catalog reads about an image, besides its bytes (manifest.json and index.json)."""
    return with_unreadable(
        {"filename": row.get("filename"), "original_name": row.get("original_name"),
         "alt_text": row.get("alt_text"), "source_url": row.get("url"), "object_key": row.get("r2_key"),
         "mime_type": row.get("mime_type"), "size": whole(row.get("size"), 0),
         "uploaded_at": iso(row.get("uploaded_at"))},
        unreadable_times(row, "uploaded_at") | unreadable_numbers(row, "size", least=0))


def file_meta(row: dict[str, Any]) -> dict[str, Any]:
    return with_unreadable(
        {"filename": row.get("filename"), "original_name": row.get("original_name"),
         "category": row.get("category"), "product": row.get("product"), "object_key": row.get("r2_key"),
         "mime_type": row.get("mime_type"), "size": whole(row.get("size"), 0),
         "uploaded_at": iso(row.get("uploaded_at"))},
        unreadable_times(row, "uploaded_at") | unreadable_numbers(row, "size", least=0))


def index_entry(row: dict[str, Any], path: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "path": path, "in_archive": path is not None, **meta}


def text_entry(row_id: str, path: str, r: RenderedText) -> dict[str, Any]:
    entry = {"id": row_id, "path": path, **r.meta, "media_links": r.links, "media_links_left": r.left}
    if r.not_rewritten is not None:  # only then: every other entry stays byte for byte as it was
        entry["media_links_not_rewritten"] = r.not_rewritten
    return entry


def index_json(sections: dict[str, jsontext.Items]) -> Iterator[bytes]:
    """index.json in pieces (:func:`jsontext.pretty_pieces`): each section's entries were written as
    they came."""
    return jsontext.pretty_pieces({**INDEX_FORMAT, **sections})


def feed_item(row: dict[str, Any], path: str, r: RenderedText, own: OwnMedia) -> dict[str, Any]:
    """One JSON Feed item; links are relative to feed.json (the archive's root), like the image."""
    body = r.feed_body if r.feed_body is not None else export_body(row.get("markdown_content") or "", FEED_PATH,
                                                                       own)[0]  # scanned once, with the post
    featured = row.get("featured_image")
    hit = own.lookup(featured) if featured else None
    item: dict[str, Any] = {
        # JSON Feed requires an id, unique in the feed: a post whose id is null (SQLite holds one) has its path
        "id": path if row["id"] is None else row["id"], "title": row["title"], "content_text": body, "summary": row.get("description"),
        "image": relative_link(FEED_PATH, hit[0].path) if hit and hit[0].path else featured,
        "date_published": iso(row.get("published_at")), "date_modified": iso(row.get("updated_at")),
        "tags": r.meta.get("tags_original", r.meta["tags"]) or None,  # as stored: a feed reader is no Hugo
        "_grove": {"path": path, "slug": row.get("slug"), "status": row.get("status"), "draft": r.meta["draft"],
                   "created_at": iso(row.get("created_at"))},
    }
    return {k: v for k, v in item.items() if v is not None}


def feed_json(title: str, items: jsontext.Items) -> Iterator[bytes]:
    """feed.json in pieces, as :func:`index_json`."""
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": title,
           "description": "Every post in this archive. content_text is the Markdown body; links to images "
                          "are relative to this file. _grove.path is the post's Markdown file.",
           "items": items}
    return jsontext.pretty_pieces(doc)
