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


ARCHIVE_KEY = "exports/t1/exp_1/grove-export-zqmarkname-2026-12-05.zip"


@pytest.mark.parametrize("error", [StoreUnavailable(f"503: SlowDown (get grove-exports/{ARCHIVE_KEY})"),
                                   RuntimeError("boom")])
async def test_an_error_on_a_download_is_logged_without_the_archive_name(
        error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    """Seen (an erasure audit): the archive's name, `grove-export-<username>-<date>.zip`, is the
    requester's username, and the gateway's log kept it after `erase-tenant` had removed every other
    copy — in the path of a download that met a store outage, and in the store's error naming the key.
    Both say `exports/<tenant>/<export>/ARCHIVE`; a work object's key is as it is."""
    async def handler(request: web.Request) -> web.StreamResponse:
        raise error

    caplog.set_level(logging.WARNING, logger="services.gateway.problems")
    target = f"/api/export/download/{ARCHIVE_KEY}?exp=1&sig=x"
    await problem_middleware(make_mocked_request("GET", target), handler)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "GET /api/export/download/exports/t1/exp_1/ARCHIVE" in lines[0], lines
    assert "zqmark" not in lines[0], lines
    from shared.core.keys import without_usernames

    work = "exports/t1/exp_1/work/snapshot-ab.jsonl"
    assert without_usernames(f"{work} and {ARCHIVE_KEY}") == f"{work} and exports/t1/exp_1/ARCHIVE"
