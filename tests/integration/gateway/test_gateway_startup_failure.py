"""A gateway whose startup fails part-way closes what it had opened: aiohttp leaves the contexts it
entered (the NATS connection, the store) open when a later one (the read model) fails, and the
gateway's run() went on without them: a caller that runs it in its own process kept a live NATS
connection, as the gateway's user, for nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.gateway import app as gateway_app
from services.gateway import main as gateway_main
from shared.bus.connect import connect
from shared.runtime.settings import Settings


async def test_a_read_model_that_cannot_be_opened_leaves_no_nats_connection_open(
        settings_for: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("x")
    settings = settings_for(0, read_model_db=tmp_path / "a-file" / "rm.db")
    await (await connect(settings, "test-setup", ensure=True, persistent=False)).close()  # the admin set-up
    opened = []

    async def keeping(*a: Any, **kw: Any) -> Any:
        bus = await connect(*a, **kw)
        opened.append(bus)
        return bus

    monkeypatch.setattr(gateway_app, "connect", keeping)
    with pytest.raises(Exception, match="GROVE_READ_MODEL_DB"):
        await gateway_main.run(settings, stop=asyncio.Event())
    assert len(opened) == 1 and opened[0].nc.is_closed
