"""A connect that fails after its connection opened closes that connection. Seen: a bucket missing (a
server awaiting its set-up or a restore) or a bind unanswered raised with the connection left open, and
`run janitor` connects once a run, so each failed run left one more connection to the server for good."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect
from shared.bus.topology import BucketMissing
from tests.support.env import build, settings_for
from tests.support.wait import until


def _connections(monitor: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz", timeout=10) as r:  # noqa: S310
        return [c.get("name", "") for c in json.load(r)["connections"]]


async def test_a_connect_whose_bucket_is_missing_leaves_no_connection_open(tmp_path: Path) -> None:
    monitor = free_port()
    server = NatsServer(tmp_path / "js", port=free_port(), log_file=tmp_path / "nats.log",
                        extra_args=["-m", str(monitor)]).start()  # JetStream, and nothing of Grove's set-up
    try:
        settings = build(settings_for(tmp_path, server.url))
        for run in range(3):  # as three janitor runs would, one after another
            with pytest.raises(BucketMissing):
                await connect(settings, "janitor", persistent=False, name=f"grove-run-{run}")

        async def none_left() -> bool:
            return not [n for n in await asyncio.to_thread(_connections, monitor) if n.startswith("grove-run-")]

        await until(none_left, 10, 0.1, "the failed connects' connections to close")
    finally:
        server.stop()
