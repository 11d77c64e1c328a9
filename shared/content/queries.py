"""The spec's four queries by name, in one place for both adapters.

:class:`ReadQueries` gives a read (:class:`~shared.content.port.TenantRead`) its ``posts()``,
``pages()``, ``media()`` and ``amber_files()`` from its own ``rows(sql)``; :class:`SourceQueries`
gives a source its ``posts(tenant)`` and kin, each one query in a read of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from shared.content import schema
from shared.content.port import Row, Stream


class ReadQueries:
    def rows(self, sql: str) -> AsyncIterator[Row]:
        raise NotImplementedError

    async def value(self, sql: str) -> Any:
        """The first column of the first row of ``sql`` (the tenant its one parameter)."""
        raise NotImplementedError

    async def count(self, stream: Stream) -> int:
        return int(await self.value(schema.COUNTS[stream]))

    def posts(self) -> AsyncIterator[Row]:
        return self.rows(schema.POSTS)

    def pages(self) -> AsyncIterator[Row]:
        return self.rows(schema.PAGES)

    def media(self) -> AsyncIterator[Row]:
        return self.rows(schema.MEDIA)

    def amber_files(self) -> AsyncIterator[Row]:
        return self.rows(schema.AMBER)


class SourceQueries:
    def read(self, tenant_id: str) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, tenant_id: str) -> AsyncIterator[Row]:
        async with self.read(tenant_id) as read:
            async for row in read.rows(sql):
                yield row

    def posts(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._one(schema.POSTS, tenant_id)

    def pages(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._one(schema.PAGES, tenant_id)

    def media(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._one(schema.MEDIA, tenant_id)

    def amber_files(self, tenant_id: str) -> AsyncIterator[Row]:
        return self._one(schema.AMBER, tenant_id)
