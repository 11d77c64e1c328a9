"""The error middleware's log lines hold the path as sent (percent-encoded), never decoded: a decoded
``%0a`` made a line of its own in plain-text logs, ``%1b`` an escape sequence, ``%e2%80%ae`` reversed
what follows — as the download's access line did before fa7b162. Pure: a mocked request."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.gateway.problems import problem_middleware
from shared.objectstore import StoreUnavailable

TARGET = "/api/export/x%0A127.0.0.1%20forged%1B%5B2J%E2%80%AEevil"


@pytest.mark.parametrize("error", [StoreUnavailable("down"), RuntimeError("boom")])
async def test_an_error_is_logged_with_the_path_as_sent(error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise error

    caplog.set_level(logging.WARNING, logger="services.gateway.problems")
    response = await problem_middleware(make_mocked_request("GET", TARGET), handler)
    assert response.status in (500, 503)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and TARGET in lines[0], lines
    assert not any(c in lines[0] for c in "\n\x1b\u202e"), repr(lines[0])
