"""botocore hashes a part's body into its signature only where that signature is the body's only
protection: plain HTTP to another host. To moto on loopback (as over HTTPS) a part goes out as
UNSIGNED-PAYLOAD — and the store still takes it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from shared.objectstore import CompletedPart
from shared.objectstore import s3 as s3mod
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import Settings

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.timeout(60)]


async def _sent_payload_hashes(settings: Settings, s3: Any) -> list[str]:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["X-Amz-Content-SHA256"].decode())

    async with S3Store(s3) as store:
        store.client.meta.events.register("before-send.s3.UploadPart", capture)
        bucket = settings.buckets.exports
        uid = await store.create_multipart(bucket, "a.zip")
        data = os.urandom(1000)
        etag = await store.upload_part(bucket, "a.zip", uid, 1, data)
        await store.complete_multipart(bucket, "a.zip", uid, [CompletedPart(1, etag)])
        assert await store.read(bucket, "a.zip") == data
    return seen


async def test_parts_to_a_loopback_store_are_sent_unsigned(s3_settings: Settings) -> None:
    assert s3_settings.s3.endpoint_url is not None and "127.0.0.1" in s3_settings.s3.endpoint_url
    assert await _sent_payload_hashes(s3_settings, s3_settings.s3) == ["UNSIGNED-PAYLOAD"]


async def test_when_the_decision_says_sign_the_part_goes_out_signed(s3_settings: Settings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3mod, "_sign_payloads", lambda url: True)
    sent = await _sent_payload_hashes(s3_settings, s3_settings.s3)
    assert len(sent) == 1 and len(sent[0]) == 64 and sent[0] != "UNSIGNED-PAYLOAD"


@pytest.mark.parametrize(("url", "sign"), [
    (None, False), ("https://s3.example.com", False), ("http://127.0.0.1:9000", False),
    ("http://localhost:9000", False), ("http://[::1]:9000", False),
    ("http://minio:9000", True), ("http://10.0.0.5:9000", True),
])
def test_only_plain_http_to_another_host_signs_payloads(url: str | None, sign: bool) -> None:
    assert s3mod._sign_payloads(url) is sign


async def test_requests_name_grove_export_and_times_are_read_by_our_parser(
        s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two per-request costs of botocore's defaults (a tenth of a GET's client CPU each, measured):
    its User-Agent rebuilt from parts, and dateutil's parser on every Last-Modified."""
    read: list[str] = []
    parse = s3mod._timestamp

    def counted(value: str) -> Any:
        read.append(value)
        return parse(value)

    monkeypatch.setattr(s3mod, "_timestamp", counted)
    agents: list[str] = []
    async with S3Store(s3_settings.s3) as store:
        store.client.meta.events.register(
            "before-send.s3.*", lambda request, **_: agents.append(request.headers["User-Agent"].decode()))
        bucket = s3_settings.buckets.exports
        await store.put(bucket, "t.txt", b"x")
        info = await store.head(bucket, "t.txt")
    assert agents and all(a.split(" ")[0] == s3mod.USER_AGENT for a in agents)
    assert read and read[-1].endswith("GMT")
    assert info.last_modified is not None and info.last_modified.utcoffset() is not None
