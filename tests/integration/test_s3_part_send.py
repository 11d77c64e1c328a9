"""A part buffer goes to S3 as slices of itself: no copy of the part on the event loop (aiohttp's
own payload made two), and the store still receives exactly its bytes."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from aiohttp import http_writer

from shared.objectstore import CompletedPart
from shared.objectstore import s3 as s3mod
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import Settings

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.timeout(60)]


async def test_a_full_part_buffer_is_sent_as_views_of_itself(s3_settings: Settings,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    part = bytearray(os.urandom(3 * s3mod.SEND_SLICE + 5000))  # three whole slices and a short one
    body_writes: list[Any] = []
    write = http_writer.StreamWriter.write

    async def spy(self: http_writer.StreamWriter, chunk: Any, **kwargs: Any) -> None:
        if len(chunk) > 1000:  # the body (a request's headers go out with its first write)
            body_writes.append(chunk)
        await write(self, chunk, **kwargs)

    monkeypatch.setattr(http_writer.StreamWriter, "write", spy)
    bucket = s3_settings.buckets.exports
    async with S3Store(s3_settings.s3) as store:
        uid = await store.create_multipart(bucket, "a.zip")
        etag = await store.upload_part(bucket, "a.zip", uid, 1, memoryview(part))
        monkeypatch.setattr(http_writer.StreamWriter, "write", write)
        assert etag == hashlib.md5(part, usedforsecurity=False).hexdigest()
        await store.complete_multipart(bucket, "a.zip", uid, [CompletedPart(1, etag)])
        assert await store.read(bucket, "a.zip") == part

    assert [len(c) for c in body_writes] == [s3mod.SEND_SLICE] * 3 + [5000]
    assert all(isinstance(c, memoryview) and c.obj is part for c in body_writes)  # views, not copies
