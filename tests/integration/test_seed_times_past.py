"""The demo tenant's content is dated in the past: a newcomer's first archive has no post from the future."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from shared.content.factory import open_content, sqlite_dsn
from shared.content.seed import seed_tenant
from shared.objectstore.fs import FilesystemStore

TIMES = {"tenants": ["created_at"], "media": ["uploaded_at"], "posts": ["published_at", "created_at", "updated_at"],
         "pages": ["created_at", "updated_at"], "amber_files": ["uploaded_at"]}


async def test_every_seeded_time_is_before_the_seed_ran(tmp_path: Path) -> None:
    """Seen: `make run`'s first archive had its newest post last modified a minute after it was made
    (`updated_at` was `created_at` + 60 s, and the newest post was created "now")."""
    content = open_content(sqlite_dsn(tmp_path / "content.db"))
    try:
        await seed_tenant(content, FilesystemStore(tmp_path / "store"), images_bucket="images",
                          amber_bucket="amber", posts=5, pages=3, images=2, files=2, image_size=(16, 16))
    finally:
        await content.close()
    after = time.time()
    db = sqlite3.connect(tmp_path / "content.db")
    future = [(table, column, value) for table, columns in TIMES.items() for column in columns
              for (value,) in db.execute(f"SELECT {column} FROM {table}")  # noqa: S608 (names above)
              if value is not None and value > after]
    db.close()
    assert future == []
