"""One middleware maps every error to application/problem+json with a GROVE-EXPORT code."""

from __future__ import annotations

import nats.errors
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.problems import ExportInProgress, problem_middleware
from shared.eventlog.jetstream import LogUnavailable
from shared.objectstore.port import StoreUnavailable

RAISES = {"store": StoreUnavailable("down"), "log": LogUnavailable("no ack"), "nats": nats.errors.TimeoutError(),
          "closed": nats.errors.ConnectionClosedError(), "busy": ExportInProgress("busy", activeExportId="exp_1"),
          "bug": RuntimeError("boom"), "forbidden": web.HTTPForbidden()}


@pytest.fixture
async def client():
    async def handler(request: web.Request) -> web.Response:
        raise RAISES[request.match_info["what"]]

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/raise/{what}", handler)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("what", ["store", "log", "nats", "closed"])
async def test_infrastructure_errors_become_503_unavailable(client, what):
    resp = await client.get(f"/raise/{what}")
    assert resp.status == 503 and resp.content_type == "application/problem+json"
    assert (await resp.json(content_type=None))["code"] == "GROVE-EXPORT-008"


async def test_problems_carry_their_extras(client):
    body = await (await client.get("/raise/busy")).json(content_type=None)
    assert body["code"] == "GROVE-EXPORT-002" and body["activeExportId"] == "exp_1" and body["status"] == 409


async def test_unknown_routes_and_methods_are_problems_too(client):
    missing = await client.get("/nowhere")
    assert missing.status == 404 and (await missing.json(content_type=None))["code"] == "GROVE-EXPORT-005"
    wrong = await client.post("/raise/store")
    assert wrong.status == 405 and wrong.content_type == "application/problem+json" and "GET" in wrong.headers["Allow"]


async def test_a_bug_is_a_500_problem_without_details(client):
    resp = await client.get("/raise/bug")
    assert resp.status == 500 and "boom" not in await resp.text()


async def test_a_forbidden_answer_is_a_404_problem_not_an_internal_error(client):
    # aiohttp's static route answers GET /export/ (a folder) with HTTPForbidden: it names nothing
    resp = await client.get("/raise/forbidden")
    body = await resp.json(content_type=None)
    assert resp.status == 404 and resp.content_type == "application/problem+json"
    assert (body["code"], body["title"]) == ("GROVE-EXPORT-005", "Not found") and "internal" not in body["type"]
