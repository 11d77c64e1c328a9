"""A stack of real service processes for one test module, on settings of its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from services.devtools.stack.supervisor import Stack
from shared.core import steps
from tests.support.env import to_env

STEP_SERVICES = steps.step_services()


def start_stack(data_dir: Path, values: dict[str, Any], services: tuple[str, ...] = STEP_SERVICES,
                replicas: dict[str, int] | None = None, port: int = 0,
                extra_env: dict[str, str] | None = None, users: dict[str, str] | None = None) -> Stack:
    """The services on a server of the test's (``values["nats_url"]``); ``users``: its NATS users'
    passwords, when it has them (each service then runs as its own user, setup as admin)."""
    env = {**to_env(values), **(extra_env or {})}
    stack = Stack(data_dir, port=port or 8080, env=env, services=services, replicas=replicas or {},
                  nats_users=users or {})
    stack.start(nats_url=values["nats_url"])
    time.sleep(0.5)
    for child in stack.children:
        assert child.proc and child.proc.poll() is None, f"{child.name} died at start; see {child.log_path}"
    return stack


def logs_of(stack: Stack) -> str:
    out = []
    for child in stack.children:
        try:
            out.append(f"--- {child.name} ---\n" + Path(child.log_path).read_text()[-4000:])
        except FileNotFoundError:
            pass
    return "\n".join(out)
