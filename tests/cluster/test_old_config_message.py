"""connect()'s "a server whose config predates the STORE and SVC_<service> accounts" line: said when the
server refused the service user a call of its allow-list (unit: tests/unit/bus/test_accounts.py), never for a
healthy server of this release that was only slow to answer the first JetStream call (the old
config's case is tests/cluster/test_upgrade.py's, through the command line)."""

from __future__ import annotations

import nats.errors
import pytest
from pydantic import SecretStr

from shared.bus import connect as connect_module
from shared.bus.connect import connect
from tests.cluster.secured import PASSWORDS, Secured


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
