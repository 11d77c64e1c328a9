"""A live local stack (real service processes, gateway included) and an HTTP client for it: the
front-door tests attack through the public API only and judge by what users see."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.devtools.stack.natsserver import free_port
from services.devtools.stack.supervisor import Stack
from services.gateway.auth import make_token
from shared.content.factory import content_source
from shared.content.seed import SeedResult, seed_tenant
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.support.env import build, settings_for
from tests.support.stack import STEP_SERVICES, logs_of, start_stack

OLD_PUBLIC_DEFAULT = "grove-local-development-secret-change-me!!"  # shared/runtime/settings.py before this fix


def old_link_key() -> bytes:
    """The download-link key the old code derived from the public default."""
    return hashlib.sha256(b"grove-export download links\x00" + OLD_PUBLIC_DEFAULT.encode()).digest()


@dataclass
class Live:
    stack: Stack
    settings: Settings
    values: dict[str, Any]
    base: str

    def token(self, tenant: str, email: str = "autumn@example.org") -> str:
        return make_token(self.settings, tenant, f"user_{tenant}", email, "autumn", ttl_s=1800)

    def headers(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(tenant)}"}

    async def seed(self, images: int = 6, **kw: Any) -> SeedResult:
        s = self.settings
        store = await open_store(s, create_buckets=True)
        try:
            return await seed_tenant(content_source(s), store, images_bucket=s.buckets.images,
                                     amber_bucket=s.buckets.amber, images=images, **kw)
        finally:
            await store.close()


def start_live(tmp: Path, nats_url: str, *, services: tuple[str, ...] = (*STEP_SERVICES, "gateway"),
               extra_env: dict[str, str] | None = None, **overrides: Any) -> Live:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    values = settings_for(tmp, nats_url, public_url=base, log_json=False, **overrides)
    stack = start_stack(tmp / "stack", values, services=services, port=port, extra_env=extra_env)
    live = Live(stack, build(values), values, base)
    if "gateway" in services:
        try:  # StackFailed, its one line, as soon as the gateway dies at every start
            if not stack.wait_gateway(30):
                raise AssertionError(f"gateway not ready within 30 s\n{logs_of(stack)}")
        except BaseException:
            stack.stop()
            raise
    return live


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def api(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> tuple[int, Any]:
    async with http.request(method, url, **kw) as r:
        body = await r.json(content_type=None) if r.content_type.endswith("json") else await r.read()
        return r.status, body


async def wait_api_status(http: aiohttp.ClientSession, live: Live, tenant: str, export_id: str,
                          want: set[str], timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``GET /api/export/status`` (what the user sees) until its status is one of ``want``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        status, last = await api(http, "GET", f"{live.base}/api/export/status/{export_id}",
                                 headers=live.headers(tenant))
        if status == 200 and last["status"] in want:
            return dict(last)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{export_id} never reached {sorted(want)} (last: {last})\n{logs_of(live.stack)}")


@pytest.fixture(scope="module")
def live_fs(tmp_path_factory: pytest.TempPathFactory, nats_server: Any) -> Iterator[Live]:
    """The whole stack on the filesystem store, uploads slowed a little so a cancel lands mid-way."""
    live = start_live(tmp_path_factory.mktemp("frontdoor"), nats_server.url,
                      extra_env={"GROVE_FAULTS_SLOW": "assemble.upload:0.2"})
    yield live
    live.stack.stop()
