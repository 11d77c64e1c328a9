"""connect()'s "the server's config predates the STORE/SVC accounts" line: said when the server refused
the service user's JetStream API (its permissions violation names ``$JS.STORE.API``), never for a
healthy server of this release that was only slow to answer the first JetStream call."""

from __future__ import annotations

from pathlib import Path

import nats.errors
import pytest
from pydantic import SecretStr

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus import connect as connect_module
from shared.bus.connect import connect
from shared.bus.permissions import password_env
from shared.bus.topology import TopologyMissing
from tests.cluster.secured import PASSWORDS, Secured
from tests.support.env import build, settings_for

OLD = Path(__file__).with_name("old_layout_auth.conf")


def _as(settings, user: str):  # type: ignore[no-untyped-def]
    return settings.model_copy(update={"nats_user": user, "nats_password": SecretStr(PASSWORDS[user])})


async def test_a_slow_answer_on_a_server_of_this_release_is_no_old_config(
        secured: Secured, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first JetStream call that times out on a server with the accounts (a cluster electing its
    leader, a loaded server) is reported as the timeout it is: "regenerate that config" would send an
    operator to change a config that is right."""
    async def slow(*_: object) -> object:
        raise nats.errors.TimeoutError

    monkeypatch.setattr(connect_module, "_bind_kv", slow)
    with pytest.raises(nats.errors.TimeoutError):
        await connect(_as(secured.settings, "catalog"), "catalog")


async def test_a_server_on_the_old_block_is_named_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    s = build(settings_for(tmp_path, f"nats://127.0.0.1:{port}"))
    conf = tmp_path / "old.conf"
    conf.write_text(OLD.read_text().replace("@@PREFIX@@", s.subject_prefix).replace("@@KV@@", s.kv_prefix))
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)
    server = NatsServer(tmp_path / "nats", port=port, config_file=conf, log_file=tmp_path / "nats.log").start()
    try:
        with pytest.raises(TopologyMissing, match="predates the STORE/SVC accounts"):
            await connect(_as(s, "catalog"), "catalog")
    finally:
        server.stop()
