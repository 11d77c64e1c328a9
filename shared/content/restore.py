"""Writing restored content into a tenant (``grove-export import``), in the style of seed.py: through
the content-source port, so it works on SQLite and PostgreSQL alike.

The tenant row and every table's rows go in one transaction (``insert_tables``): a failure part-way
leaves nothing. The importer still checks everything it can (archive, emptiness, rows) before
writing, so that a refusal names the archive's problem rather than the database's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from shared.content.port import ContentSource, Row

CONTENT_TABLES = ("posts", "pages", "media", "amber_files")


class TenantNotEmpty(Exception):
    """The tenant already has content: import never merges."""


async def content_counts(source: ContentSource, tenant_id: str) -> dict[str, int]:
    await source.init()
    counts = {}
    async with source.read(tenant_id) as read:  # one snapshot of the four tables
        readers = {"posts": read.posts, "pages": read.pages, "media": read.media, "amber_files": read.amber_files}
        for table, rows in readers.items():
            counts[table] = 0
            async for _ in rows():
                counts[table] += 1
    return counts


async def rows_name_files(source: ContentSource, tenant_id: str, keys: set[str]) -> bool:
    """After a write of a tenant's rows that did not return (cut short, failed): whether a media or
    Amber row of the tenant names one of ``keys``, the files put for those rows. A transaction can
    commit and what ends in an error come after it (the connection's close or the pool's release,
    cut short by Ctrl-C): the files must then stay, or the tenant's rows would name files no longer
    in the store. Rows there before the write (a seed's --tenant) name none of the new files. True,
    too, when the database cannot say: files left without rows are the lesser harm."""
    try:
        async with source.read(tenant_id) as read:
            for rows in (read.media, read.amber_files):
                async for row in rows():
                    if row.get("r2_key") in keys:
                        return True
    except Exception:  # noqa: BLE001  (the database down, its file gone: keep the files)
        return True
    return False


async def _batches(source: ContentSource, tenant_id: str, username: str,
                   tables: Mapping[str, Sequence[Row]]) -> list[tuple[str, Sequence[Row]]]:
    """What a restore writes, in order: the tenant row when it is missing, then every table's rows."""
    batches: list[tuple[str, Sequence[Row]]] = []
    if await source.tenant(tenant_id) is None:
        batches.append(("tenants", [{"id": tenant_id, "username": username, "display_name": username,
                                     "email": None, "created_at": int(datetime.now(UTC).timestamp())}]))
    for table, rows in tables.items():
        if table not in CONTENT_TABLES:
            raise ValueError(table)
        batches.append((table, rows))
    return batches


async def check_restore(source: ContentSource, tenant_id: str, username: str,
                        tables: Mapping[str, Sequence[Row]]) -> None:
    """ContentRejected for what the database would refuse of :func:`restore_tenant`'s write (a row's
    text or type, an id another tenant's row holds), writing nothing: asked before the files are put."""
    await source.check_write(await _batches(source, tenant_id, username, tables))


async def restore_tenant(source: ContentSource, tenant_id: str, username: str,
                         tables: Mapping[str, Sequence[Row]]) -> None:
    """Insert every row, after checking the tenant is empty; the tenant row is made when missing."""
    existing = {t: n for t, n in (await content_counts(source, tenant_id)).items() if n}
    if existing:
        raise TenantNotEmpty(f"tenant {tenant_id!r} is not empty "
                             f"({', '.join(f'{n} {t}' for t, n in existing.items())})")
    await source.insert_tables(await _batches(source, tenant_id, username, tables))
