"""The export page in headless Chromium, against the real local stack.

One stack per module: nats-server (the session's), gateway + catalog + assembler + finalizer +
notifier as OS processes on a free port, the filesystem store. Part uploads are slowed
(``GROVE_FAULTS_SLOW``) so a test can watch the progress bar move and cancel mid-export. Each test
seeds a tenant of its own (the admission limits are per tenant) and opens the page with
``/export#token=...``, exactly as a ``grove-export token`` user would.

Chromium is Debian's ``/usr/bin/chromium`` (never a Playwright download): missing, the tests skip,
unless ``GROVE_REQUIRE_ALL=1``, where they fail.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from services.gateway.auth import make_token
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.browser.live import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    SLOW_UPLOADS,
    LiveStack,
    Seed,
    Tenant,
    require_chromium,
)
from tests.support.env import build, settings_for
from tests.support.stack import STEP_SERVICES, logs_of, start_stack


def _ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s: {last!r}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, nats_server: NatsServer) -> Iterator[LiveStack]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values = settings_for(tmp, nats_server.url, public_url=base, log_json=False,
                          mail={"download_page_url": f"{base}/export"})
    stack = start_stack(tmp / "stack", values, services=(*STEP_SERVICES, "gateway"), port=port,
                        extra_env={"GROVE_FAULTS_SLOW": SLOW_UPLOADS})
    try:
        try:
            _ready(f"{base}/readyz", 30)
        except AssertionError:
            print(logs_of(stack))
            raise
        yield LiveStack(stack, build(values), base)
    finally:
        stack.stop()



@pytest.fixture
def seed(live: LiveStack) -> Seed:
    """``await seed(images=20)`` → a fresh tenant with content and a bearer token for it."""

    async def make(images: int = 12, posts: int = 12, username: str = "autumn") -> Tenant:
        settings = live.settings
        store = await open_store(settings, create_buckets=True)
        content = content_source(settings)
        try:
            seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                       amber_bucket=settings.buckets.amber, images=images, posts=posts,
                                       username=username)
        finally:
            await content.close()
            await store.close()
        token = make_token(settings, tenant=seeded.tenant_id, user=f"user_{seeded.tenant_id}",
                           email=seeded.email, username=seeded.username, ttl_s=1800)
        return Tenant(seeded.tenant_id, seeded.username, seeded.email, token, images)

    return make


@pytest.fixture
async def browser(live: LiveStack) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the tests write their screenshots: a temp folder, or docs/screenshots (the README's
    picture) when GROVE_UPDATE_SCREENSHOTS=1, so a plain `make test` leaves the tree clean."""
    import os

    target = SCREENSHOTS if os.environ.get("GROVE_UPDATE_SCREENSHOTS") == "1" else tmp_path / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target
