"""What the browser tests share: where Chromium is, the running stack and a seeded tenant."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devtools.stack.supervisor import Stack
from shared.runtime.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
SLOW_UPLOADS = "assemble.upload:0.3"  # seconds per part upload: exports take a few seconds
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = "chromium not installed (apt-get install -y chromium)"
    if os.environ.get("GROVE_REQUIRE_ALL") == "1":
        pytest.fail(message + " and GROVE_REQUIRE_ALL=1")
    pytest.skip(message)


@dataclass
class LiveStack:
    stack: Stack
    settings: Settings
    base_url: str

    def page_url(self, token: str) -> str:
        return f"{self.base_url}/export#token={token}"


@dataclass
class Tenant:
    tenant_id: str
    username: str
    email: str
    token: str
    images: int


Seed = Callable[..., Awaitable[Tenant]]
