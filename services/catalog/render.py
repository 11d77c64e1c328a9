"""Content rows → the snapshot's member list and its rendered text (README, posts, pages, index.json,
feed.json). Pure but for where the text goes: into the plan's :class:`Spool` as it is rendered, in
archive order, so the texts object is written by the time the plan is done and no member's bytes
(nor index.json's or feed.json's entries) are held in memory meanwhile.

Member paths, their order and the member types are the layout's (shared/archive/layout.py).
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.catalog import spool
from services.catalog.index import (
    RenderedText,
    feed_item,
    feed_json,
    file_meta,
    index_entry,
    index_json,
    iso,
    media_meta,
    raw,
    text_entry,
    ts,
    unreadable_numbers,
    unreadable_times,
    whole,
    with_unreadable,
)
from services.catalog.spool import Spool
from shared.archive import layout
from shared.archive.frontmatter import render_markdown
from shared.archive.jsontext import Items
from shared.archive.layout import FEED_PATH, INDEX_PATH, README_PATH, TAGS_LIMIT, ObjectMember, TextMember
from shared.archive.names import NameAllocator
from shared.archive.ownmedia import NOT_REWRITTEN, MediaRef, OwnMedia, export_bodies, relative_link, rewrites
from shared.content.port import Row
from shared.core.snapshot import SnapshotError

EPOCH_FALLBACK = datetime(1980, 1, 1, tzinfo=UTC)


@dataclass
class Plan:
    """What the snapshot will hold. ``texts`` are byte ranges of ``spool`` (the texts object, written
    in the order of ``texts``): :meth:`close` it once stored."""

    texts: list[TextMember] = field(default_factory=list)
    objects: list[ObjectMember] = field(default_factory=list)
    errors: list[SnapshotError] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    spool: Spool = field(default_factory=Spool)

    def add_text(self, path: str, kind: str, source_id: str, modified_at: datetime,
                 data: bytes | Iterable[bytes]) -> None:
        """A text member whose bytes are ``data`` (or its pieces, written one by one)."""
        start = self.spool.size
        for piece in (data,) if isinstance(data, bytes) else data:
            self.spool.write(piece)
        self.texts.append(TextMember(path, kind, source_id, modified_at, start, self.spool.size - start, self.spool))

    def add_readme(self, data: bytes, created_at: datetime) -> None:
        self.add_text(README_PATH, "readme", "readme", created_at, data)

    def close(self) -> None:
        self.spool.close()


# Renders README.md into the plan (:meth:`Plan.add_readme`), called once the plan knows its counts
# and errors and before any other text: README.md comes first in the texts object, as in the archive.
Readme = Callable[[Plan], None]


def _spools(plan: Plan) -> ExitStack:
    """The spools of one plan's rendering: the lists' (:func:`_items`), closed when it ends, and the
    plan's own, closed too when it ends in an error (the plan is not returned)."""
    spools = ExitStack()

    def on_error(kind: type[BaseException] | None, *_: object) -> bool:
        if kind is not None:
            plan.close()
        return False

    spools.push(on_error)
    return spools


def _items(spools: ExitStack) -> Items:
    """A list of index.json or feed.json, its entries written as they come into a spool of its own
    (closed with ``spools``)."""
    return Items(spools.enter_context(closing(Spool(spool.LIST_IN_MEMORY))))


def _tag(value: Any) -> str | None:
    """One tag: text as it is, a number or true/false as its JSON text; None for anything else, and
    for text no document can hold: a lone surrogate, which JSON spells in ASCII (``"\\ud83c"``,
    half an emoji as JavaScript's JSON.stringify writes it) and the front matter refuses."""
    if isinstance(value, str):
        return value if value.isascii() or _utf8(value) else None
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _tags(column: Any) -> list[str] | None:
    """The tags column (a JSON list of words; text that is not JSON: words between commas) as a list
    of strings; None when it holds something else (an object, lists in the list, JSON nested too
    deep to read, more than :data:`TAGS_LIMIT` tags): the caller shows [] and keeps the value as
    stored under ``unreadable``."""
    if column in (None, ""):
        return []
    if isinstance(column, str):
        try:
            value = json.loads(column)
        except json.JSONDecodeError:
            return None if column.count(",") >= TAGS_LIMIT else [t.strip() for t in column.split(",")]
        except (ValueError, RecursionError):  # an integer past Python's digit limit; nesting past the stack
            return None
    else:
        value = column
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if len(items) > TAGS_LIMIT:
        return None
    tags = [_tag(t) for t in items]
    return None if None in tags else [t for t in tags if t is not None]


def _ssg(date: Any, lastmod: Any, draft: bool) -> dict[str, Any]:
    """What static-site generators read (Hugo, Jekyll, Eleventy): the spec's fields stay beside them."""
    return {"date": iso(date), "lastmod": iso(lastmod), "draft": draft}


TIMES = ("published_at", "created_at", "updated_at")


def _hugo_slug(row: Row, path: str, taken: set[str] | None) -> dict[str, Any]:
    """``slug`` as Hugo can build it, and ``slug_original`` as stored only when the two differ
    (:func:`layout.hugo_slug`; ``taken``: the section's addresses so far), as ``featured_image``
    goes beside ``featured_image_original``."""
    slug = layout.hugo_slug(row["slug"], path, taken)
    return {"slug": slug} if slug == row["slug"] else {"slug": slug, "slug_original": row["slug"]}


def _hugo_tags(tags: list[str]) -> dict[str, Any]:
    """``tags`` Hugo can build, and ``tags_original`` as stored only when one was left out."""
    usable = layout.hugo_tags(tags)
    return {"tags": usable} if usable == tags else {"tags": usable, "tags_original": tags}


def post_markdown(row: Row, path: str = "posts/post.md", own: OwnMedia | None = None,
                  taken: set[str] | None = None) -> RenderedText:
    """A post as Markdown; links to archived media (and ``featured_image``) become file-relative."""
    own = own or OwnMedia([])
    source = row.get("markdown_content") or ""
    (body, feed_body), links, left = export_bodies(source, (path, FEED_PATH), own)
    featured = row.get("featured_image")
    hit = own.lookup(featured) if featured else None
    if hit and hit[0].path is None:
        left.append({"url": str(featured), "media_id": hit[0].source_id, "reason": "the image is not in this archive"})
    tags, unreadable = _tags(row.get("tags")), unreadable_times(row, *TIMES)
    if tags is None:
        unreadable = {"tags": raw(row.get("tags")), **unreadable}
    meta = with_unreadable({
        "title": row["title"], "description": row.get("description"), **_hugo_slug(row, path, taken),
        **_hugo_tags(tags or []), "status": row.get("status"),
        "featured_image": relative_link(path, hit[0].path) if hit and hit[0].path else featured,
        "featured_image_original": featured,
        "published_at": iso(row.get("published_at")),
        "created_at": iso(row.get("created_at")), "updated_at": iso(row.get("updated_at")),
        **_ssg(row.get("published_at") or row.get("created_at"), row.get("updated_at"),
               row.get("status") != "published"),
    }, unreadable)
    if meta["date"] is None:  # an unreadable published_at: the creation time, as for a draft
        meta["date"] = iso(row.get("created_at"))
    return RenderedText(render_markdown(meta, body), meta, body, links, left, feed_body, _not_rewritten(source, own))


def _not_rewritten(body: str, own: OwnMedia) -> str | None:
    """Why the body's links were not rewritten (index.json says so), or None: they were, or none could be."""
    return NOT_REWRITTEN if own and not rewrites(body) else None


def page_markdown(row: Row, path: str = "pages/page.md", own: OwnMedia | None = None,
                  taken: set[str] | None = None) -> RenderedText:
    own = own or OwnMedia([])
    source = row.get("markdown_content") or ""
    (body,), links, left = export_bodies(source, (path,), own)
    meta = with_unreadable({
        "title": row["title"], "description": row.get("description"), **_hugo_slug(row, path, taken),
        "type": row.get("type"), "display_order": whole(row.get("display_order")),
        "created_at": iso(row.get("created_at")), "updated_at": iso(row.get("updated_at")),
        **_ssg(row.get("created_at"), row.get("updated_at"), False),
    }, unreadable_times(row, "created_at", "updated_at") | unreadable_numbers(row, "display_order"))
    return RenderedText(render_markdown(meta, body), meta, body, links, left, None, _not_rewritten(source, own))


def _source_id(row: Row) -> str:
    """The row's id as the snapshot (source ids, errors) and fallback names carry it: text. SQLite's
    ``id TEXT PRIMARY KEY`` holds NULL (in any number of rows), which failed the snapshot's check and
    with it the tenant's every export; such an id is "" there, and null in index.json, as stored."""
    return "" if row["id"] is None else row["id"]


def _distinct_id(row: Row, seen: set[str]) -> Row:
    """The row, its id null when an earlier row of its table was read with the same id. SQLite's
    primary key tells ids apart by their bytes and type, the export by their text: two ids that are
    not UTF-8 (the bytes ff and fe) both read as U+FFFD, a BLOB as the TEXT of the same bytes. Such
    an id was twice in index.json's section, and verify called the archive damaged; the later row
    is exported as one whose id is null (``seen``: the ids of the table's rows so far)."""
    if (row_id := row["id"]) is None:
        return row
    if row_id in seen:
        return {**row, "id": None}
    seen.add(row_id)
    return row


def _modified(row: Row, *cols: str) -> datetime:
    for col in cols:
        if (t := ts(row.get(col))) is not None:
            return t
    return EPOCH_FALLBACK


Heads = dict[tuple[str, str], tuple[int, str] | str]  # (bucket, key) → (size, etag) or why it is missing


def _object(plan: Plan, heads: Heads | None, obj: ObjectMember) -> bool:
    """Add ``obj`` to the plan when the store has it (``heads`` None: assume it does); else an error."""
    head = None if heads is None else heads.get((obj.bucket, obj.key), "missing: the file is not in storage")
    if isinstance(head, str):
        plan.errors.append(SnapshotError(source_id=obj.source_id, path=obj.path, reason=head))
        return False
    obj.head = head
    plan.objects.append(obj)
    return True


class BlogPlanner:
    """:func:`plan_blog` in steps, for rows that arrive in batches (the catalog reads them from one
    snapshot of the content, rendering each batch as it comes, so a tenant's posts and pages are
    never all in memory): :meth:`media` (all of them, first: posts link to their names), then
    :meth:`begin` with how many posts and pages will follow (README.md's counts), then
    :meth:`posts` and :meth:`pages` in batches, in that order, then :meth:`end`, which gives the plan.

    Each step may run in a thread of its own, one at a time. :meth:`close` (from any thread) gives
    the plan's spools back; while a step runs, that step does so when it ends. A step that raises
    closes them too."""

    def __init__(self, include_images: bool, images_bucket: str, heads: Heads | None = None,
                 title: str = "Posts", moved: Callable[[], None] = lambda: None,
                 readme: Readme | None = None) -> None:
        self.include_images, self.images_bucket, self.heads = include_images, images_bucket, heads
        self.title, self.moved, self.readme = title, moved, readme
        self.plan, self.names = Plan(), NameAllocator()
        self._lists = ExitStack()  # index.json's and feed.json's spools: read into the texts by end()
        self._media_index, self._post_index, self._feed_items, self._page_index = \
            (_items(self._lists) for _ in range(4))
        self._refs: list[MediaRef] = []
        self._own = OwnMedia([])
        self._expected: dict[str, int] = {}
        self._seen = {"posts": 0, "pages": 0}
        self._addresses: dict[str, set[str]] = {"posts": set(), "pages": set()}  # Hugo's (layout.hugo_slug)
        self._ids: dict[str, set[str]] = {"media": set(), "posts": set(), "pages": set()}  # (_distinct_id)
        self._newest: datetime | None = None  # of the posts and pages
        self._lock = threading.Lock()
        self._closing = self._closed = False

    def _step(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                raise ValueError("the plan was closed")
            try:
                work()
            except BaseException:
                self._close_locked()
                raise
        if self._closing:  # asked while this step ran (checked after the lock is free: see close)
            self.close()

    def _close_locked(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._lists.close()
            finally:
                self.plan.close()

    def close(self) -> None:
        """Give the spools back, the plan's too (idempotent): for a planning that failed or was
        cancelled, never once :meth:`end` has handed the plan over. Now, or when the step running in
        a thread ends."""
        self._closing = True
        if self._lock.acquire(blocking=False):
            try:
                self._close_locked()
            finally:
                self._lock.release()

    def media(self, rows: Iterable[Row]) -> None:
        """Every media row, before any post: names first, so posts can point at their images inside
        the archive."""
        self._step(lambda: self._media(rows))

    def _media(self, rows: Iterable[Row]) -> None:
        plan, refs = self.plan, self._refs
        for row in rows:
            row = _distinct_id(row, self._ids["media"])
            path = layout.media_path(self.names, _source_id(row), row.get("filename"))
            obj = ObjectMember(path, "media", _source_id(row), _modified(row, "uploaded_at"), self.images_bucket,
                               row["r2_key"], _ctype(row, path), row.get("size"), media_meta(row))
            present = self.include_images and _object(plan, self.heads, obj)  # the metadata travels either way
            refs.append(MediaRef(_source_id(row), row["r2_key"], row.get("url"), path if present else None))
            self._media_index.append(index_entry(row, path if present else None, obj.meta))

    def begin(self, posts: int, pages: int) -> None:
        """How many posts and pages follow: README.md (its counts) goes into the texts object now,
        before them."""
        self._step(lambda: self._begin(posts, pages))

    def _begin(self, posts: int, pages: int) -> None:
        self._expected = {"posts": posts, "pages": pages}
        self.plan.counts = {"posts": posts, "pages": pages, "images": len(self.plan.objects)}
        if self.readme is not None:
            self.readme(self.plan)
        self._own = OwnMedia(self._refs if self.include_images else [])  # without images, links keep their URLs

    def posts(self, rows: Iterable[Row]) -> None:
        self._step(lambda: self._posts(rows))

    def _posts(self, rows: Iterable[Row]) -> None:
        plan, names, own, moved = self.plan, self.names, self._own, self.moved
        for row in rows:
            self._seen["posts"] += 1
            row = _distinct_id(row, self._ids["posts"])
            path = layout.post_path(names, _source_id(row), row["slug"])
            r = post_markdown(row, path, own, self._addresses["posts"])
            modified = _modified(row, "updated_at", "created_at")
            plan.add_text(path, "post", _source_id(row), modified, r.text.encode())
            self._newest = modified if self._newest is None else max(self._newest, modified)
            self._post_index.append(text_entry(row["id"], path, r))
            moved()
            self._feed_items.append(feed_item(row, path, r, own))
            del r  # its text (a copy of the body) is not kept while the next post or feed.json is built
            moved()

    def pages(self, rows: Iterable[Row]) -> None:
        self._step(lambda: self._pages(rows))

    def _pages(self, rows: Iterable[Row]) -> None:
        plan, names, own, moved = self.plan, self.names, self._own, self.moved
        for row in rows:
            self._seen["pages"] += 1
            row = _distinct_id(row, self._ids["pages"])
            path = layout.page_path(names, _source_id(row), row["slug"])
            r = page_markdown(row, path, own, self._addresses["pages"])
            modified = _modified(row, "updated_at", "created_at")
            plan.add_text(path, "page", _source_id(row), modified, r.text.encode())
            self._newest = modified if self._newest is None else max(self._newest, modified)
            self._page_index.append(text_entry(row["id"], path, r))
            del r
            moved()

    def end(self) -> Plan:
        """index.json and feed.json; the plan, its spool now the caller's (:meth:`Plan.close`)."""
        self._step(self._end)
        return self.plan

    def _end(self) -> None:
        if self._seen != self._expected:  # README.md said otherwise: never in one snapshot
            raise RuntimeError(f"README.md counted {self._expected}, but {self._seen} were rendered")
        at = self._newest or EPOCH_FALLBACK
        self.plan.add_text(INDEX_PATH, "index", "index", at, index_json(
            {"posts": self._post_index, "pages": self._page_index, "media": self._media_index}))
        self.plan.add_text(FEED_PATH, "index", "feed", at, feed_json(self.title, self._feed_items))
        self._lists.close()


def plan_blog(posts: list[Row], pages: list[Row], media: list[Row], include_images: bool,
              images_bucket: str, heads: Heads | None = None, title: str = "Posts",
              moved: Callable[[], None] = lambda: None, readme: Readme | None = None) -> Plan:
    """``moved`` is called after each post and page, and between a post's file and its feed item
    (rendering 100,000 takes a while; the worker stops a step that stops moving, and a mark raises
    once the step was stopped, so this thread stops too). No body's rendering runs long between two
    marks: bodies over ``REWRITE_LIMIT`` are copied, not scanned. Each post goes into the texts
    object as it is rendered, its index.json entry and feed item into spools of their own.
    :class:`BlogPlanner` does the same for rows that arrive in batches."""
    planner = BlogPlanner(include_images, images_bucket, heads, title, moved, readme)
    planner.media(media)
    planner.begin(len(posts), len(pages))
    planner.posts(posts)
    planner.pages(pages)
    return planner.end()
def plan_storage(files: list[Row], amber_bucket: str, heads: Heads | None = None,
                 readme: Readme | None = None) -> Plan:
    plan, names = Plan(), NameAllocator()
    with _spools(plan) as spools:
        file_index = _items(spools)
        ids: set[str] = set()
        for row in files:
            row = _distinct_id(row, ids)
            path = layout.file_path(names, _source_id(row), row.get("filename"), row.get("category"))
            obj = ObjectMember(path, "file", _source_id(row), _modified(row, "uploaded_at"), amber_bucket,
                               row["r2_key"], _ctype(row, path), row.get("size"), file_meta(row))
            present = _object(plan, heads, obj)
            file_index.append(index_entry(row, path if present else None, obj.meta))
        plan.counts = {"files": len(plan.objects)}
        if readme is not None:
            readme(plan)
        newest = max((o.modified_at for o in plan.objects), default=EPOCH_FALLBACK)
        plan.add_text(INDEX_PATH, "index", "index", newest, index_json({"files": file_index}))
    return plan


def _ctype(row: Row, path: str) -> str:
    return row.get("mime_type") or mimetypes.guess_type(path)[0] or "application/octet-stream"
