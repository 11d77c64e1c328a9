"""POST /api/export: the 201 body, authentication (001), conflicts (002), bad bodies (004), size (007),
Idempotency-Key, and read-your-writes."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.auth import make_token
from services.gateway.keys import BUS


async def test_a_post_starts_an_export_with_the_spec_body_and_reads_its_own_write(gateway, headers_for):
    resp = await gateway.post("/api/export", json={"mode": "storage", "deliveryMethod": "download"},
                              headers=headers_for())
    assert resp.status == 201 and resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"success", "exportId", "status", "message"}
    assert body["success"] is True and body["status"] == "pending" and body["exportId"].startswith("exp_")
    status = await gateway.get(f"/api/export/status/{body['exportId']}", headers=headers_for())
    assert status.status == 200
    view = await status.json()
    assert (view["status"], view["progress"], view["mode"], view["itemCounts"]) == ("pending", 0, "storage", {})


async def test_an_empty_body_means_every_default(gateway, headers_for):
    resp = await gateway.post("/api/export", data=b"", headers=headers_for())
    assert resp.status == 201
    export_id = (await resp.json())["exportId"]
    view = await (await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())).json()
    assert view["mode"] == "blog"


@pytest.mark.parametrize("body", [b"\x0c", b"\x0b", b" \x0b\n"])
async def test_a_body_of_what_json_does_not_count_as_whitespace_is_no_empty_body(gateway, headers_for, problem, body):
    """Seen: a body of one form feed (or vertical tab) started an export with every default (201): the
    gateway took bytes.strip()'s whitespace for JSON's, and JSON's is space, tab, CR and LF only."""
    headers = {**headers_for(), "Content-Type": "application/json"}
    await problem(await gateway.post("/api/export", data=body, headers=headers), 400, "GROVE-EXPORT-004")
    history = await (await gateway.get("/api/export/history", headers=headers_for())).json()
    assert history == {"exports": []}
    assert (await gateway.post("/api/export", data=b" \t\r\n", headers=headers)).status == 201  # JSON's: empty


@pytest.mark.parametrize("header", [None, "Basic dTpw", "Bearer ", "Bearer not.a.jwt"])
async def test_a_missing_or_broken_token_is_001(gateway, problem, header):
    headers = {"Authorization": header} if header else {}
    body = await problem(await gateway.post("/api/export", json={}, headers=headers), 401, "GROVE-EXPORT-001")
    assert body["title"] == "Not authenticated"



@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT"])
async def test_a_good_token_under_another_scheme_than_bearer_is_001(gateway, problem, headers_for, scheme):
    """Only ``Bearer`` carries the token: the same valid JWT sent as ``Basic``/``Token`` credentials is refused."""
    token = headers_for()["Authorization"].removeprefix("Bearer ")
    resp = await gateway.get("/api/export/history", headers={"Authorization": f"{scheme} {token}"})
    await problem(resp, 401, "GROVE-EXPORT-001")
    assert (await gateway.get("/api/export/history", headers={"Authorization": f"bearer {token}"})).status == 200

async def test_a_tampered_or_expired_token_is_001(gateway, settings, problem, headers_for):
    token = headers_for()["Authorization"]
    tampered = {"Authorization": token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")}
    await problem(await gateway.get("/api/export/history", headers=tampered), 401, "GROVE-EXPORT-001")
    expired = {"Authorization": f"Bearer {make_token(settings, 'tenant_a', 'u1', 'e@x.org', 'n', ttl_s=-1)}"}
    resp = await gateway.get("/api/export/history", headers=expired)
    assert "expired" in (await problem(resp, 401, "GROVE-EXPORT-001"))["detail"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_signed_token_with_an_exp_no_float_holds_is_001_not_500(gateway, problem):
    from tests.unit.gateway.test_gateway_auth import BASE, HUGE, _signed

    for times in (f'"exp":{HUGE}', f'"exp":{HUGE},"iat":{HUGE}', '"exp":NaN'):
        resp = await gateway.get("/api/export/history", headers={"Authorization": f"Bearer {_signed('{' + BASE + ',' + times + '}')}"})
        assert "not valid" in (await problem(resp, 401, "GROVE-EXPORT-001"))["detail"]


async def test_a_second_export_while_one_is_active_is_002_with_its_id(gateway, problem, headers_for):
    first = await (await gateway.post("/api/export", json={}, headers=headers_for())).json()
    body = await problem(await gateway.post("/api/export", json={}, headers=headers_for(user="u2")), 409,
                         "GROVE-EXPORT-002")
    assert body["activeExportId"] == first["exportId"]


@pytest.mark.parametrize(("data", "mentions"), [
    (b"{not json", "json"),
    (b'{"mode": "blog", "email": "x@evil.org"}', "email"),
    (b'{"includeImages": "yes"}', "includeImages"),
    (b'{"mode": "everything"}', "mode"),
    (b'{"deliveryMethod": 3}', "deliveryMethod"),
    (b'[1, 2]', "(body)"),
    (b'{"include_images": false}', "include_images"),
    # a field twice: one JSON reader takes the first, another (ours) the last; seen: a 201 in storage mode
    (b'{"mode": "blog", "mode": "storage"}', "mode"),
    (b'{"deliveryMethod": "email", "includeImages": true, "deliveryMethod": "download"}', "deliveryMethod"),
])
async def test_bad_bodies_are_004_saying_what_was_wrong(gateway, problem, headers_for, data, mentions):
    resp = await gateway.post("/api/export", data=data, headers={**headers_for(), "Content-Type": "application/json"})
    body = await problem(resp, 400, "GROVE-EXPORT-004")
    assert mentions.lower() in body["detail"].lower() and body["errors"]


@pytest.mark.parametrize(("field", "meant"), [("include_images", "includeImages"), ("delivery", "deliveryMethod"),
                                             ("Mode", "mode"), ("colour", None)])
async def test_an_unknown_field_suggests_the_closest_known_one(gateway, problem, headers_for, field, meant):
    resp = await gateway.post("/api/export", json={field: True}, headers=headers_for())
    body = await problem(resp, 400, "GROVE-EXPORT-004")
    [error] = body["errors"]
    assert error["field"] == field and error["type"] == "extra_forbidden"
    if meant:
        assert error["suggestion"] == meant and f"did you mean '{meant}'?" in body["detail"]
    else:
        assert "suggestion" not in error and "includeImages, deliveryMethod" in body["detail"]


async def test_a_body_over_the_limit_is_007(start_gateway, problem, headers_for):
    gateway = await start_gateway(0, max_body_bytes=64)
    data = b'{"mode": "blog"' + b" " * 100 + b"}"
    resp = await gateway.post("/api/export", data=data, headers={**headers_for(), "Content-Type": "application/json"})
    await problem(resp, 413, "GROVE-EXPORT-007")


async def test_the_same_idempotency_key_and_body_returns_the_same_export(gateway, headers_for, problem):
    headers = {**headers_for(), "Idempotency-Key": "retry-me-7f3a"}
    first = await gateway.post("/api/export", json={"mode": "blog"}, headers=headers)
    again = await gateway.post("/api/export", json={}, headers=headers)  # the same body once defaults apply
    assert first.status == again.status == 201
    assert (await first.json())["exportId"] == (await again.json())["exportId"]
    other = await gateway.post("/api/export", json={"mode": "storage"}, headers=headers)
    body = await problem(other, 422, "GROVE-EXPORT-004")
    assert "Idempotency-Key" in body["detail"]
    bad = await gateway.post("/api/export", json={}, headers={**headers_for(), "Idempotency-Key": "has space"})
    await problem(bad, 400, "GROVE-EXPORT-004")


async def test_an_idempotency_key_is_its_users_own_not_the_tenants(gateway, headers_for, problem):
    """Seen: u1 started an export with `Idempotency-Key: daily-export`; u2, another user of the same
    tenant, sent the same key and body and got 201 with u1's export — "You'll receive an email", but
    the email (and its download link) went to u1's address, never to u2. A key names one client's
    retries: another user's request under it is a request of its own (here a 409 naming u1's export)."""
    key = {"Idempotency-Key": "daily-export"}
    first = await gateway.post("/api/export", json={}, headers={**headers_for(user="u1"), **key})
    assert first.status == 201, await first.text()
    export_id = (await first.json())["exportId"]
    other = await gateway.post("/api/export", json={}, headers={**headers_for(user="u2"), **key})
    body = await problem(other, 409, "GROVE-EXPORT-002")
    assert body["activeExportId"] == export_id
    again = await gateway.post("/api/export", json={}, headers={**headers_for(user="u1"), **key})
    assert again.status == 201 and (await again.json())["exportId"] == export_id  # u1's own retry still is
    requests = [e async for _, e in gateway.app[BUS].log.history("tenant_a", export_id)]
    assert [(type(e).__name__, e.user_id) for e in requests] == [("ExportRequested", "u1")]


def hold_appends(monkeypatch, gateway) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold every append of ``gateway``'s log: ``held`` is set once one waits, ``release`` lets them go."""
    log, held, release = gateway.app[BUS].log, asyncio.Event(), asyncio.Event()
    append = log.append

    async def held_back(event, expected_seq, msg_id=None):
        held.set()
        await release.wait()
        return await append(event, expected_seq, msg_id)

    monkeypatch.setattr(log, "append", held_back)
    return held, release


async def test_another_users_key_never_requests_a_reservation_made_under_it(start_gateway, headers_for,
                                                                             monkeypatch):
    """A retry under a key whose reservation has no request in the log yet appends that request
    itself (a retry after a 503). Seen: u2's request under u1's key did so with u2's identity while
    u1's was held — the export u1 asked for was u2's in the log, and its email went to u2. Now u2's
    request is a 409 and the export is u1's."""
    first, second = await start_gateway(0), await start_gateway(1)
    held, release = hold_appends(monkeypatch, first)
    key = {"Idempotency-Key": "shared-key"}
    original = asyncio.create_task(first.post("/api/export", json={}, headers={**headers_for(user="u1"), **key}))
    await asyncio.wait_for(held.wait(), 10)
    other = await second.post("/api/export", json={}, headers={**headers_for(user="u2"), **key})
    assert other.status == 409, await other.text()
    release.set()
    answer = await asyncio.wait_for(original, 10)
    assert answer.status == 201, await answer.text()
    export_id = (await answer.json())["exportId"]
    requests = [e async for _, e in second.app[BUS].log.history("tenant_a", export_id)]
    assert [(type(e).__name__, e.user_id) for e in requests] == [("ExportRequested", "u1")]


async def test_more_than_one_idempotency_key_is_a_400_problem_and_starts_nothing(gateway, headers_for, problem):
    """Seen: `Idempotency-Key: k1` and `Idempotency-Key: k2` in one request started an export under k1,
    the first (aiohttp's reading; many proxies take the last): a retry under k2 was then a 409, not
    the same export. Which key counts is not guessed, as with two Authorization headers."""
    from multidict import CIMultiDict

    headers = CIMultiDict(headers_for())
    headers.add("Idempotency-Key", "k1")
    headers.add("Idempotency-Key", "k2")
    body = await problem(await gateway.post("/api/export", json={}, headers=headers), 400, "GROVE-EXPORT-004")
    assert "Idempotency-Key" in body["detail"]
    history = await (await gateway.get("/api/export/history", headers=headers_for())).json()
    assert history == {"exports": []}  # nothing was started
    for key in ("k2", "k1"):  # each key alone is then a first request, then its repeat
        again = await gateway.post("/api/export", json={}, headers={**headers_for(), "Idempotency-Key": key})
        assert again.status == (201 if key == "k2" else 409), await again.text()


async def test_an_idempotent_retry_after_completion_still_returns_the_export_not_429(
        gateway, headers_for, pipeline):
    headers = {**headers_for(), "Idempotency-Key": "k-123"}
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers)).json())["exportId"]
    await pipeline.complete("tenant_a", export_id)
    again = await gateway.post("/api/export", json={}, headers=headers)
    assert again.status == 201 and (await again.json())["exportId"] == export_id


async def test_a_body_its_content_encoding_cannot_decode_is_a_400_problem(gateway, headers_for, problem):
    headers = {**headers_for(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    body = await problem(await gateway.post("/api/export", data=b"{}", headers=headers), 400, "GROVE-EXPORT-004")
    assert "Content-Encoding" in body["detail"]


async def test_a_body_of_many_wrong_fields_gets_a_short_answer(gateway, problem, headers_for):
    """Seen: a 16 KiB body of 2,000 unknown fields ({"0":0,"1":0,…}) was answered with 417 KB,
    every field named twice (detail and errors) with a suggestion search each: 25 times the request."""
    data = ("{" + ",".join(f'"{i:x}":0' for i in range(2000)) + "}").encode()
    assert len(data) <= 16 * 1024
    resp = await gateway.post("/api/export", data=data, headers={**headers_for(), "Content-Type": "application/json"})
    body = await problem(resp, 400, "GROVE-EXPORT-004")
    assert len(await resp.read()) < 8 * 1024, len(await resp.read())
    assert len(body["errors"]) == 10 and body["errors"][0]["field"] == "0"
    assert body["detail"].endswith("and 1990 more.")


async def test_two_authorization_headers_are_001_whichever_comes_first(gateway, problem, headers_for):
    """A proxy that appends its own Authorization, or a client that sends two, leaves which one
    counts to the reader (aiohttp's ``get`` takes the first, many proxies the last): neither is guessed."""
    from multidict import CIMultiDict

    good, other = headers_for()["Authorization"], headers_for("tenant_b")["Authorization"]
    for pair in ((good, other), (good, good), (good, "Bearer not.a.jwt")):
        headers = CIMultiDict([("Authorization", pair[0]), ("Authorization", pair[1])])
        body = await problem(await gateway.post("/api/export", json={}, headers=headers), 401, "GROVE-EXPORT-001")
        assert "more than one Authorization" in body["detail"]
    assert (await gateway.get("/api/export/history", headers={"Authorization": good})).status == 200


@pytest.mark.parametrize("encoding", ["compress", "x-unknown", "gzip, gzip", "identity, gzip"])
async def test_a_content_encoding_the_gateway_does_not_decode_is_415_not_read_as_plain(
        gateway, headers_for, problem, encoding):
    """Seen: a body labelled with an encoding aiohttp does not decode was read as if it were plain
    JSON (201), so what the client meant and what the gateway read could differ."""
    headers = {**headers_for(), "Content-Type": "application/json", "Content-Encoding": encoding}
    resp = await gateway.post("/api/export", data=b"{}", headers=headers)
    body = await problem(resp, 415, "GROVE-EXPORT-004")
    assert "Content-Encoding" in body["detail"]


async def test_a_small_gzip_body_that_inflates_past_the_limit_is_413(gateway, headers_for, problem):
    import gzip

    data = gzip.compress(b"{" + b" " * (8 << 20) + b"}")  # 8 MiB of JSON whitespace in ~8 KiB
    assert len(data) < 16 * 1024
    headers = {**headers_for(), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    await problem(await gateway.post("/api/export", data=data, headers=headers), 413, "GROVE-EXPORT-007")


async def test_a_retry_after_a_503_with_the_same_idempotency_key_starts_the_export(gateway, headers_for, problem):
    """Seen: the log refused a request's append (here: the stream full), the client got its 503 and
    retried with the same Idempotency-Key, as a key is for — and got 201 with the export id of the
    reservation the failed request had made, an export the log never heard of: its status was a 404,
    it never ran, and no email came. The retry now asks the log for it; the export exists and runs."""
    from dataclasses import replace

    from nats.js.api import DiscardPolicy

    bus = gateway.app[BUS]
    info = await bus.js.stream_info(bus.log.stream)
    await bus.js.update_stream(replace(info.config, discard=DiscardPolicy.NEW,
                                       max_bytes=int(info.state.bytes or 0) + 64))
    headers = {**headers_for(), "Idempotency-Key": "retry-after-503"}
    async with asyncio.timeout(20):
        await problem(await gateway.post("/api/export", json={}, headers=headers), 503, "GROVE-EXPORT-008")
    await bus.js.update_stream(info.config)  # room again
    again = await gateway.post("/api/export", json={}, headers=headers)
    assert again.status == 201, await again.text()
    export_id = (await again.json())["exportId"]
    status = await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())
    assert status.status == 200, await status.text()
    assert (await status.json())["status"] == "pending"
    state = (await bus.log.load("tenant_a", export_id)).state
    assert state.exists  # its ExportRequested is in the log: the export runs
    thrice = await gateway.post("/api/export", json={}, headers=headers)
    assert (await thrice.json())["exportId"] == export_id  # and the key still names it



async def test_a_retry_that_requests_the_export_first_leaves_the_first_request_its_answer(
        start_gateway, headers_for, monkeypatch):
    """The retry above appends the ExportRequested when it finds none: with the first request's append
    still on its way (held here), the retry's lands first and the first's then meets an export already
    requested — which is its answer too (201, the same export), not a 500; the log holds one request."""
    first, second = await start_gateway(0), await start_gateway(1)
    held, release = hold_appends(monkeypatch, first)
    headers = {**headers_for(), "Idempotency-Key": "raced-1"}
    original = asyncio.create_task(first.post("/api/export", json={}, headers=headers))
    await asyncio.wait_for(held.wait(), 10)
    retry = await second.post("/api/export", json={}, headers=headers)
    assert retry.status == 201, await retry.text()
    release.set()
    answer = await asyncio.wait_for(original, 10)
    assert answer.status == 201, await answer.text()
    export_id = (await answer.json())["exportId"]
    assert (await retry.json())["exportId"] == export_id
    requests = [e async for _, e in second.app[BUS].log.history("tenant_a", export_id)]
    assert [type(e).__name__ for e in requests] == ["ExportRequested"]


async def test_a_request_whose_export_subjects_hold_no_request_is_a_503_not_a_500(gateway, pipeline, headers_for,
                                                                                     problem, monkeypatch):
    """The request's append (expected sequence 0) was refused because the export's subjects already held
    a message, and the log read back held no request of it: a message every reader drops (any service
    user may publish its own event types on any export's subjects, and a 409 names the reserved export
    to anyone of the tenant), or a replica answering the read back from behind the leader. That raised
    the log's Conflict out of the handler: a 500 GROVE-EXPORT-000. It is the 503 a client retries."""
    log, held, release, export_ids = gateway.app[BUS].log, asyncio.Event(), asyncio.Event(), []
    append = log.append

    async def held_back(event, expected_seq, msg_id=None):
        export_ids.append(event.export_id)
        held.set()
        await release.wait()
        return await append(event, expected_seq, msg_id)

    monkeypatch.setattr(log, "append", held_back)
    request = asyncio.create_task(gateway.post("/api/export", json={}, headers=headers_for()))
    await asyncio.wait_for(held.wait(), 10)
    await pipeline.bus.js.publish(f"exports.tenant_a.{export_ids[0]}.NotificationSent", b"{}")  # dropped by every reader
    release.set()
    await problem(await asyncio.wait_for(request, 10), 503, "GROVE-EXPORT-008")
