"""``python -m tests.cluster.launch ARGS`` = ``grove-export ARGS``, with two pending production fixes
applied in-process **only where production still lacks them** (each shim is a no-op once the fix
lands, and says on stderr when it fires, so a test can report it):

1. ``shared/runtime.py`` passes ``user=``/``password=`` to faststream's ``NatsBroker``, which (0.7.8)
   has no such arguments — a service with ``GROVE_NATS_USER`` set dies at start with ``TypeError``.
   Fix: ``security=NatsUserPassword(user, password)``.
2. ``GROVE_NATS_URL`` with several comma-separated servers: nats-py and faststream take a *list*;
   a comma string is one unparsable URL. Fix: split it (``shared.bus.nats_servers``).
"""

from __future__ import annotations

import sys
from typing import Any

FIRED: set[str] = set()


def _note(what: str) -> None:
    if what not in FIRED:
        FIRED.add(what)
        print(f"test-shim: {what}", file=sys.stderr, flush=True)


def _split(servers: Any) -> Any:
    if isinstance(servers, str) and "," in servers:
        _note("split a comma-separated GROVE_NATS_URL")
        return [s.strip() for s in servers.split(",") if s.strip()]
    return servers


def apply() -> None:
    import nats
    from faststream.nats import NatsBroker, NatsUserPassword

    import shared.bus
    import shared.runtime

    def broker(servers: Any = ("nats://localhost:4222",), **kw: Any) -> NatsBroker:
        if "user" in kw:
            _note("NatsBroker user/password -> security=NatsUserPassword")
            user, password = kw.pop("user"), kw.pop("password", "")
            kw["security"] = NatsUserPassword(user, password)
        return NatsBroker(_split(servers), **kw)

    class _Nats:
        def __getattr__(self, name: str) -> Any:
            return getattr(nats, name)

        async def connect(self, servers: Any = ("nats://localhost:4222",), **kw: Any) -> Any:
            return await nats.connect(_split(servers), **kw)

    shared.runtime.NatsBroker = broker  # type: ignore[assignment,misc]
    shared.bus.nats = _Nats()  # type: ignore[assignment]


def main() -> None:
    apply()
    from services.cli import main as cli_main

    sys.argv[0] = "grove-export"
    cli_main()


if __name__ == "__main__":
    main()
