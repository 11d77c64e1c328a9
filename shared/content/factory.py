"""Choose the content source from ``GROVE_CONTENT_DSN``: ``sqlite:///path`` or ``postgresql://…``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shared.content.port import ContentSource

if TYPE_CHECKING:
    from shared.runtime.settings import Settings

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_dsn(path: Path | str) -> str:
    """The DSN of a SQLite file: ``sqlite:///var/content.db`` (relative), ``sqlite:////abs/path``."""
    return SQLITE_PREFIX + str(path)


def check_dsn(dsn: str) -> str:
    """The DSN itself when its scheme is one we have an adapter for, else a ValueError saying so."""
    if dsn.startswith(SQLITE_PREFIX) and len(dsn) > len(SQLITE_PREFIX):
        return dsn
    if dsn.startswith(POSTGRES_SCHEMES):
        return dsn
    shown = dsn.split("://", 1)[0] + "://…" if "://" in dsn else "a DSN without a scheme"
    raise ValueError(f"content DSN must be sqlite:///PATH or postgresql://…, not {shown}")


def sqlite_path(dsn: str) -> Path | None:
    """The file of a ``sqlite:///`` DSN, None for any other."""
    return Path(dsn[len(SQLITE_PREFIX):]) if dsn.startswith(SQLITE_PREFIX) else None


def open_content(dsn: str, *, pool_max: int = 4) -> ContentSource:
    """The adapter for ``dsn``. Nothing connects until first use; call ``close()`` when done."""
    check_dsn(dsn)
    if (path := sqlite_path(dsn)) is not None:
        from shared.content.sqlite import SqliteContent

        return SqliteContent(path)
    from shared.content.postgres import PostgresContent

    return PostgresContent(dsn, pool_max=pool_max)


def content_source(settings: Settings) -> ContentSource:
    """The content source the settings name (``GROVE_CONTENT_DSN``)."""
    return open_content(settings.content_dsn.get_secret_value(), pool_max=settings.content_pool_max)
