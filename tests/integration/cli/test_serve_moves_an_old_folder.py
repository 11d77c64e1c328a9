"""`grove-export serve` on a data folder whose nats-server ran before the accounts split: the log,
the buckets and the durables' positions were under the global account (``nats/jetstream/$G``); serve
moves them into ``STORE`` before its server starts, says so, and its services find them there."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from services.devtools.stack.supervisor import PASSWORDS_FILE, Stack, local_env
from shared.bus.permissions import ADMIN, password_env
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.cluster.procs import connect_bus
from tests.cluster.secured import PASSWORDS

OLD = Path(__file__).resolve().parents[2] / "cluster" / "old_layout_auth.conf"


async def _before_the_split(store_dir: Path, conf: Path) -> None:
    """The stack's server as it was: one account; an export requested, the catalog's durable made."""
    conf.write_text(OLD.read_text().replace("@@PREFIX@@", "exports").replace("@@KV@@", "grove"))
    port = free_port()
    server = NatsServer(store_dir, port=port, config_file=conf, log_file=conf.with_suffix(".log")).start()
    try:
        bus = await connect_bus(Settings(), [server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
        try:
            await bus.log.append(ev.ExportRequested(export_id="exp_old", tenant_id="t_old", user_id="u",
                                                    user_email="o@example.org", username="o"), 0)
            await bus.heartbeats.put("catalog.t_old.exp_old", b"beat")
        finally:
            await bus.close()
    finally:
        server.stop()


def test_serve_moves_a_folder_from_before_the_accounts_split_and_keeps_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)
    data, port = tmp_path / "data", free_port()
    (data / "nats").mkdir(parents=True)
    asyncio.run(_before_the_split(data / "nats", tmp_path / "old.conf"))
    assert (data / "nats" / "jetstream" / "$G" / "streams" / "EXPORTS").is_dir()

    stack = Stack(data, port=port, env=local_env(data, port), services=())
    try:
        stack.start()
        assert "moved the log and buckets" in capsys.readouterr().err
        assert stack.nats is not None
        admin = json.loads((data / PASSWORDS_FILE).read_text())[ADMIN]

        async def read() -> tuple[list[str], bytes | None]:
            bus = await connect_bus(Settings(), [stack.nats.url], "test", user=ADMIN, password=admin)  # type: ignore[union-attr]
            try:
                names = [e.name() async for _, e in bus.log.history("t_old", "exp_old")]
                return names, (await bus.heartbeats.get("catalog.t_old.exp_old")).value
            finally:
                await bus.close()

        assert asyncio.run(read()) == (["ExportRequested"], b"beat")
    finally:
        stack.stop()
    assert not (data / "nats" / "jetstream" / "$G").exists()
