"""A ``ws://`` GROVE_NATS_URL naming a port that answers no NATS WebSocket — nats-server's client port, a
web server — is one line and exit 2, like any other NATS that cannot be reached. It was aiohttp's
message over several lines (a client port's whole INFO quoted in it), followed at exit by aiohttp's
"Unclosed client session" and the session's repr: nats-py leaves its WebSocket session open when the
connection fails."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from tests.support.env import settings_for, to_env


@pytest.fixture(params=["nats client port", "web server"])
def not_a_websocket(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[int]:
    if request.param == "nats client port":
        server = NatsServer(tmp_path / "js", port=free_port(), log_file=tmp_path / "nats.log").start()
        yield server.port
        server.stop()
        return
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    yield web.server_address[1]
    web.shutdown()
    web.server_close()


def test_a_port_without_a_nats_websocket_is_one_line(tmp_path: Path, not_a_websocket: int) -> None:
    values = settings_for(tmp_path, f"ws://127.0.0.1:{not_a_websocket}")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
    out = subprocess.run([sys.executable, "-m", "services.cli", "exports"], env=env, capture_output=True,
                         text=True, timeout=60, check=False, cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"grove-export: cannot reach NATS at ws://127.0.0.1:{not_a_websocket} "
                                 "(from GROVE_NATS_URL): no NATS WebSocket there"), out.stderr
