"""A ``tls://`` GROVE_NATS_URL means TLS, as in NATS's Go client. nats-py upgrades a connection only when
the server's INFO says ``tls_required``: against a server without TLS — misconfigured, or anyone in
between answering INFO without it — it sent CONNECT with the user's password in the clear and went on
unencrypted, and every command and service said nothing. Now such a server is refused before CONNECT
(one line, nothing sent), and one that only offers TLS (``allow_non_tls``) is upgraded."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import NatsUnreachable, open_nats
from tests.integration.mail.conftest import Certs, certs  # noqa: F401  (the fixture: a CA and a localhost certificate)
from tests.support.env import build, settings_for, to_env

PASSWORD = "pw-catalog-never-in-the-clear"


async def test_a_server_without_tls_is_sent_nothing_in_the_clear(tmp_path: Path) -> None:
    received = bytearray()
    said = asyncio.Event()

    async def plain_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "X", "version": "2.15.1", "proto": 1, "headers": True, "max_payload": 1048576,
                "auth_required": True}
        writer.write(f"INFO {json.dumps(info)}\r\n".encode())
        await writer.drain()
        said.set()
        try:
            while chunk := await reader.read(4096):
                received.extend(chunk)
                if b"PING" in received:
                    writer.write(b"PONG\r\n")
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(plain_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = build({**settings_for(tmp_path, f"tls://127.0.0.1:{port}"), "nats_user": "catalog",
                      "nats_password": PASSWORD})
    try:
        async with asyncio.timeout(30):
            with pytest.raises(NatsUnreachable) as caught:
                nc = await open_nats(settings, "test", persistent=False, attempts=1)
                await nc.close()
    finally:
        server.close()
        await server.wait_closed()
    assert said.is_set()
    assert PASSWORD.encode() not in received and b"CONNECT" not in received, bytes(received)
    assert "offers no TLS" in caught.value.reason and "tls://" in caught.value.reason


def test_the_command_line_says_so_in_one_line(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "js", port=free_port(), log_file=tmp_path / "nats.log").start()
    try:
        values = settings_for(tmp_path, server.url.replace("nats://", "tls://"))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
        out = subprocess.run([sys.executable, "-m", "services.cli", "exports"], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    finally:
        server.stop()
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert "cannot reach NATS at tls://" in out.stderr and "offers no TLS" in out.stderr


def connz(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/connz", timeout=10) as r:  # noqa: S310
        return list(json.load(r)["connections"])


async def test_a_server_that_offers_tls_is_upgraded(tmp_path: Path, certs: Certs,  # noqa: F811
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monitor = free_port()
    conf = tmp_path / "tls.conf"
    conf.write_text(f'tls {{\n  cert_file: "{certs.cert_file}"\n  key_file: "{certs.key_file}"\n}}\n'
                    "allow_non_tls: true\n")
    server = NatsServer(tmp_path / "js", port=free_port(), config_file=conf, log_file=tmp_path / "nats.log",
                        extra_args=["-m", str(monitor)]).start()
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))  # the client's default context trusts the test CA
    try:
        settings = build(settings_for(tmp_path, server.url.replace("nats://", "tls://")))
        nc = await open_nats(settings, "test", persistent=False, name="grove-tls-probe")
        try:
            await nc.flush()
            conns = await asyncio.to_thread(connz, monitor)
        finally:
            await nc.close()
    finally:
        server.stop()
    ours = [c for c in conns if c.get("name") == "grove-tls-probe"]
    assert len(ours) == 1 and ours[0].get("tls_version"), ours
