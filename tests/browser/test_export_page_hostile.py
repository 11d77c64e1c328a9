"""The export page against answers cut short or malformed, in real Chromium against the real stack
(the answers are the gateway's own models, served by intercepting the page's API calls)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.gateway.schemas import ExportStatus, History, HistoryItem
from tests.browser.live import LiveStack, Seed
from tests.browser.test_export_page import DESKTOP, TERMINAL, accept_link, wait_status

pytestmark = pytest.mark.browser


@pytest.fixture
async def cut_short() -> AsyncIterator[str]:
    """A server whose every answer is a 200 with ``Content-Length: 4096`` and a few bytes of JSON,
    then a closed connection: an answer cut off mid-body (a gateway restarting, a proxy timing out)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"exp")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_an_answer_cut_off_mid_body_is_retried_not_the_end_of_the_page(
        browser: Any, live: LiveStack, seed: Seed, cut_short: str) -> None:
    """Seen: a status poll, a start or a cancel whose answer broke off after its headers left the
    page for good: polling stopped ("Assembling", 40 %, until reloaded), the start button stayed
    "Starting…" and disabled, the cancel button "Cancelling…"."""
    tenant = await seed(images=1)
    now = datetime.now(UTC)
    export_id = "exp_0123456789abcdef01234567"
    status = {"status": "assembling", "cuts": 1}

    def body() -> dict[str, Any]:
        return ExportStatus(export_id=export_id, status=status["status"], progress=40, item_counts={},
                            created_at=now, mode="blog", bytes_done=400, total_bytes=1000, items_done=3,
                            items_total=8, eta_seconds=4.0, error_count=0, notification=None).dump()

    async def serve(route: Any) -> None:
        url, method = route.request.url, route.request.method
        if url.endswith("/api/export/history"):
            item = HistoryItem(export_id=export_id, status=status["status"], mode="blog", file_size=None,
                               created_at=now, expires_at=None)
            await route.fulfill(json=History(exports=[item]).dump())
        elif method == "POST" or status["cuts"] > 0:  # cut off once per status, and every start or cancel
            status["cuts"] -= method != "POST"
            await route.continue_(url=f"{cut_short}/cut")
        else:
            await route.fulfill(json=body())

    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.route("**/api/export/**", serve)
    await page.route("**/api/export", serve)
    await page.goto(live.page_url(tenant.token))
    await accept_link(page, tenant)
    await page.wait_for_selector(f"#current[data-export-id='{export_id}']")
    # the first poll broke off: the page says so and asks again, and follows the export to its end
    await page.wait_for_function("() => document.getElementById('percent').textContent === '40 %'", timeout=15000)
    await page.click("#cancel-button")  # its answer breaks off too: the button is usable again
    await page.wait_for_function(
        "() => document.getElementById('cancel-button').textContent === 'Cancel export'", timeout=15000)
    assert "try again" in (await page.locator("#message").inner_text()).lower()
    status["status"] = "cancelled"
    assert await wait_status(page, TERMINAL, 15) == "cancelled"
    await page.click("#start-button")  # a start whose answer breaks off: said, and the button comes back
    await page.wait_for_function("() => document.getElementById('message').dataset.code === '0'", timeout=15000)
    assert "could not reach" in (await page.locator("#message").inner_text()).lower()
    assert await page.locator("#start-button").inner_text() == "Start export"
    assert await page.locator("#start-button").is_enabled()
    await context.close()


async def test_a_token_pasted_before_the_script_runs_never_goes_into_a_url(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """Before export.js has run (a slow network: it is deferred; a script blocker; a failed load) the
    token form is a plain HTML form. Seen: Enter in it sent GET /export?token=<the bearer token>: in
    the address bar and history, and in the gateway's access log line ("GET /export?token=eyJ…")."""
    from pathlib import Path

    tenant = await seed(images=1)
    context = await browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = await context.new_page()
    await page.goto(f"{live.base_url}/export")
    await page.fill("#token", tenant.token)
    async with page.expect_navigation():
        await page.press("#token", "Enter")
    assert tenant.token not in page.url
    secret = tenant.token.rsplit(".", 1)[-1]
    logs = "".join(Path(c.log_path).read_text() for c in live.stack.children if Path(c.log_path).exists())
    assert secret not in logs
    await context.close()


@pytest.fixture
async def stalls() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that sends a 200's headers and the first byte of its body, then nothing (a hostile or
    wedged proxy); the event is set once a request has reached it."""
    reached, done = asyncio.Event(), asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{")
        await writer.drain()
        reached.set()
        await done.wait()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", reached
    finally:
        done.set()
        server.close()
        await server.wait_closed()


async def test_an_answer_that_stalls_mid_body_is_given_up_and_asked_again(
        browser: Any, live: LiveStack, seed: Seed, stalls: tuple[str, asyncio.Event]) -> None:
    """Seen: a status answer whose body stopped coming after its first byte held the page for good:
    no timeout, so the poll never ended and the next was never asked ("Pending" and 0 %)."""
    url, reached = stalls
    tenant = await seed(images=1)
    now = datetime.now(UTC)
    export_id = "exp_0123456789abcdef01234567"
    calls = {"status": 0}

    async def serve(route: Any) -> None:
        if route.request.url.endswith("/api/export/history"):
            item = HistoryItem(export_id=export_id, status="assembling", mode="blog", file_size=None,
                               created_at=now, expires_at=None)
            await route.fulfill(json=History(exports=[item]).dump())
            return
        calls["status"] += 1
        if calls["status"] == 1:
            await route.continue_(url=f"{url}/stall")
            return
        await route.fulfill(json=ExportStatus(
            export_id=export_id, status="assembling", progress=40, item_counts={}, created_at=now, mode="blog",
            bytes_done=400, total_bytes=1000, items_done=3, items_total=8, eta_seconds=4.0, error_count=0,
            notification=None).dump())

    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.clock.install()
    await page.route("**/api/export/**", serve)
    await page.goto(live.page_url(tenant.token))
    await accept_link(page, tenant)
    await asyncio.wait_for(reached.wait(), 15)
    await page.clock.fast_forward(60_000)  # a minute with no more of the answer
    await page.clock.fast_forward(5_000)  # then the retry's own wait
    await page.wait_for_function("() => document.getElementById('percent').textContent === '40 %'", timeout=15000)
    await context.close()


async def test_a_token_with_characters_no_token_has_is_said_to_be_wrong_not_a_lost_connection(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """A token copied cut short from a terminal ends in "…"; fetch refuses a header holding it before
    anything is sent. Seen: "Could not load your recent exports (no connection)." for a token the
    gateway would have answered with a 401."""
    tenant = await seed(images=1)
    for bad in (tenant.token[:40] + "\u2026", tenant.token[:20] + " " + tenant.token[20:]):
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await page.goto(f"{live.base_url}/export")
        await page.wait_for_selector("html[data-ready='true']", state="attached")
        await page.fill("#token", bad)
        await page.press("#token", "Enter")
        await page.wait_for_function("() => document.getElementById('message').dataset.code === '401'",
                                     timeout=15000)
        text = await page.locator("#message").inner_text()
        assert "not accepted" in text and "connection" not in (await page.locator("#history").inner_text()), text
        await context.close()
