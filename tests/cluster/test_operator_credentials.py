"""An operator command run with a service's NATS credentials (the only ones inside a service's pod or
container) says that the server refused that user, not that it gave "no answer in time"."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import env_without_proxies
from shared.bus import topology
from shared.bus.connect import open_nats
from shared.bus.permissions import ADMIN
from tests.cluster.secured import PASSWORDS, Secured
from tests.support.env import build, to_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("user", ["gateway", "catalog"])
async def test_an_operator_command_as_a_service_user_names_the_refusal(secured: Secured, tmp_path: Path,
                                                                        user: str) -> None:
    """Seen: `kubectl exec deploy/grove-gateway -- grove-export exports` waited 14 s, then said
    "NATS at … failed: no answer in time", as if the server were slow: the server had refused the
    gateway user the stream and bucket information every operator command asks for."""
    admin = build({**secured.values, "nats_user": ADMIN, "nats_password": PASSWORDS[ADMIN]})
    nc = await open_nats(admin, "setup", persistent=False)
    try:
        await topology.ensure(nc.jetstream(timeout=10), admin)
    finally:
        await nc.close()
    env = {k: v for k, v in env_without_proxies().items() if not k.upper().startswith("GROVE_")}
    env |= to_env(secured.values) | {"GROVE_NATS_USER": user, "GROVE_NATS_PASSWORD": PASSWORDS[user],
                                     "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.cli", "exports"], cwd=tmp_path,
                                   env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"the server refused user {user!r}: permissions violation" in done.stderr.lower(), done.stderr
    assert "run as the NATS admin user" in done.stderr and "no answer in time" not in done.stderr, done.stderr
