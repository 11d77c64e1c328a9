"""The S3 adapter checks what the store answers, not only what it was asked: a proxy in front of
moto (a real HTTP hop, as a cache or a gateway would be) bends the answers."""

from __future__ import annotations

import os

import pytest

from shared.objectstore import PreconditionFailed
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.support.flaky_proxy import FlakyProxy

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

DATA = os.urandom(300_000)


async def test_a_ranged_get_answered_with_other_bytes_of_the_right_length_is_refused(
        s3_settings: Settings, moto_server: str) -> None:
    # A 206 for bytes 1100-2099 when 1000-1999 were asked: the ETag and the length are right, the
    # bytes are not the member's. The adapter checked only the length, so they went into the archive.
    proxy = await FlakyProxy(moto_server, shift_range=100).start()
    assert s3_settings.s3 is not None
    lying = s3_settings.model_copy(update={"s3": s3_settings.s3.model_copy(update={"endpoint_url": proxy.url})})
    store = await open_store(lying)
    bucket = s3_settings.buckets.images
    try:
        etag = await store.put(bucket, "t1/media/a.jpg", DATA)
        with pytest.raises(PreconditionFailed):
            [c async for c in store.get(bucket, "t1/media/a.jpg", start=1000, end=2000, if_match=etag)]
        proxy.shift_range = 0
        got = b"".join([c async for c in store.get(bucket, "t1/media/a.jpg", start=1000, end=2000, if_match=etag)])
        assert got == DATA[1000:2000]
    finally:
        await store.close()
        await proxy.stop()


async def test_an_upload_of_parts_s3_would_refuse_is_not_started(s3_settings: Settings) -> None:
    """Settings made without validation (``model_copy``) skip the start-up check of GROVE_MIN_PART_SIZE:
    the S3 store refuses to start an upload whose parts are under the store's smallest, before a byte
    is sent, instead of S3 refusing its completion (EntityTooSmall) after every byte was."""
    from shared.objectstore import StoreRefused

    assert s3_settings.s3 is not None
    strict = s3_settings.model_copy(update={"s3": s3_settings.s3.model_copy(update={"smallest_part": 5 << 20})})
    store = await open_store(strict)
    bucket, key = s3_settings.buckets.exports, "exports/t1/exp_1/archive.zip"
    try:
        with pytest.raises(StoreRefused, match="smaller than the storage service accepts"):
            await store.create_multipart(bucket, key, "application/zip", part_size=(5 << 20) - 1)
        assert await store.list_uploads(bucket, "exports/") == []
        upload_id = await store.create_multipart(bucket, key, "application/zip", part_size=5 << 20)
        await store.abort_multipart(bucket, key, upload_id)
    finally:
        await store.close()
