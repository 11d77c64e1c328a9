"""The S3 adapter checks what the store answers, not only what it was asked: a proxy in front of
moto (a real HTTP hop, as a cache or a gateway would be) bends the answers."""

from __future__ import annotations

import json
import os

import boto3
import pytest
from pydantic import SecretStr

from shared.objectstore import PreconditionFailed, StoreRefused
from shared.objectstore.factory import open_store
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import S3Settings, Settings
from tests.fixtures.moto import start_moto, stop_moto
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


async def test_a_bucket_check_refused_403_names_what_headbucket_needs() -> None:
    """/readyz asks HeadBucket, which needs s3:ListBucket: keys whose policy lacks it (or wrong keys)
    get a bodiless 403, which the log said only as "denied access (check the service's credentials and
    policy)" — the operator was not told which permission. A moto that checks IAM policies, after the
    four unchecked calls that set up the bucket and a user allowed only to read and write objects."""
    proc, url = start_moto(env={"INITIAL_NO_AUTH_ACTION_COUNT": "4"})
    try:
        admin = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "admin",
                 "aws_secret_access_key": "admin"}
        boto3.client("s3", **admin).create_bucket(Bucket="grove-exports")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="gateway")
        iam.put_user_policy(UserName="gateway", PolicyName="objects-only", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                                                    "Resource": ["arn:aws:s3:::grove-exports/*"]}]}))
        key = iam.create_access_key(UserName="gateway")["AccessKey"]
        store = await S3Store.open(S3Settings(endpoint_url=url, access_key_id=key["AccessKeyId"],
                                              secret_access_key=SecretStr(key["SecretAccessKey"])))
        try:
            with pytest.raises(StoreRefused) as refused:
                await store.check_bucket("grove-exports")
        finally:
            await store.close()
        assert "HeadBucket" in str(refused.value) and "s3:ListBucket" in str(refused.value), refused.value
        assert "grove-exports" in str(refused.value)  # in its detail, for the log
    finally:
        stop_moto(proc)
