"""`grove-export setup` on S3 puts the abort-stale-uploads lifecycle rule and reads it back. A store
that refuses it (MinIO before 2024: MalformedXML) or accepts it and drops the abort (MinIO since,
minio/minio#19115) stops setup with one line naming --no-lifecycle, not a traceback and not a
silent success; `--no-lifecycle` (what compose runs against MinIO) leaves the bucket's lifecycle
alone. The two MinIO behaviours are played by a proxy in front of moto that changes only the
lifecycle requests."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

import pytest
from aiohttp import ClientSession, web
from botocore.exceptions import ClientError

from shared.objectstore.s3 import S3Store, kept_abort_rule, lifecycle_rules
from tests.support.env import build, s3_values, to_env


async def run_setup(values: dict[str, Any], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "setup", *args, env={**os.environ, **to_env(values)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def minio_like(upstream: str, mode: str) -> web.AppRunner:
    """A reverse proxy to moto: ``refuse`` answers PUT ?lifecycle with MalformedXML; ``drop`` strips
    AbortIncompleteMultipartUpload from what GET ?lifecycle returns. Everything else passes."""
    session = ClientSession()

    async def handle(request: web.Request) -> web.StreamResponse:
        lifecycle = "lifecycle" in request.query
        if lifecycle and mode == "refuse" and request.method == "PUT":
            return web.Response(status=400, content_type="application/xml", text=(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>MalformedXML</Code><Message>The XML you "
                "provided was not well-formed or did not validate against our published schema.</Message></Error>"))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with session.request(request.method, upstream + request.path_qs, headers=headers,
                                   data=await request.read()) as r:
            body = await r.read()
            if lifecycle and mode == "drop" and request.method == "GET":
                body = re.sub(rb"<AbortIncompleteMultipartUpload>.*?</AbortIncompleteMultipartUpload>", b"", body)
            keep = {k: v for k, v in r.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")}
            return web.Response(status=r.status, body=body, headers=keep)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def url_of(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


@pytest.fixture
def s3(values: dict[str, Any], moto_server: str) -> dict[str, Any]:
    return {**values, **s3_values(moto_server)}


async def lifecycle_of(values: dict[str, Any]) -> dict[str, Any] | None:
    settings = build(values)
    async with S3Store(settings.s3) as store:
        try:
            return await store.client.get_bucket_lifecycle_configuration(Bucket=settings.buckets.exports)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
            return None


async def test_setup_puts_the_rule_and_reads_it_back(s3: dict[str, Any]) -> None:
    code, out, err = await run_setup(s3, "--days", "3")
    assert code == 0, err
    assert "AbortIncompleteMultipartUpload after 3 days (Enabled)" in out
    got = await lifecycle_of(s3)
    assert got is not None and kept_abort_rule(got, 3) is not None


async def test_no_lifecycle_leaves_the_bucket_without_a_rule(s3: dict[str, Any]) -> None:
    code, out, err = await run_setup(s3, "--no-lifecycle")
    assert code == 0, err
    assert "no lifecycle rule (--no-lifecycle)" in out
    assert await lifecycle_of(s3) is None


@pytest.mark.parametrize(("mode", "says"), [("refuse", "refused the lifecycle rule"),
                                            ("drop", "did not keep its AbortIncompleteMultipartUpload")])
async def test_a_store_that_does_not_keep_the_rule_stops_setup_in_one_line(
        s3: dict[str, Any], moto_server: str, mode: str, says: str) -> None:
    proxy = await minio_like(moto_server, mode)
    try:
        values = {**s3, "s3": {**s3["s3"], "endpoint_url": url_of(proxy)}}
        code, out, err = await run_setup(values)
        assert code == 2, (out, err)  # a CliError: one line, exit 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert says in lines[0] and "--no-lifecycle" in lines[0], lines[0]
        code, out, err = await run_setup(values, "--no-lifecycle")  # the fix the line names works
        assert code == 0, err
    finally:
        await proxy.cleanup()


def test_the_rule_read_back_must_be_the_one_sent() -> None:
    sent = lifecycle_rules(2)
    assert kept_abort_rule(sent, 2) == sent["Rules"][0]
    assert kept_abort_rule(sent, 3) is None
    dropped = {"Rules": [{k: v for k, v in sent["Rules"][0].items() if k != "AbortIncompleteMultipartUpload"}]}
    assert kept_abort_rule(dropped, 2) is None  # what MinIO reads back
    disabled = {"Rules": [{**sent["Rules"][0], "Status": "Disabled"}]}
    assert kept_abort_rule(disabled, 2) is None
    assert kept_abort_rule({}, 2) is None
