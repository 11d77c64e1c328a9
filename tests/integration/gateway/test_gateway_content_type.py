"""POST /api/export reads its body as JSON only when it is sent as JSON (415 GROVE-EXPORT-004 otherwise)."""

from __future__ import annotations

import pytest

from services.gateway.keys import BUS, SETTINGS

pytestmark = [pytest.mark.timeout(60)]

BODY = b'{"deliveryMethod": "download"}'


async def _last_seq(gateway) -> int:
    return int((await gateway.app[BUS].js.stream_info(gateway.app[SETTINGS].stream_name)).state.last_seq)


@pytest.mark.parametrize("content_type", [
    None, "text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data",
    "application/octet-stream", "application/merge-patch+json", "application/jsonx", "application/json garbage",
    "application/json; charset=utf-16", "", "application/json, text/plain"])
async def test_a_body_not_sent_as_json_is_415_and_appends_nothing(gateway, headers_for, problem, content_type):
    """Seen: `Content-Type: text/plain` (what a form or a fetch without headers sends cross-origin, with
    no preflight), a form's type, or none at all: the body was read as JSON and the export started (201)."""
    before = await _last_seq(gateway)
    headers = headers_for() | ({"Content-Type": content_type} if content_type is not None else {})
    resp = await gateway.post("/api/export", data=BODY, headers=headers,
                              skip_auto_headers=["Content-Type"] if content_type is None else None)
    body = await problem(resp, 415, "GROVE-EXPORT-004")
    assert "application/json" in body["detail"], body
    assert await _last_seq(gateway) == before
    assert await (await gateway.get("/api/export/history", headers=headers_for())).json() == {"exports": []}


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON;charset=\"UTF-8\"",
    "application/json ; charset=UTF8"])
async def test_json_with_or_without_a_utf8_charset_is_read(gateway, headers_for, content_type):
    resp = await gateway.post("/api/export", data=BODY, headers={**headers_for(), "Content-Type": content_type})
    assert resp.status == 201, await resp.text()


async def test_no_body_needs_no_content_type(gateway, headers_for):
    """`curl -X POST` with no body (every default) sends no Content-Type: there is nothing to label."""
    resp = await gateway.post("/api/export", headers=headers_for(), skip_auto_headers=["Content-Type"])
    assert resp.status == 201, await resp.text()


async def _chunks(*parts: bytes):
    for part in parts:
        yield part


async def test_an_empty_chunked_body_needs_no_content_type_and_a_chunked_one_is_held_to_it(gateway, headers_for,
                                                                                        problem):
    """A client that streams its body (chunked: an empty generator, a `fetch` of an empty stream) sent
    no body, yet was a 415 for having no Content-Type, where the same empty POST with
    `Content-Length: 0` starts the export: a chunked body's length is known only once read, and its
    type is now checked then. A chunked body that holds anything is still a 415 without the type."""
    headers = headers_for()
    resp = await gateway.post("/api/export", data=_chunks(), headers=headers, skip_auto_headers=["Content-Type"])
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert resp.status == 201, await resp.text()
    before = await _last_seq(gateway)
    resp = await gateway.post("/api/export", data=_chunks(b'{"deliveryMethod":', b' "download"}'),
                              headers=headers_for(), skip_auto_headers=["Content-Type"])
    assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
    body = await problem(resp, 415, "GROVE-EXPORT-004")
    assert "application/json" in body["detail"], body
    assert await _last_seq(gateway) == before
    resp = await gateway.post("/api/export", data=_chunks(b'{"deliveryMethod":', b' "download"}'),
                              headers={**headers_for("tenant_b"), "Content-Type": "application/json"})
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_that_decodes_to_nothing_needs_no_content_type_in_either_framing(gateway, headers_for, problem,
                                                                                      chunked):
    """Review of the chunked change: gzip of nothing, sent chunked, was a 201, and the same bytes with a
    Content-Length a 415 — one rule for two framings. Whether a body came is known only once an encoded
    one is read: either way gzip of nothing needs no type, and gzip of `{}` without it is a 415."""
    import gzip

    def body(data: bytes):
        return _chunks(gzip.compress(data)) if chunked else gzip.compress(data)

    headers = {**headers_for("tenant_gz"), "Content-Encoding": "gzip"}
    before = await _last_seq(gateway)
    resp = await gateway.post("/api/export", data=body(b"{}"), headers=headers, skip_auto_headers=["Content-Type"])
    assert (resp.request_info.headers.get("Transfer-Encoding") == "chunked") is chunked
    await problem(resp, 415, "GROVE-EXPORT-004")
    assert await _last_seq(gateway) == before
    resp = await gateway.post("/api/export", data=body(b""), headers=headers, skip_auto_headers=["Content-Type"])
    assert resp.status == 201, await resp.text()
