"""The content source: the spec's tables and its catalog queries, on SQLite via aiosqlite.

Times are integers (Unix seconds, UTC), as in the spec's D1 schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL,
  display_name TEXT,
  email TEXT,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS posts (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  markdown_content TEXT NOT NULL DEFAULT '',
  tags TEXT,
  status TEXT NOT NULL DEFAULT 'draft',
  featured_image TEXT,
  published_at INTEGER,
  created_at INTEGER NOT NULL,
  updated_at INTEGER
);
CREATE INDEX IF NOT EXISTS idx_posts_tenant ON posts(tenant_id, created_at);
CREATE TABLE IF NOT EXISTS pages (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  markdown_content TEXT NOT NULL DEFAULT '',
  type TEXT,
  display_order INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER
);
CREATE INDEX IF NOT EXISTS idx_pages_tenant ON pages(tenant_id, display_order);
CREATE TABLE IF NOT EXISTS media (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  filename TEXT NOT NULL,
  original_name TEXT,
  r2_key TEXT NOT NULL,
  url TEXT,
  size INTEGER,
  mime_type TEXT,
  alt_text TEXT,
  uploaded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_media_tenant ON media(tenant_id, uploaded_at);
CREATE TABLE IF NOT EXISTS amber_files (
  id TEXT PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  filename TEXT NOT NULL,
  original_name TEXT,
  r2_key TEXT NOT NULL,
  size INTEGER,
  mime_type TEXT,
  category TEXT,
  product TEXT,
  uploaded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_amber_tenant ON amber_files(tenant_id, uploaded_at);
"""

POSTS = """SELECT id, slug, title, description, markdown_content, tags, status,
       featured_image, published_at, created_at, updated_at
FROM posts WHERE tenant_id = ? ORDER BY created_at DESC, id"""
PAGES = """SELECT id, slug, title, description, markdown_content, type,
       created_at, updated_at
FROM pages WHERE tenant_id = ? ORDER BY display_order ASC, id"""
MEDIA = """SELECT id, filename, original_name, r2_key, url, size, mime_type,
       alt_text, uploaded_at
FROM media WHERE tenant_id = ? ORDER BY uploaded_at DESC, id"""
AMBER = """SELECT id, filename, original_name, r2_key, size, mime_type, category,
       product, uploaded_at
FROM amber_files WHERE tenant_id = ? ORDER BY uploaded_at DESC, id"""

Row = dict[str, Any]


class ContentDB:
    """Read access for the catalog, write access for the seeder and tests."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def init(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        async with aiosqlite.connect(self.path) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.executescript(SCHEMA)
            await db.commit()

    async def _rows(self, sql: str, *args: Any) -> AsyncIterator[Row]:
        async with aiosqlite.connect(f"file:{self.path}?mode=ro", uri=True) as db:
            db.row_factory = aiosqlite.Row
            async with db.execute(sql, args) as cursor:
                async for row in cursor:
                    yield dict(row)

    def posts(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(POSTS, tenant_id)

    def pages(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(PAGES, tenant_id)

    def media(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(MEDIA, tenant_id)

    def amber_files(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._rows(AMBER, tenant_id)

    async def tenant(self, tenant_id: str) -> Row | None:
        async for row in self._rows("SELECT * FROM tenants WHERE id = ?", tenant_id):
            return row
        return None

    async def insert(self, table: str, rows: list[Row]) -> None:
        if not rows:
            return
        if table not in {"tenants", "posts", "pages", "media", "amber_files"}:
            raise ValueError(table)
        cols = list(rows[0])
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        async with aiosqlite.connect(self.path) as db:
            await db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
            await db.commit()
