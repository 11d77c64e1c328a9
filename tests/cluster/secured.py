"""A nats-server locked down with the generated accounts block, and clients as each user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import inbox_prefix
from shared.bus.permissions import ADMIN, USERS, js_domain, password_env, render_accounts
from shared.runtime.settings import Settings
from tests.support.env import build, settings_for

PASSWORDS = {name: f"pw-{name}-{i}" for i, name in enumerate([ADMIN, *(u.name for u in USERS)])}


@dataclass
class Secured:
    server: NatsServer
    values: dict[str, Any]
    settings: Settings


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Secured]:
    """A nats-server whose config is only the generated accounts block (passwords from env)."""
    port = free_port()
    values = settings_for(tmp_path, f"nats://127.0.0.1:{port}")
    conf = tmp_path / "auth.conf"
    conf.write_text(render_accounts(prefix=values["subject_prefix"], kv_prefix=values["kv_prefix"],
                                         stream=values["stream_name"]))
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)  # the server resolves $NATS_PASSWORD_<USER> from env
    server = NatsServer(tmp_path / "nats", port=port, config_file=conf, log_file=tmp_path / "nats.log").start()
    yield Secured(server, values, build(values))
    server.stop()


class UserClient(nats.NATS):
    """nats-py's client as one user: ``jetstream()`` calls that user's JetStream API by default (a
    service user's under ``$JS.STORE.API``, as the services call it: shared.bus.permissions.js_domain)."""

    user: str | None = None

    def jetstream(self, **options: Any) -> Any:
        options.setdefault("domain", js_domain(self.user))
        return super().jetstream(**options)


async def connect_as(url: str, user: str, errors: list[str] | None = None) -> UserClient:
    async def on_error(e: Exception) -> None:
        if errors is not None:
            errors.append(str(e))

    nc = UserClient()
    nc.user = user
    await nc.connect(url, user=user, password=PASSWORDS[user], error_cb=on_error,
                     max_reconnect_attempts=0, connect_timeout=3,
                     inbox_prefix=inbox_prefix(None if user == ADMIN else user).encode())
    return nc


_connect = connect_as
