"""Two `grove-export import` runs into one tenant at once: one imports, the other is refused at
its start, before it writes anything — and the tenant's files are all there afterwards.

Before, both passed the emptiness check, both put the same objects, one committed its rows and the
other, failing on the database, deleted every object it had put: the winner's media, which its
committed rows name. The race is driven deliberately: the first import is held just before its
rows are written, after its objects are in the store, while the second one runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from services.archivetools.importer import ImportRefused
from shared.content.factory import open_content, sqlite_dsn
from shared.content.port import ContentSource
from shared.content.restore import content_counts
from shared.objectstore.fs import FilesystemStore
from tests.integration.archive.test_import_refusals import IMAGE, archive, run_import

DEADLINE_S = 30


class HeldContent:
    """The real content source, with the first ``insert_tables`` held until ``go`` is set."""

    def __init__(self, inner: ContentSource) -> None:
        self.inner = inner
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()
        self.held = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def insert_tables(self, batches: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> int:
        if not self.held:
            self.held = True
            self.waiting.set()
            await self.go.wait()
        return await self.inner.insert_tables(batches)


@pytest.fixture(params=["sqlite", "postgresql"])
async def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    yield str(request.getfixturevalue("postgres_dsn")) if request.param == "postgresql" \
        else sqlite_dsn(tmp_path / "content.db")


async def test_a_second_import_into_the_same_tenant_is_refused_while_the_first_runs(tmp_path: Path, dsn: str) -> None:
    path = archive(tmp_path / "a.zip")
    store = FilesystemStore(tmp_path / "store")
    first_db, second_db = open_content(dsn, pool_max=2), open_content(dsn, pool_max=2)  # as two processes
    await first_db.init()
    held = HeldContent(first_db)
    try:
        first = asyncio.create_task(run_import(path, "tenant_new", held, store))  # type: ignore[arg-type]
        async with asyncio.timeout(DEADLINE_S):
            await held.waiting.wait()  # its objects are in the store; its rows are not written yet
        image = [p for p in store.root.rglob("*.jpg")]
        assert len(image) == 1 and image[0].read_bytes() == IMAGE

        with pytest.raises(ImportRefused, match="another import into tenant 'tenant_new' is under way"):
            async with asyncio.timeout(DEADLINE_S):
                await run_import(path, "tenant_new", second_db, store)
        assert image[0].read_bytes() == IMAGE  # the refused import touched nothing

        held.go.set()
        async with asyncio.timeout(DEADLINE_S):
            plan = await first
        assert plan.tables["media"], "the first import restored nothing"
        counts = await content_counts(second_db, "tenant_new")
        assert counts["media"] == 1 and counts["posts"] == 2
        async for row in second_db.media("tenant_new"):
            assert store.path("images", row["r2_key"]).read_bytes() == IMAGE, "a restored row names a lost file"

        # the claim is released: a third import into the tenant gets past it, to the emptiness check
        # (held, it would be "another import … is under way" again)
        with pytest.raises(ImportRefused, match="tenant 'tenant_new' is not empty"):
            async with asyncio.timeout(DEADLINE_S):
                await run_import(path, "tenant_new", second_db, store)
        await run_import(path, "tenant_other", second_db, store)
    finally:
        held.go.set()
        await first_db.close()
        await second_db.close()
