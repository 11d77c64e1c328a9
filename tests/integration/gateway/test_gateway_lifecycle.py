"""Status through an export's life, history, cancel (006), not found (005) and downloads (009)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import urlsplit

import pytest

from services.gateway import readiness
from services.gateway.auth import link_secret
from services.gateway.keys import SETTINGS, STORE
from shared.core import events as ev
from shared.core import keys
from shared.objectstore import links
from shared.runtime import probe as shared_probe


async def start(gateway, headers) -> str:
    resp = await gateway.post("/api/export", json={}, headers=headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["exportId"]


async def status_of(gateway, export_id, headers) -> dict:
    resp = await gateway.get(f"/api/export/status/{export_id}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_status_shows_progress_while_assembling(gateway, headers_for, pipeline):
    export_id = await start(gateway, headers_for())
    ids = dict(tenant_id="tenant_a", export_id=export_id)
    await pipeline.append(ev.CatalogStarted(**ids))
    await pipeline.append(ev.ExportCataloged(
        **ids, snapshot_key=keys.snapshot_key("tenant_a", export_id), snapshot_sha256="0",
        archive_key=pipeline.archive_key("tenant_a", export_id),
        member_count=8, total_bytes=1000, item_counts={"posts": 5, "pages": 3}))
    await pipeline.append(ev.UploadStarted(**ids, upload_id="u", archive_key=pipeline.archive_key("tenant_a", export_id),
                                           part_size=1, fingerprint="f"))
    await pipeline.append(ev.PartUploaded(**ids, part_number=1, etag="e", md5="m", byte_start=0, byte_end=9,
                                          records_key=keys.records_key("tenant_a", export_id, 1), records_count=1, members_done=4, source_bytes_done=400))
    await pipeline.settle(gateway)
    view = await status_of(gateway, export_id, headers_for())
    assert (view["status"], view["progress"], view["bytesDone"], view["totalBytes"]) == ("assembling", 40, 400, 1000)
    assert (view["itemsDone"], view["itemsTotal"], view["itemCounts"]) == (4, 8, {"posts": 5, "pages": 3})
    assert "etaSeconds" in view and "downloadUrl" not in view and view["notification"] is None


async def test_a_complete_export_offers_a_signed_link_that_serves_the_archive_with_ranges(
        gateway, headers_for, pipeline):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway)
    view = await status_of(gateway, export_id, headers_for())
    assert (view["status"], view["progress"], view["sizeBytes"], view["errorCount"]) == (
        "complete", 100, len(pipeline.archive), 1)
    assert view["sha256"] == hashlib.sha256(pipeline.archive).hexdigest() and view["fileSize"].endswith("KB")
    assert view["notification"] == "sent" and "notice" not in view and view["expiresAt"]
    url = view["downloadUrl"]
    assert url.startswith("http://gateway.test/api/export/download/exports/tenant_a/")
    full = await gateway.get(local(url))
    assert full.status == 200 and await full.read() == pipeline.archive
    assert "attachment" in full.headers["Content-Disposition"] and full.content_type == "application/zip"
    part = await gateway.get(local(url), headers={"Range": "bytes=10-19"})
    assert part.status == 206 and await part.read() == pipeline.archive[10:20]


async def test_download_problems_are_404_for_bad_signatures_and_410_when_gone(
        gateway, settings, headers_for, pipeline, problem):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    key = pipeline.archive_key("tenant_a", export_id)
    good = local(links.sign(link_secret(settings), "http://x", key, 600))
    await problem(await gateway.get(good.replace("sig=", "sig=0")), 404, "GROVE-EXPORT-005")
    await problem(await gateway.get(good.replace(".zip", ".zi")), 404, "GROVE-EXPORT-005")
    await problem(await gateway.get(good.split("sig=")[0] + "sig=%C3%A9"), 404, "GROVE-EXPORT-005")
    stale = local(links.sign(link_secret(settings), "http://x", key, -10))
    await problem(await gateway.get(stale), 410, "GROVE-EXPORT-009")
    pipeline.archive_path("tenant_a", export_id).unlink()
    await problem(await gateway.get(good), 410, "GROVE-EXPORT-009")


async def test_an_archive_deleted_as_its_download_starts_is_a_410_problem_not_an_empty_zip(
        gateway, settings, headers_for, pipeline, problem, monkeypatch):
    """Seen: an archive deleted (the janitor's expiry, an erase) after the download's checks and before
    aiohttp opened it was answered with an empty 404 under the archive's headers — `Content-Type:
    application/zip`, `Content-Disposition: attachment` — an empty archive to save, not a problem.
    The race is driven: the file goes the moment the checks have passed."""
    from services.gateway import downloads

    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    url = local(links.sign(link_secret(settings), "http://x", pipeline.archive_key("tenant_a", export_id), 600))
    checked = downloads.check_file_request

    def then_deleted(request, stat, **kw):  # type: ignore[no-untyped-def]
        try:
            return checked(request, stat, **kw)
        finally:
            pipeline.archive_path("tenant_a", export_id).unlink(missing_ok=True)

    monkeypatch.setattr(downloads, "check_file_request", then_deleted)
    for headers in ({}, {"Range": "bytes=0-9"}):
        pipeline.archive_path("tenant_a", export_id).write_bytes(pipeline.archive)
        resp = await gateway.get(url, headers=headers)
        body = await problem(resp, 410, "GROVE-EXPORT-009")
        assert "no longer available" in body["detail"] and "Content-Disposition" not in resp.headers
        assert resp.headers["Cache-Control"] == "private, no-store"
    pipeline.archive_path("tenant_a", export_id).write_bytes(pipeline.archive)
    head = await gateway.head(url)
    assert (head.status, head.content_type, await head.read()) == (410, "application/problem+json", b"")
    assert "Content-Disposition" not in head.headers
    monkeypatch.undo()  # and a download that is not raced is served as before
    pipeline.archive_path("tenant_a", export_id).write_bytes(pipeline.archive)
    whole = await gateway.get(url)
    assert whole.status == 200 and await whole.read() == pipeline.archive


async def test_a_range_the_archive_cannot_satisfy_is_a_416_problem_naming_its_size(
        gateway, settings, headers_for, pipeline, problem):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    key, size = pipeline.archive_key("tenant_a", export_id), len(pipeline.archive)
    url = local(links.sign(link_secret(settings), "http://x", key, 600))
    for rng in ("bytes=99999999-", f"bytes={size}-", "bytes=0-1,5-9", "bytes=5-1", "bytes=abc", "bytes=-0", "BYTES=-0", "0-9"):
        resp = await gateway.get(url, headers={"Range": rng})
        body = await problem(resp, 416, "GROVE-EXPORT-010")
        assert resp.headers["Content-Range"] == f"bytes */{size}" and body["title"] == "Range not satisfiable", rng
        assert body["detail"].startswith(f"The archive has {size} bytes;"), rng
    for rng, want in ((f"bytes={size - 5}-", pipeline.archive[-5:]), ("bytes=-7", pipeline.archive[-7:]),
                      (f"bytes=0-{size + 100}", pipeline.archive)):
        part = await gateway.get(url, headers={"Range": rng})
        assert part.status == 206 and await part.read() == want, rng
    stale = "Mon, 01 Jan 1990 00:00:00 GMT"  # If-Range no longer matching: the whole file, Range ignored
    whole = await gateway.get(url, headers={"Range": "bytes=99999999-", "If-Range": stale})
    assert whole.status == 200 and await whole.read() == pipeline.archive
    for rng in ("lines=1-2", "items=99999999-", " x = 0-9"):  # RFC 9110 14.2: a unit not understood is ignored
        whole = await gateway.get(url, headers={"Range": rng})
        assert whole.status == 200 and await whole.read() == pipeline.archive, rng
    part = await gateway.get(url, headers={"Range": "BYTES=0-3"})  # the unit is case-insensitive
    assert part.status == 206 and await part.read() == pipeline.archive[:4]


async def test_two_range_headers_are_a_416_problem_not_the_first_ones_bytes(
        gateway, settings, headers_for, pipeline, problem):
    """Seen: `Range: bytes=0-1` and `Range: bytes=5-6` in one download request were answered 206 with
    bytes 0-1 (aiohttp reads the first line); a cache or proxy in front that reads the last one keeps
    those two bytes as bytes 5-6 of the archive. Range is one field: two lines are no range-set."""
    from multidict import CIMultiDict

    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    key, size = pipeline.archive_key("tenant_a", export_id), len(pipeline.archive)
    url = local(links.sign(link_secret(settings), "http://x", key, 600))
    for pair in (("bytes=0-1", "bytes=5-6"), ("bytes=0-1", "bytes=0-1")):
        resp = await gateway.get(url, headers=CIMultiDict([("Range", pair[0]), ("Range", pair[1])]))
        body = await problem(resp, 416, "GROVE-EXPORT-010")
        assert resp.headers["Content-Range"] == f"bytes */{size}" and "one Range header" in body["detail"], pair
    part = await gateway.get(url, headers={"Range": "bytes=5-6"})  # one is served as before
    assert part.status == 206 and await part.read() == pipeline.archive[5:7]


async def test_conditions_given_on_several_lines_are_read_as_one_field(
        gateway, settings, headers_for, pipeline, problem):
    """Seen: aiohttp reads only the first line of If-Match and If-None-Match, which are lists whose
    lines together are one list (RFC 9110 5.3): `If-Match: "0-0"` + `If-Match: <current ETag>` was a
    412, and `If-None-Match: "x"` + `If-None-Match: <current ETag>` the whole archive, not a 304. A
    date field (If-Range, If-Unmodified-Since) on two lines was read by its first line alone; as one
    field it holds no date: If-Range then holds for no range (the whole archive), and
    If-Unmodified-Since is ignored."""
    from multidict import CIMultiDict

    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    url = local(links.sign(link_secret(settings), "http://x", pipeline.archive_key("tenant_a", export_id), 600))
    first = await gateway.get(url)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    def twice(name: str, one: str, two: str, **more: str) -> CIMultiDict[str]:
        return CIMultiDict([(name, one), (name, two), *more.items()])

    part = await gateway.get(url, headers=twice("If-Match", '"0-0"', etag, Range="bytes=0-9"))
    assert part.status == 206 and await part.read() == pipeline.archive[:10]
    await problem(await gateway.get(url, headers=twice("If-Match", '"0-0"', '"1-1"')), 412, "GROVE-EXPORT-011")
    unchanged = await gateway.get(url, headers=twice("If-None-Match", '"x"', etag))
    assert unchanged.status == 304 and await unchanged.read() == b""
    whole = await gateway.get(url, headers=twice("If-Range", modified, "Mon, 01 Jan 1990 00:00:00 GMT", Range="bytes=0-9"))
    assert whole.status == 200 and await whole.read() == pipeline.archive
    whole = await gateway.get(url, headers=twice("If-Range", etag, '"x"', Range="bytes=0-9"))
    assert whole.status == 200 and await whole.read() == pipeline.archive
    ignored = await gateway.get(url, headers=twice("If-Unmodified-Since", "Mon, 01 Jan 1990 00:00:00 GMT", modified))
    assert ignored.status == 200 and await ignored.read() == pipeline.archive


async def test_the_page_folder_itself_is_a_404_problem_not_a_403_internal_error(gateway, problem):
    body = await problem(await gateway.get("/export/"), 404, "GROVE-EXPORT-005")
    assert body["title"] == "Not found"
    assert (await gateway.get("/export/export.js")).status == 200  # its assets are still served


async def test_a_download_whose_if_match_or_if_unmodified_since_fails_is_a_412_problem(
        gateway, settings, headers_for, pipeline, problem):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    url = local(links.sign(link_secret(settings), "http://x", pipeline.archive_key("tenant_a", export_id), 600))
    etag = (await gateway.get(url)).headers["ETag"]
    for headers in ({"If-Match": '"0-0"'}, {"If-Match": f"W/{etag}"}, {"If-Unmodified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}):
        resp = await gateway.get(url, headers={**headers, "Range": "bytes=0-9"})
        body = await problem(resp, 412, "GROVE-EXPORT-011")
        assert body["title"] == "Precondition failed" and resp.headers["ETag"] == etag, headers
    for headers in ({"If-Match": etag}, {"If-Match": f'"0-0", {etag}'}, {"If-Match": "*"},
                    {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}):
        part = await gateway.get(url, headers={**headers, "Range": "bytes=0-9"})  # resuming a download
        assert part.status == 206 and await part.read() == pipeline.archive[:10], headers
    # If-Range with an entity tag: the range only while the tag is the archive's (strong) one, else all of it
    part = await gateway.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert part.status == 206 and await part.read() == pipeline.archive[:10]
    for stale in ('"0-0"', f"W/{etag}", "garbage", "Mon, 32 Foo 2026"):  # no validator that could match either
        for rng in ("bytes=0-9", "bytes=99999999-"):  # a Range ignored is not checked either
            whole = await gateway.get(url, headers={"Range": rng, "If-Range": stale})
            assert whole.status == 200 and await whole.read() == pipeline.archive, (stale, rng)
    # If-Range with a date: the range only when it is exactly the Last-Modified sent (a later one
    # held too, as aiohttp compares "not modified since")
    modified = (await gateway.get(url)).headers["Last-Modified"]
    part = await gateway.get(url, headers={"Range": "bytes=0-9", "If-Range": modified})
    assert part.status == 206 and await part.read() == pipeline.archive[:10]
    later = format_datetime(parsedate_to_datetime(modified) + timedelta(seconds=1), usegmt=True)
    whole = await gateway.get(url, headers={"Range": "bytes=0-9", "If-Range": later})
    assert whole.status == 200 and await whole.read() == pipeline.archive, later
    # If-Modified-Since: a date after the server's clock is not valid, and ignored (RFC 9110 13.1.3)
    archive = settings.store_root / settings.buckets.exports / pipeline.archive_key("tenant_a", export_id)
    os.utime(archive, (946684800, 946684800))  # made in 2000: any date since then is "not modified"
    assert (await gateway.get(url, headers={"If-Modified-Since": "Sat, 01 Jan 2022 00:00:00 GMT"})).status == 304
    later = await gateway.get(url, headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
    assert later.status == 200 and await later.read() == pipeline.archive


async def test_the_page_serves_only_its_own_files_and_answers_bad_conditions_with_problems(gateway, problem):
    page = await gateway.get("/export")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    script = await gateway.get("/export/export.js")
    assert script.status == 200 and "javascript" in script.headers["Content-Type"]
    for path in ("/export/nope.js", "/export/..%2Fapp.py", "/export/%2e%2e/app.py", "/export/index.html/"):
        await problem(await gateway.get(path), 404, "GROVE-EXPORT-005")
    size = len(await script.read())
    resp = await gateway.get("/export/export.js", headers={"Range": f"bytes={size}-"})
    body = await problem(resp, 416, "GROVE-EXPORT-010")
    assert resp.headers["Content-Range"] == f"bytes */{size}" and str(size) in body["detail"]
    # the page's script is no archive (its 416 said "The archive has 8212 bytes", as a download's does)
    assert body["detail"].startswith(f"The file has {size} bytes;") and "archive" not in body["detail"]
    await problem(await gateway.get("/export/export.css", headers={"If-Match": '"stale"'}), 412, "GROVE-EXPORT-011")
    await problem(await gateway.get("/export", headers={"If-Match": '"stale"'}), 412, "GROVE-EXPORT-011")
    part = await gateway.get("/export/export.js", headers={"Range": "bytes=0-3", "If-Match": script.headers["ETag"]})
    assert part.status == 206 and len(await part.read()) == 4


async def test_the_page_and_its_files_are_revalidated_on_every_use_never_kept_stale(gateway):
    """Seen: /export, export.js and export.css were sent with no Cache-Control, only an ETag and a
    Last-Modified, so a browser or a cache in front may keep them fresh by heuristic — a tenth of
    their age at fetch (RFC 9111 4.2.2): files 60 days old when fetched were used unasked for 6 days,
    so after an upgrade people ran the old script against the new API, and a fix to the page (the
    #token= switch's question) reached them days late. Each use now asks (a 304 when unchanged)."""
    for path in ("/export", "/export/export.js", "/export/export.css"):
        resp = await gateway.get(path)
        assert resp.status == 200, path
        assert resp.headers.get("Cache-Control") == "no-cache", (path, dict(resp.headers))
        again = await gateway.get(path, headers={"If-None-Match": resp.headers["ETag"]})
        assert again.status == 304 and again.headers.get("Cache-Control") == "no-cache", path


async def test_an_expired_export_shows_expired_and_its_links_answer_410(
        gateway, settings, headers_for, pipeline, problem):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id)
    key = pipeline.archive_key("tenant_a", export_id)
    await pipeline.append(ev.ExportExpired(tenant_id="tenant_a", export_id=export_id, deleted_key=key))
    await pipeline.settle(gateway)
    view = await status_of(gateway, export_id, headers_for())
    assert view["status"] == "expired" and "downloadUrl" not in view
    link = local(links.sign(link_secret(settings), "http://x", key, 600))
    await problem(await gateway.get(link), 410, "GROVE-EXPORT-009")


async def test_a_failed_export_says_why_and_a_failed_email_gets_a_notice(gateway, headers_for, pipeline):
    export_id = await start(gateway, headers_for())
    await pipeline.fail("tenant_a", export_id, reason="the content database is unreachable")
    await pipeline.append(ev.NotificationFailed(tenant_id="tenant_a", export_id=export_id, channel="smtp",
                                                reason="refused", kind="failed"))
    await pipeline.settle(gateway)
    view = await status_of(gateway, export_id, headers_for())
    assert view["status"] == "failed" and view["error"] == "the content database is unreachable"
    assert view["notification"] == "failed" and "email" in view["notice"]


async def test_a_complete_export_whose_email_failed_still_offers_the_download(gateway, headers_for, pipeline):
    export_id = await start(gateway, headers_for())
    await pipeline.complete("tenant_a", export_id, notification="failed")
    await pipeline.settle(gateway)
    view = await status_of(gateway, export_id, headers_for())
    assert view["status"] == "complete" and view["downloadUrl"] and view["notification"] == "failed"
    assert "email" in view["notice"]


async def test_history_lists_the_ten_most_recent_newest_first(start_gateway, headers_for, pipeline, gateway):
    ids = []
    for _ in range(12):
        export_id = await start(gateway, headers_for())
        await pipeline.fail("tenant_a", export_id)  # a failed export does not use up the hour
        ids.append(export_id)
    await pipeline.settle(gateway)
    resp = await gateway.get("/api/export/history", headers=headers_for())
    assert resp.status == 200
    exports = (await resp.json())["exports"]
    assert [e["exportId"] for e in exports] == ids[::-1][:10]
    assert set(exports[0]) == {"exportId", "status", "mode", "fileSize", "createdAt", "expiresAt"}
    assert exports[0]["status"] == "failed"


async def test_cancel_records_cancel_requested_once(gateway, headers_for, pipeline):
    export_id = await start(gateway, headers_for())
    for _ in range(2):
        resp = await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for())
        assert resp.status == 200 and await resp.json() == {"success": True, "message": "Export cancelled."}
    names = [type(e).__name__ async for _, e in pipeline.bus.log.history("tenant_a", export_id)]
    assert names == ["ExportRequested", "CancelRequested"]


@pytest.mark.parametrize("stage", ["finalizing", "complete", "failed", "cancelled"])
async def test_a_finished_or_finalizing_export_is_not_cancellable_006(gateway, headers_for, pipeline, problem, stage):
    export_id = await start(gateway, headers_for())
    ids = dict(tenant_id="tenant_a", export_id=export_id)
    if stage == "finalizing":
        await pipeline.assemble("tenant_a", export_id)
        await pipeline.append(ev.FinalizeStarted(**ids))
    elif stage == "complete":
        await pipeline.complete("tenant_a", export_id, expires_in=timedelta(days=1))
    elif stage == "failed":
        await pipeline.fail("tenant_a", export_id)
    else:
        await pipeline.append(ev.CancelRequested(**ids))
        await pipeline.append(ev.ExportCancelled(**ids))
    before = await pipeline.bus.log.last_seq("tenant_a", export_id)
    await problem(await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for()), 409,
                  "GROVE-EXPORT-006")
    assert await pipeline.bus.log.last_seq("tenant_a", export_id) == before  # nothing changed


@pytest.mark.parametrize("path", ["/api/export/status/exp_doesnotexist", "/api/export/status/bad.id",
                                  "/api/export/status/exp_1%0A",
                                  "/api/export/cancel/exp_doesnotexist", "/api/export/cancel/bad.id"])
async def test_unknown_or_malformed_ids_are_005(gateway, headers_for, problem, path):
    method = gateway.post if "cancel" in path else gateway.get
    await problem(await method(path, headers=headers_for()), 404, "GROVE-EXPORT-005")


async def test_unknown_routes_are_problem_404(gateway, problem):
    await problem(await gateway.get("/api/nowhere"), 404, "GROVE-EXPORT-005")


async def test_health_readiness_and_the_openapi_document(gateway):
    assert (await gateway.get("/healthz")).status == 200
    ready = await gateway.get("/readyz")
    assert ready.status == 200 and await ready.json() == {"status": "ok"}
    doc = await (await gateway.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {"/api/export", "/api/export/status/{exportId}", "/api/export/cancel/{exportId}",
                                 "/api/export/history", "/api/export/download/{key}", "/api/openapi.json",
                                 "/healthz", "/readyz"}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


async def test_readiness_asks_the_store_at_most_once_a_second_however_many_ask(gateway, problem, monkeypatch):
    """/readyz needs no token, and each call HEADed the store: 50 calls, 50 requests to the store (on
    S3, 50 on the bill). Now 50 at once share one check of the bucket, and its answer stands for a
    second; a store that stops answering is still said once that second is over."""
    store, heads, down = gateway.app[STORE], [], asyncio.Event()
    check = store.check_bucket

    async def counted(bucket):
        heads.append(bucket)
        if down.is_set():
            raise ConnectionError("the store is gone")
        return await check(bucket)

    monkeypatch.setattr(store, "check_bucket", counted)
    monkeypatch.setattr(shared_probe, "FRESH_S", 60.0)  # a loaded machine may take over a second for the 50
    answers = await asyncio.gather(*(gateway.get("/readyz") for _ in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert heads == [gateway.app[SETTINGS].buckets.exports]  # one check for the 50
    assert (await gateway.get("/readyz")).status == 200 and len(heads) == 1  # within the second: its answer

    down.set()
    monkeypatch.setattr(shared_probe, "FRESH_S", 0.0)  # the second is over
    await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    assert len(heads) == 2



async def test_a_download_whose_client_stops_reading_is_closed_not_held_for_ever(start_gateway, settings_for):
    """Seen (read and keep-alive timeouts 1 s): three connections that sent `GET <download link>` for a 32 MiB
    archive and then read nothing were still being served 4 s later (each got all 32 MiB once it
    read again), and the server took minutes to shut down: the send had no bound, so anyone with a
    link could hold connections and open files (and a deleted archive's disk space) for good. A
    client that keeps reading, slowly, is served to the end."""
    import asyncio
    import socket

    from tests.integration.gateway.conftest import Pipeline, auth

    gateway = await start_gateway(0, keepalive_timeout_s=1.0)
    settings = settings_for(0, keepalive_timeout_s=1.0)
    from shared.bus.connect import connect

    bus = await connect(settings, "test-pipeline", name="test-stall")
    try:
        pipeline = Pipeline(bus, settings)
        export_id = await start(gateway, auth(settings))
        await pipeline.complete("tenant_a", export_id)
        size = 32 * 1024 * 1024
        with open(pipeline.archive_path("tenant_a", export_id), "r+b") as f:
            f.truncate(size)  # sparse: no disk
        await pipeline.settle(gateway)
        path = local((await status_of(gateway, export_id, auth(settings)))["downloadUrl"])
    finally:
        await bus.close()
    loop = asyncio.get_running_loop()

    def opened(rcvbuf: int | None = 4096) -> socket.socket:
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", gateway.server.port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        s.setblocking(False)
        return s

    async def drained(s: socket.socket) -> int:
        """Every byte the server still sends once the client reads again, to the connection's end
        (the server runs on this test's loop: read through it, never blocking it)."""
        total = 0
        try:
            while chunk := await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 10):
                total += len(chunk)
        except ConnectionResetError:
            pass
        return total

    stalled = [opened() for _ in range(3)]
    slow = opened(None)
    got = 0
    deadline = loop.time() + 4
    while loop.time() < deadline:  # the slow reader takes 64 KiB every 0.1 s; the others nothing
        await asyncio.sleep(0.1)
        try:
            chunk = slow.recv(64 * 1024)
        except BlockingIOError:
            continue
        got += len(chunk)
    assert got > 0
    got += await drained(slow)  # the slow reader was never cut: it gets the whole archive
    slow.close()
    results = [await drained(s) for s in stalled]  # had they been held, each would now get all 32 MiB
    for s in stalled:
        s.close()
    assert all(n < size // 2 for n in results), results  # the server gave up on them: cut short
    head = 300  # the response head, roughly: the body is all there
    assert size < got < size + head * 10, got


async def test_readiness_tells_an_anonymous_caller_the_store_is_down_not_what_its_client_raised(gateway, problem,
                                                                                                monkeypatch, caplog):
    """Seen: a store that did not answer made `/readyz` — which answers anyone, no token — say "The object
    store did not answer: EndpointConnectionError." (the exception's class: the store's client library,
    and what a message would add, its host or bucket). The answer says only that the store did not
    answer; what was raised is the gateway's log's to say."""

    class InternalStoreClientError(Exception):
        pass

    async def failing(bucket):
        raise InternalStoreClientError("store-7.internal:9000 bucket grove-exports-prod")

    monkeypatch.setattr(gateway.app[STORE], "check_bucket", failing)
    monkeypatch.setattr(shared_probe, "FRESH_S", 0.0)
    with caplog.at_level("WARNING", logger=readiness.__name__):
        body = await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    assert body["detail"] == "The object store did not answer."
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == readiness.__name__)
    assert "InternalStoreClientError" in said and "store-7.internal:9000" in said, said  # the log has it


async def test_readiness_does_not_wait_on_a_store_that_holds_its_head_open(gateway, problem, monkeypatch, caplog):
    """A store that takes the HEAD and never answers (a hung proxy, a store overloaded) held `/readyz`
    for the store client's read timeout (60 s), past any probe's own timeout: not ready once the HEAD
    has had `TIMEOUT_S`, said in the log."""
    import time

    held = asyncio.Event()

    async def hangs(bucket):
        held.set()
        await asyncio.Event().wait()  # never answers

    monkeypatch.setattr(gateway.app[STORE], "check_bucket", hangs)
    monkeypatch.setattr(shared_probe, "FRESH_S", 0.0)
    monkeypatch.setattr(readiness, "TIMEOUT_S", 0.5, raising=False)
    started = time.monotonic()
    with caplog.at_level("WARNING", logger=readiness.__name__):
        async with asyncio.timeout(10):  # the test's own bound: without the probe's, the HEAD waits forever
            body = await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    assert held.is_set() and time.monotonic() - started < 5
    assert body["detail"] == "The object store did not answer."
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == readiness.__name__)
    assert "within 0.5 s" in said, said
