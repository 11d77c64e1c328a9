"""The /export page in real Chromium against the real stack: start, progress, download, cancel,
409 and 429, history, 401, a 320 px screen and the keyboard."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest

from services.gateway.auth import make_token
from services.operator.actions import Who, unlock
from shared.bus.connect import connect
from tests.browser.live import LiveStack, Seed, Tenant
from tests.support.wait import until

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1000, "height": 800}
NARROW = {"width": 320, "height": 640}
TERMINAL = ("complete", "failed", "cancelled", "expired")


async def accept_link(page: Any, tenant: Tenant) -> None:
    """Say the account a #token= link shows is ours: the page uses a link's token only once told so."""
    await page.get_by_role("button", name=f"Continue as {tenant.username}").click()
    await page.get_by_text(f"Signed in as {tenant.username}").wait_for()


async def open_page(browser: Any, live: LiveStack, tenant: Tenant | None, viewport: dict[str, int] = DESKTOP,
                    token: str | None = None, **context_args: Any) -> Any:
    """The page opened with ``#token=…`` in a tab of its own, the link's account confirmed (its one question)."""
    context = await browser.new_context(viewport=viewport, accept_downloads=True, **context_args)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(live.page_url(token if token is not None else tenant.token if tenant else ""))
    try:
        await page.wait_for_selector("html[data-ready='true']", state="attached", timeout=15000)
    except Exception:
        raise AssertionError(f"the page did not start: {problems}") from None
    if tenant is not None and token is None:
        await accept_link(page, tenant)
    elif token:
        await page.get_by_role("button", name="Use this token").click()  # a token that names nobody
    return page


def no_page_errors(page: Any, allowed: tuple[str, ...] = ()) -> None:
    bad = [p for p in page.problems if not any(a in p for a in allowed)]
    assert not bad, bad


async def current_status(page: Any) -> str | None:
    return await page.get_attribute("#current", "data-status")


async def wait_status(page: Any, statuses: tuple[str, ...], timeout_s: float = 90) -> str:
    await page.wait_for_function(
        "want => want.includes(document.getElementById('current').dataset.status)", arg=list(statuses),
        timeout=timeout_s * 1000)
    status = await current_status(page)
    assert status is not None
    return status


async def value_now(page: Any) -> int:
    return int(await page.get_attribute("#progress", "aria-valuenow") or "-1")


async def scroll_width(page: Any) -> int:
    return int(await page.evaluate("document.scrollingElement.scrollWidth"))


async def api(live: LiveStack, tenant: Tenant, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {tenant.token}"}
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{live.base_url}{path}", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def api_wait(live: LiveStack, tenant: Tenant, export_id: str, statuses: tuple[str, ...],
                   timeout_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, view = await api(live, tenant, "GET", f"/api/export/status/{export_id}")
        assert status == 200, view
        if view["status"] in statuses:
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"{export_id} did not reach {statuses}: {view}")


def check_archive(data: bytes, sha256: str) -> zipfile.ZipFile:
    assert hashlib.sha256(data).hexdigest() == sha256
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    manifest = json.loads(archive.read("manifest.json"))
    for member in manifest["members"]:
        assert hashlib.sha256(archive.read(member["path"])).hexdigest() == member["sha256"], member["path"]
    return archive


async def test_start_by_clicking_watch_progress_to_100_and_download_the_verified_archive(
        browser: Any, live: LiveStack, seed: Seed, screenshots: Path) -> None:
    tenant = await seed(images=32)
    page = await open_page(browser, live, tenant, permissions=["clipboard-read", "clipboard-write"])
    assert "token=" not in page.url, "the token must leave the address bar once read"
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == tenant.token
    await page.get_by_text(f"Signed in as {tenant.username}").wait_for()

    # The form: labelled controls; images do not apply to storage exports.
    images = page.get_by_label("Include images")
    await page.get_by_label("Storage").check()
    assert await images.is_disabled()
    await page.get_by_label("Blog").check()
    assert await images.is_enabled() and await images.is_checked()
    await page.get_by_label("I will download it from this page").check()

    await page.get_by_role("button", name="Start export").click()
    bar = page.get_by_role("progressbar")
    await bar.wait_for()
    assert await bar.get_attribute("aria-valuemin") == "0" and await bar.get_attribute("aria-valuemax") == "100"
    assert await page.get_by_role("button", name="Start export").is_disabled()  # one export at a time

    seen: list[int] = []
    shot_running = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, value = await current_status(page), await value_now(page)
        if not seen or seen[-1] != value:
            seen.append(value)
        if not shot_running and status == "assembling" and 20 <= value <= 80:
            assert "percent" in (await bar.get_attribute("aria-valuetext") or "")
            assert "of" in await page.locator("#items").inner_text()
            await page.wait_for_function("() => document.getAnimations().length === 0")  # the bar has caught up
            await page.screenshot(path=str(screenshots / "export-running.png"))
            shot_running = True
        if status in TERMINAL:
            break
        await asyncio.sleep(0.05)
    assert await current_status(page) == "complete", seen
    assert shot_running, f"never saw the export mid-assembly: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert seen[-1] == 100 and any(10 < v < 100 for v in seen), seen
    assert (await bar.get_attribute("aria-valuetext") or "").startswith("100 percent")
    assert await page.locator("#percent").inner_text() == "100 %"

    # The result: link, size, SHA-256 (copyable), expiry; history lists it with its own link.
    sha = (await page.locator("#sha256").inner_text()).strip()
    assert len(sha) == 64 and int(sha, 16) >= 0
    expires = page.locator("#expires time")
    assert await expires.get_attribute("datetime")
    assert "MB" in await page.locator("#size").inner_text() or "KB" in await page.locator("#size").inner_text()
    await page.get_by_role("button", name="Copy SHA-256").click()
    await page.get_by_role("button", name="Copied SHA-256").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == sha
    await page.locator("#history-list a.history-download").first.wait_for()
    await page.get_by_role("button", name="Copy SHA-256").wait_for()  # "Copied" is back to "Copy"
    await page.mouse.move(0, 0)
    await page.wait_for_function("() => document.getAnimations().length === 0")
    await page.screenshot(path=str(screenshots / "export-complete.png"))

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Download archive").click()
    download = await info.value
    data = Path(await download.path()).read_bytes()
    archive = check_archive(data, sha)
    assert download.suggested_filename.startswith(f"grove-export-{tenant.username}-")
    assert sum(n.startswith("media/") for n in archive.namelist()) == tenant.images

    # The server agrees with what the page showed.
    export_id = await page.get_attribute("#current", "data-export-id")
    status, view = await api(live, tenant, "GET", f"/api/export/status/{export_id}")
    assert status == 200 and view["sha256"] == sha and view["sizeBytes"] == len(data)

    # A reload (or the link in the email) shows the same finished export with all it has.
    await page.reload()
    await page.wait_for_selector("html[data-ready='true']", state="attached")
    await expect_complete_panel(page, live, view, title="Your latest export")
    no_page_errors(page)
    await page.context.close()


async def expect_complete_panel(page: Any, live: LiveStack, view: dict[str, Any], title: str) -> None:
    """The panel shows everything the status API says about a complete export."""
    await page.wait_for_selector(f"#current[data-export-id='{view['exportId']}'][data-status='complete']")
    assert await page.locator("#current-title").inner_text() == title
    assert await page.locator("#current-status").inner_text() == "Complete"
    assert await page.locator("#sha256").inner_text() == view["sha256"]
    assert await page.get_by_role("button", name="Copy SHA-256").is_visible()
    assert view["fileSize"] in await page.locator("#size").inner_text()
    assert f"{view['sizeBytes']:,}" in await page.locator("#size").inner_text()
    assert await page.locator("#expires time").get_attribute("datetime") == view["expiresAt"]
    errors = await page.locator("#errors").inner_text()
    assert errors.startswith("Nothing") if view["errorCount"] == 0 else errors.startswith(str(view["errorCount"]))
    href = await page.get_by_role("link", name=f"Download archive ({view['fileSize']})").get_attribute("href")
    assert href and href.startswith(f"{live.base_url}/api/export/download/")
    assert await page.locator("#announce").inner_text() == ""  # showing it again is not news


async def test_cancel_a_running_export_from_the_page(browser: Any, live: LiveStack, seed: Seed) -> None:
    tenant = await seed(images=40)
    page = await open_page(browser, live, tenant)
    await page.get_by_role("button", name="Start export").click()
    await wait_status(page, ("assembling",), 60)
    await page.wait_for_function("() => Number(document.getElementById('progress').getAttribute('aria-valuenow')) > 10")
    await page.get_by_role("button", name="Cancel export").click()
    assert await wait_status(page, TERMINAL, 60) == "cancelled"
    assert await page.locator("#current-status").inner_text() == "Cancelled"
    result = await page.locator("#result-text").inner_text()
    assert "cancelled" in result.lower()
    # A cancelled export counts toward the rate limit (README, Admission): the page must not promise
    # a new one at once (it said "you can start a new one", and Start then got the 429).
    assert "start a new one" not in result and "counts toward" in result, result
    assert "cancelled" in (await page.get_attribute("#progress", "aria-valuetext") or "")
    assert not await page.get_by_role("button", name="Cancel export").is_visible()
    assert not await page.locator("#download-row").is_visible()
    assert await page.get_by_role("button", name="Start export").is_enabled()
    assert 10 < await value_now(page) < 100

    export_id = await page.get_attribute("#current", "data-export-id")
    status, view = await api(live, tenant, "GET", f"/api/export/status/{export_id}")
    assert status == 200 and view["status"] == "cancelled" and "downloadUrl" not in view
    row = page.locator(f"#history-list li[data-export-id='{export_id}']")
    await row.wait_for()
    assert await row.get_attribute("data-status") == "cancelled"
    no_page_errors(page)
    await page.context.close()


async def test_a_second_start_shows_the_export_in_progress_and_jumps_to_it(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    tenant = await seed(images=40)
    first = await open_page(browser, live, tenant)
    second = await open_page(browser, live, tenant)  # another tab, opened before the first starts
    await first.get_by_role("button", name="Start export").click()
    await first.wait_for_selector("#current[data-export-id]")
    active = await first.get_attribute("#current", "data-export-id")
    # Once this export has finished a new one is a 429 for the rest of the window (README, Admission):
    # neither the hint under Start nor the 409 below may promise one "when it has finished".
    hint = first.locator("#start-hint")
    await hint.wait_for()
    assert "finished" not in await hint.inner_text() and "is limited" in await hint.inner_text()

    await second.get_by_role("button", name="Start export").click()
    message = second.locator("#message[data-code='409']")
    await message.wait_for()
    text = await message.inner_text()
    assert "already in progress" in text and active in text
    assert "when it has finished" not in text, text
    assert await second.locator("#message").get_attribute("aria-live") == "polite"
    assert await second.locator("#current").is_hidden()
    await second.locator(f"#history-list li[data-export-id='{active}']").get_by_role("button").wait_for()

    await second.get_by_role("button", name="Show the active export").click()
    await second.wait_for_selector(f"#current[data-export-id='{active}']")
    await second.get_by_role("progressbar").wait_for()
    assert await wait_status(second, ("cataloging", "assembling", "uploading", *TERMINAL)) != "failed"
    await second.get_by_role("button", name="Cancel export").click()  # from the second tab
    assert await wait_status(second, TERMINAL, 60) == "cancelled"
    assert await wait_status(first, TERMINAL, 60) == "cancelled"  # the first tab follows by polling
    no_page_errors(first)
    no_page_errors(second, allowed=("409",))  # the browser logs the refused POST itself
    await first.context.close()
    await second.context.close()


async def test_a_start_whose_answer_was_lost_follows_its_export_when_clicked_again(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """The gateway started the export but its answer never reached the page (the connection dropped):
    the person clicks Start again. The page sent a new Idempotency-Key (none at all) each time, so the
    second click was a 409 naming the export the first had reserved — and "Show the active export" for
    one whose request never reached the log said it could not be found. A lost answer is now asked
    again with the same key: the gateway answers with the export the first click started."""
    tenant = await seed(images=0)
    page = await open_page(browser, live, tenant)
    sent: list[dict[str, str]] = []
    first: dict[str, Any] = {}

    async def lose_the_answer(route: Any) -> None:
        if route.request.method != "POST" or first:
            await route.continue_()
            return
        answer = await route.fetch()  # the gateway takes it and starts the export
        first.update(await answer.json())
        await route.abort("connectionreset")  # and the answer is lost on its way back

    page.on("request", lambda r: sent.append(r.headers) if r.method == "POST" and r.url.endswith("/api/export") else None)
    await page.route("**/api/export", lose_the_answer)
    start = page.get_by_role("button", name="Start export")
    await start.click()
    await page.wait_for_selector("#message[data-code='0']")  # "Could not reach the export service…"
    assert first.get("exportId"), first
    await start.click()
    await page.wait_for_selector(f"#current[data-export-id='{first['exportId']}']")
    assert await page.locator("#message[data-code='409']").count() == 0
    keys = [h.get("idempotency-key") for h in sent]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys
    assert [h.get("content-type") for h in sent] == ["application/json"] * 2, sent  # what the gateway reads (415 else)
    assert await wait_status(page, TERMINAL, 60) == "complete"
    status, history = await api(live, tenant, "GET", "/api/export/history")
    assert status == 200 and [e["exportId"] for e in history["exports"]] == [first["exportId"]], history
    no_page_errors(page, allowed=("ERR_CONNECTION_RESET", "Failed to load resource"))
    await page.context.close()


async def test_a_lost_start_is_repeated_with_its_key_only_for_a_minute(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """The gateway honours an Idempotency-Key for 24 h: a key kept for good would, an hour later, be
    answered with the old export instead of starting a new one (found by the review of 3fb99a0). A
    retry within a minute repeats the lost start's key; a start after that has a key of its own."""
    tenant = await seed(images=0)
    page = await open_page(browser, live, tenant)
    await page.clock.install()
    keys: list[str | None] = []

    async def unavailable(route: Any) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key"))
        await route.fulfill(status=503, content_type="application/problem+json",
                            body=json.dumps({"title": "Unavailable", "status": 503, "code": "GROVE-EXPORT-008",
                                             "detail": "The export service is slow right now; try again."}))

    await page.route("**/api/export", unavailable)
    start = page.get_by_role("button", name="Start export")
    for _ in (1, 2):
        await start.click()
        await page.wait_for_selector("#message[data-code='503']")
        await page.wait_for_selector("#start-button:not([disabled])")
    await page.clock.fast_forward(61_000)
    await start.click()
    async def third_sent() -> bool:
        return len(keys) >= 3

    await until(third_sent, 10, 0.02, "the third start's POST")
    assert len(keys) == 3 and keys[0] and keys[0] == keys[1] and keys[2] and keys[2] != keys[0], keys
    no_page_errors(page, allowed=("503",))
    await page.context.close()


async def test_history_lists_finished_exports_with_download_links_and_429_says_when(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    tenant = await seed(images=20)
    # Two exports through the public API: one cancelled, one complete.
    status, created = await api(live, tenant, "POST", "/api/export", {"deliveryMethod": "download"})
    assert status == 201, created
    cancelled_id = created["exportId"]
    status, body = await api(live, tenant, "POST", f"/api/export/cancel/{cancelled_id}")
    assert status == 200, body
    await api_wait(live, tenant, cancelled_id, TERMINAL)
    # A cancelled export uses up the hour too (issue 14): an operator frees the tenant, through the log.
    status, body = await api(live, tenant, "POST", "/api/export", {"deliveryMethod": "download"})
    assert status == 429, body
    bus = await connect(live.settings, "test-operator")
    try:
        await unlock(bus, live.settings, tenant.tenant_id, Who("browser-test", "a second export for the history"))
    finally:
        await bus.close()
    status, created = await api(live, tenant, "POST", "/api/export", {"deliveryMethod": "download"})
    assert status == 201, created
    complete_id = created["exportId"]
    view = await api_wait(live, tenant, complete_id, TERMINAL)
    assert view["status"] == "complete", view

    page = await open_page(browser, live, tenant)
    rows = page.locator("#history-list > li")
    await page.locator("#history-list a.history-download").first.wait_for()
    assert await rows.count() == 2
    assert [await r.get_attribute("data-export-id") for r in await rows.all()] == [complete_id, cancelled_id]
    done = page.locator(f"#history-list li[data-export-id='{complete_id}']")
    assert "Complete" in await done.inner_text() and view["fileSize"] in await done.inner_text()
    link = done.get_by_role("link", name="Download")
    href = await link.get_attribute("href")
    assert href and href.startswith(f"{live.base_url}/api/export/download/")
    got = await page.request.get(href)
    assert got.status == 200 and got.headers["content-type"] == "application/zip"
    check_archive(await got.body(), view["sha256"])
    gone = page.locator(f"#history-list li[data-export-id='{cancelled_id}']")
    assert "Cancelled" in await gone.inner_text()
    assert await gone.get_by_role("link").count() == 0

    # Opened afresh, the page shows the latest export in full; Details shows any row in full.
    await expect_complete_panel(page, live, view, title="Your latest export")
    await gone.get_by_role("button", name="Details").click()
    await page.wait_for_selector(f"#current[data-export-id='{cancelled_id}'][data-status='cancelled']")
    assert await page.evaluate("document.activeElement.id") == "current-title"
    assert "cancelled" in (await page.locator("#result-text").inner_text()).lower()
    assert not await page.locator("#download-row").is_visible() and not await page.locator("#sha-row").is_visible()
    await done.get_by_role("button", name="Details").click()
    await expect_complete_panel(page, live, view, title=await page.locator("#current-title").inner_text())
    assert (await page.locator("#current-title").inner_text()).startswith("Blog export of ")

    # A complete export uses up the hour: the page says when the next one may start, in local time.
    await page.get_by_role("button", name="Start export").click()
    message = page.locator("#message[data-code='429']")
    await message.wait_for()
    assert "one new export per hour. you have already started one in that time." in \
        (await message.inner_text()).lower()
    shown = page.locator("#next-allowed")
    at = await shown.get_attribute("datetime")
    status, problem = await api(live, tenant, "POST", "/api/export", {})
    assert status == 429 and problem["code"] == "GROVE-EXPORT-003" and problem["nextAllowedAt"] == at
    local = await page.evaluate(
        "at => new Intl.DateTimeFormat(undefined, {timeStyle: 'short'}).format(new Date(at))", at)
    assert local in await shown.inner_text()
    assert await page.locator("#current").get_attribute("data-export-id") == complete_id  # still shown
    no_page_errors(page, allowed=("429",))
    await page.context.close()


async def tab_to(page: Any, element_id: str, limit: int = 30) -> int:
    for presses in range(1, limit + 1):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return presses
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_at_320_px_nothing_scrolls_sideways_and_the_keyboard_starts_and_cancels(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    tenant = await seed(images=8)
    page = await open_page(browser, live, tenant, viewport=NARROW)
    assert await scroll_width(page) <= 320

    await tab_to(page, "start-button")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "keyboard focus must be visible"
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#current[data-export-id]")
    assert await page.evaluate("document.activeElement.id") == "current-title"  # focus follows the export
    await wait_status(page, ("assembling", "uploading", *TERMINAL), 60)
    assert await scroll_width(page) <= 320
    assert await wait_status(page, TERMINAL, 120) == "complete"
    await page.locator("#history-list a.history-download").first.wait_for()
    assert await scroll_width(page) <= 320, "the SHA-256, the download button and history must wrap"
    box = await page.locator("#sha256").bounding_box()
    assert box and box["x"] + box["width"] <= 320
    no_page_errors(page)
    await page.context.close()

    # Space works too: a second tenant starts with Space and cancels with Space.
    other = await seed(images=40, username="birch")
    page = await open_page(browser, live, other, viewport=NARROW)
    await tab_to(page, "start-button")
    await page.keyboard.press(" ")
    await page.wait_for_selector("#current[data-export-id]")
    await wait_status(page, ("cataloging", "assembling"), 60)
    await tab_to(page, "cancel-button", limit=5)
    await page.keyboard.press(" ")
    assert await wait_status(page, TERMINAL, 60) == "cancelled"
    assert await page.evaluate("document.activeElement.id") == "current-title"  # focus is not lost
    assert await scroll_width(page) <= 320
    no_page_errors(page)
    await page.context.close()


async def test_accessibility_basics_a_rejected_token_and_reduced_motion(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    tenant = await seed(images=2)
    page = await open_page(browser, live, tenant, reduced_motion="reduce")
    unlabelled = await page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && e.labels.length === 0).map(e => e.id || e.name)""")
    assert unlabelled == []
    radios_outside_fieldsets = await page.evaluate("""() => [...document.querySelectorAll('input[type=radio]')]
        .filter(r => !r.closest('fieldset') || !r.closest('fieldset').querySelector('legend')).length""")
    assert radios_outside_fieldsets == 0
    assert await page.locator("[aria-live='polite']#message").count() == 1
    bar = page.locator("#progress")
    assert await bar.get_attribute("role") == "progressbar"
    assert await page.evaluate("getComputedStyle(document.getElementById('progress-fill')).transitionDuration") == "0s"
    external = await page.evaluate("""() => [...document.querySelectorAll('link[href], script[src], img[src]')]
        .map(e => e.href || e.src).filter(u => !u.startsWith(location.origin) && !u.startsWith('data:'))""")
    assert external == []
    await page.context.close()

    page = await open_page(browser, live, None, token="")
    assert await page.locator("#history-empty").inner_text() == "Paste your access token above to see your exports."
    assert await page.get_by_label("Access token").is_visible()
    await page.context.close()

    page = await open_page(browser, live, None, token="not-a-real-token")
    message = page.locator("#message[data-code='401']")
    await message.wait_for()
    assert "not accepted" in await message.inner_text()
    assert await page.locator("#history-empty").inner_text() == "Paste your access token above to see your exports."
    assert await page.get_by_label("Access token").is_visible()
    assert await page.evaluate("document.activeElement.id") == "token"
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") is None
    # Pasting a good token recovers without a reload.
    await page.get_by_label("Access token").fill(tenant.token)
    await page.get_by_role("button", name="Use token").click()
    await page.get_by_text(f"Signed in as {tenant.username}").wait_for()
    await page.get_by_text("No exports yet.").wait_for()
    assert await page.locator("#message").inner_text() == ""
    # The same tab opened with another #token= link: only the fragment changes; the page asks
    # before switching identities (the person says yes here), and the gateway refuses the link's
    # token before it replaces theirs: they are told so and stay signed in.
    await page.goto(live.page_url("expired-or-wrong"))
    await page.get_by_role("button", name="Use this token").click()
    await page.get_by_text("You are still signed in as before.").wait_for()
    assert "not accepted" in await page.locator("#message").inner_text()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == tenant.token
    assert not await page.get_by_label("Access token").is_visible()
    assert "token=" not in page.url
    no_page_errors(page, allowed=("401",))
    await page.context.close()


async def test_failure_reason_email_notice_and_error_count_are_shown(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """States the local stack cannot be driven into on demand (a failed step, an SMTP outage), served
    to the real page by intercepting its API calls; the bodies come from the gateway's own models."""
    from datetime import UTC, datetime, timedelta

    from services.gateway.schemas import ExportStatus, History, HistoryItem
    from services.gateway.views import EMAIL_NOTICE

    tenant = await seed(images=1)
    now = datetime.now(UTC)
    export_id = "exp_0123456789abcdef01234567"
    shown: dict[str, Any] = {}

    def status_body(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = dict(export_id=export_id, status="assembling", progress=40,
                                    item_counts={"posts": 3, "pages": 1, "images": 2}, created_at=now, mode="blog",
                                    bytes_done=400, total_bytes=1000, items_done=3, items_total=8, eta_seconds=4.0,
                                    error_count=0, notification=None)
        return ExportStatus(**(base | fields)).dump()

    async def serve(route: Any) -> None:
        url = route.request.url
        if url.endswith("/api/export/history"):
            item = HistoryItem(export_id=export_id, status=shown["status"], mode="blog", file_size=None,
                               created_at=now, expires_at=None)
            await route.fulfill(json=History(exports=[item]).dump())
        else:
            await route.fulfill(json=shown)

    async def open_with(body: dict[str, Any]) -> Any:
        shown.clear()
        shown.update(body)
        context = await browser.new_context(viewport=DESKTOP)
        page = await context.new_page()
        await page.route("**/api/export/history", serve)
        await page.route("**/api/export/status/*", serve)
        await page.goto(live.page_url(tenant.token))
        await accept_link(page, tenant)
        return page

    failed = status_body(status="failed", error="the catalog could not read posts after 4 attempts",
                         notification="failed", notice="We could not send the email about this export.",
                         eta_seconds=None)
    failed["status"] = "assembling"  # the history says running: the page resumes following it
    page = await open_with(failed)
    await page.wait_for_selector(f"#current[data-export-id='{export_id}']")
    shown["status"] = "failed"
    assert await wait_status(page, TERMINAL, 10) == "failed"
    assert "could not read posts after 4 attempts" in await page.locator("#failure").inner_text()
    assert await page.locator("#notice").inner_text() == "We could not send the email about this export."
    assert not await page.locator("#download-row").is_visible()
    await page.context.close()

    complete = status_body(status="complete", progress=100, eta_seconds=None, error_count=2, notification="failed",
                           download_url=f"{live.base_url}/api/export/download/x?exp=1&sig=0", file_size="1.2 MB",
                           size_bytes=1_234_567, expires_at=now + timedelta(days=7), sha256="ab" * 32,
                           notice=EMAIL_NOTICE)
    complete["status"] = "uploading"
    page = await open_with(complete)
    await page.wait_for_selector(f"#current[data-export-id='{export_id}']")
    shown["status"] = "complete"
    assert await wait_status(page, TERMINAL, 10) == "complete"
    assert await page.locator("#notice").inner_text() == EMAIL_NOTICE
    assert (await page.locator("#errors").inner_text()).startswith("2 items could not be included")
    assert await page.locator("#sha256").inner_text() == "ab" * 32
    assert await page.get_by_role("link", name="Download archive (1.2 MB)").get_attribute("href") == \
        complete["downloadUrl"]
    await page.context.close()


async def test_a_token_link_for_someone_else_asks_before_switching(browser: Any, live: LiveStack, seed: Seed) -> None:
    me, other = await seed(images=1, username="autumn"), await seed(images=1, username="birch")
    page = await open_page(browser, live, me)
    who, offer = page.locator("#who"), page.locator("#offer")
    assert "autumn" in await who.inner_text()

    await page.evaluate("t => { location.hash = 'token=' + t }", other.token)
    await offer.wait_for()
    asked = await page.locator("#offer-title").inner_text()
    assert "birch" in asked and "autumn" in asked, asked
    assert other.email in await offer.inner_text() and other.tenant_id in await offer.inner_text()
    assert "token=" not in page.url
    await page.get_by_role("button", name="Don't use this link").click()
    assert not await offer.is_visible()
    assert "autumn" in await who.inner_text() and "birch" not in await who.inner_text()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == me.token

    await page.evaluate("t => { location.hash = 'token=' + t }", other.token)
    await page.get_by_role("button", name="Continue as birch").click()
    await page.wait_for_function("() => document.getElementById('who').textContent.includes('birch')")
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == other.token

    await page.evaluate("t => { location.hash = 'token=' + t }", other.token)  # the same identity: no question
    await page.wait_for_function("() => !location.hash.includes('token=')")
    assert not await offer.is_visible() and "birch" in await who.inner_text()
    no_page_errors(page)
    await page.context.close()


async def test_a_token_link_in_a_tab_with_nobody_signed_in_is_shown_and_used_only_once_confirmed(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """Login CSRF (found by an HTTP attacker review): the token lives per tab, so a #token= link opened in
    a new tab, where nobody is signed in yet, signed in silently. Someone could send a link carrying
    their OWN token; the person opening it saw "Signed in as …" and a history, took it for their own
    account and started exports (with their choices) in the sender's. A link's token is now shown —
    whose it is — and used only once the person says so."""
    attacker = await seed(images=1, username="mallory")
    context = await browser.new_context(viewport=NARROW)
    page = await context.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.headers.get("authorization") else None)
    await page.goto(live.page_url(attacker.token))
    await page.wait_for_selector("html[data-ready='true']", state="attached", timeout=15000)
    assert "token=" not in page.url

    offer = page.locator("#offer")
    try:
        await offer.wait_for(timeout=5000)
    except Exception:
        who = await page.locator("#who").inner_text()
        stored = await page.evaluate("sessionStorage.getItem('grove-export-token')")
        raise AssertionError(f"no confirmation asked: who={who!r}, token stored={stored is not None}, "
                             f"requests with the link's token={sent}") from None
    text = await offer.inner_text()
    assert attacker.username in text and attacker.email in text and attacker.tenant_id in text, text
    assert not await page.locator("#signed-in").is_visible()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") is None
    assert sent == [], "the link's token was used before the person said so"
    assert await page.locator("#history-list > li").count() == 0
    assert await scroll_width(page) <= 320

    # Not theirs: the page forgets the link's token and asks for one; it was never sent.
    await page.get_by_role("button", name="Don't use this link").click()
    await page.get_by_label("Access token").wait_for()
    assert not await offer.is_visible()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") is None
    await page.reload()
    await page.wait_for_selector("html[data-ready='true']", state="attached")
    assert await page.get_by_label("Access token").is_visible() and not await offer.is_visible()
    assert sent == [], sent
    await context.close()

    # The README's quick start: its own link, one confirmation, then everything works (and a reload
    # of the signed-in tab asks nothing more).
    me = await seed(images=1, username="autumn")
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.problems = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    await page.goto(live.page_url(me.token))
    offer = page.locator("#offer")
    await page.get_by_role("button", name=f"Continue as {me.username}").click()
    await page.get_by_text(f"Signed in as {me.username}").wait_for()
    await page.get_by_text("No exports yet.").wait_for()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == me.token
    assert not await offer.is_visible()
    await page.reload()
    await page.wait_for_selector("html[data-ready='true']", state="attached")
    await page.get_by_text(f"Signed in as {me.username}").wait_for()
    assert not await offer.is_visible() and dialogs == []
    no_page_errors(page)
    await context.close()


async def test_a_token_link_for_the_same_identity_is_used_only_once_the_gateway_takes_it(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """Forced sign-out (found by an HTTP attacker review): a #token= link whose token names the identity
    signed in (tenant, sub, email, read from the token unverified) replaced the working token at once.
    An old link's expired token, or one anybody made up with the person's tenant, user id and email
    (signed with any key), was then refused with a 401, and the page forgot the person's token: one
    link, and they were signed out. Now such a token is used only once the gateway has accepted it."""
    me = await seed(images=1, username="autumn")
    page = await open_page(browser, live, me)
    await page.get_by_text("No exports yet.").wait_for()
    claims = jwt.decode(me.token, options={"verify_signature": False})
    made_up = jwt.encode({**claims, "exp": claims["exp"] + 60}, "not the gateway's key" * 2, algorithm="HS256")
    expired = make_token(live.settings, tenant=me.tenant_id, user=claims["sub"], email=me.email,
                         username=me.username, ttl_s=-60)
    for token in (made_up, expired):
        await page.evaluate("() => { document.getElementById('message').textContent = '' }")
        await page.evaluate("t => { location.hash = 'token=' + t }", token)
        await page.wait_for_function("() => document.getElementById('message').textContent !== ''")
        message = await page.locator("#message").inner_text()
        assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == me.token, message
        assert "still signed in as before" in message and "not accepted" in message, message
        assert "token=" not in page.url
        assert await page.locator("#signed-in").is_visible() and not await page.locator("#offer").is_visible()
        assert not await page.get_by_label("Access token").is_visible()

    # A fresher token for the same person, one the gateway takes: used, and nothing asked.
    fresher = make_token(live.settings, tenant=me.tenant_id, user=claims["sub"], email=me.email,
                         username=me.username, ttl_s=1700)
    assert fresher != me.token
    await page.evaluate("t => { location.hash = 'token=' + t }", fresher)
    await page.wait_for_function("t => sessionStorage.getItem('grove-export-token') === t", arg=fresher)
    assert not await page.locator("#offer").is_visible() and "autumn" in await page.locator("#who").inner_text()
    await page.get_by_text("No exports yet.").wait_for()
    no_page_errors(page, allowed=("401",))
    await page.context.close()


async def test_continuing_with_a_link_the_gateway_refuses_keeps_the_person_signed_in(
        browser: Any, live: LiveStack, seed: Seed) -> None:
    """The same forced sign-out one click later: a link's token for someone else, made up (signed with any
    key), is offered; Continue used it at once, the gateway refused it, and the page forgot the token of
    the person signed in. The link's token is now used only once the gateway takes it."""
    me = await seed(images=1, username="autumn")
    page = await open_page(browser, live, me)
    await page.get_by_text("No exports yet.").wait_for()
    claims = jwt.decode(me.token, options={"verify_signature": False})
    made_up = jwt.encode({**claims, "sub": "someone", "username": "birch", "email": "birch@example.org"},
                         "not the gateway's key" * 2, algorithm="HS256")
    await page.evaluate("t => { location.hash = 'token=' + t }", made_up)
    await page.get_by_role("button", name="Continue as birch").click()
    await page.wait_for_function("() => document.getElementById('message').textContent !== ''")
    message = await page.locator("#message").inner_text()
    assert await page.evaluate("sessionStorage.getItem('grove-export-token')") == me.token, message
    assert "not accepted" in message and "still signed in as before" in message, message
    assert "autumn" in await page.locator("#who").inner_text() and not await page.locator("#offer").is_visible()
    await page.get_by_text("No exports yet.").wait_for()
    no_page_errors(page, allowed=("401",))
    await page.context.close()


async def test_the_link_offers_labels_are_whole_words_on_one_line(browser: Any, live: LiveStack, seed: Seed) -> None:
    """The walkthrough's first screen (a #token= link, asking whose account it is) showed "Usernam" over
    "e": its label column was 5rem, narrower than the word, and the page breaks a word that does not fit.
    Every label of the offer is on one line, at the desktop width and just above the narrow layout."""
    me = await seed(images=1, username="autumn")
    for viewport in (DESKTOP, {"width": 600, "height": 800}):
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        await page.goto(live.page_url(me.token))
        await page.locator("#offer").wait_for()
        lines = await page.evaluate("""() => [...document.querySelectorAll('#offer dt')].map(dt => {
            const range = document.createRange(); range.selectNodeContents(dt);
            return [dt.textContent, range.getClientRects().length, dt.scrollWidth <= dt.clientWidth]; })""")
        assert [label for label, _, _ in lines] == ["Username", "Email", "Account"], lines
        assert all(n == 1 and inside for _, n, inside in lines), (viewport, lines)  # one line, not spilling over
        await context.close()
