"""The spec's content tables and its catalog queries, in one place for every adapter.

Queries use ``?`` placeholders; the PostgreSQL adapter numbers them. Each ORDER BY adds ``id`` as a
tie-breaker so the order (and with it the archive's names) is the same on every adapter and run.
"""

from __future__ import annotations

# {int} is INTEGER on SQLite and BIGINT on PostgreSQL (Unix seconds and byte sizes pass 2^31).
# {id} sorts by bytes on both: SQLite compares text bytewise; PostgreSQL would use the locale's
# collation, which would order ties differently, so ids there are COLLATE "C".
_TABLES = """
CREATE TABLE IF NOT EXISTS tenants (
  id {id} PRIMARY KEY,
  username TEXT NOT NULL,
  display_name TEXT,
  email TEXT,
  created_at {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS posts (
  id {id} PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  markdown_content TEXT NOT NULL DEFAULT '',
  tags TEXT,
  status TEXT NOT NULL DEFAULT 'draft',
  featured_image TEXT,
  published_at {int},
  created_at {int} NOT NULL,
  updated_at {int}
);
CREATE INDEX IF NOT EXISTS idx_posts_tenant ON posts(tenant_id, created_at);
CREATE TABLE IF NOT EXISTS pages (
  id {id} PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL,
  title TEXT NOT NULL,
  description TEXT,
  markdown_content TEXT NOT NULL DEFAULT '',
  type TEXT,
  display_order {int} NOT NULL DEFAULT 0,
  created_at {int} NOT NULL,
  updated_at {int}
);
CREATE INDEX IF NOT EXISTS idx_pages_tenant ON pages(tenant_id, display_order);
CREATE TABLE IF NOT EXISTS media (
  id {id} PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  filename TEXT NOT NULL,
  original_name TEXT,
  r2_key TEXT NOT NULL,
  url TEXT,
  size {int},
  mime_type TEXT,
  alt_text TEXT,
  uploaded_at {int} NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_media_tenant ON media(tenant_id, uploaded_at);
CREATE TABLE IF NOT EXISTS amber_files (
  id {id} PRIMARY KEY,
  tenant_id TEXT NOT NULL REFERENCES tenants(id),
  filename TEXT NOT NULL,
  original_name TEXT,
  r2_key TEXT NOT NULL,
  size {int},
  mime_type TEXT,
  category TEXT,
  product TEXT,
  uploaded_at {int} NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_amber_tenant ON amber_files(tenant_id, uploaded_at);
"""

SQLITE_SCHEMA = _TABLES.format(int="INTEGER", id="TEXT")
POSTGRES_SCHEMA = _TABLES.format(int="BIGINT", id='TEXT COLLATE "C"')

POSTS = """SELECT id, slug, title, description, markdown_content, tags, status,
       featured_image, published_at, created_at, updated_at
FROM posts WHERE tenant_id = ? ORDER BY created_at DESC, id"""
PAGES = """SELECT id, slug, title, description, markdown_content, type, display_order,
       created_at, updated_at
FROM pages WHERE tenant_id = ? ORDER BY display_order ASC, id"""
MEDIA = """SELECT id, filename, original_name, r2_key, url, size, mime_type,
       alt_text, uploaded_at
FROM media WHERE tenant_id = ? ORDER BY uploaded_at DESC, id"""
AMBER = """SELECT id, filename, original_name, r2_key, size, mime_type, category,
       product, uploaded_at
FROM amber_files WHERE tenant_id = ? ORDER BY uploaded_at DESC, id"""
# How many rows each stream gives (its query's FROM and WHERE): what the catalog writes in README.md
# before it reads the posts and pages themselves.
COUNTS = {table: f"SELECT COUNT(*) FROM {table} WHERE tenant_id = ?" for table in ("posts", "pages", "media",
                                                                                  "amber_files")}
TENANT = "SELECT id, username, display_name, email, created_at FROM tenants WHERE id = ?"
