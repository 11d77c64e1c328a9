"""``python -m shared.bus.permissions DIR`` writes the NATS users' permissions for the stream, subject
prefix and KV prefix the deployment sets (``GROVE_STREAM_NAME``, ``GROVE_SUBJECT_PREFIX``,
``GROVE_KV_PREFIX``), as every process reads them. It wrote the defaults' (``EXPORTS``, ``exports.>``,
``grove_*``) whatever the environment said: a deployment that set one (a second Grove on one NATS,
staging beside production) got a config under which every service user was refused its own stream,
subjects and buckets, with no way to generate the right one. Checked by a real run: a nats-server on
the generated accounts block, `setup` as admin, then one janitor run as the janitor user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port, nats_server_binary
from shared.bus.permissions import ADMIN, USERS, password_env
from tests.support.env import settings_for, to_env

PASSWORDS = {name: f"pw-{name}-generated" for name in (ADMIN, *(u.name for u in USERS))}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_generated_config_lets_each_user_use_the_deployments_own_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    values = settings_for(tmp_path, f"nats://127.0.0.1:{port}")  # a stream, prefix and buckets of its own
    assert (values["stream_name"], values["subject_prefix"], values["kv_prefix"]) != ("EXPORTS", "exports", "grove")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values),
           **{password_env(name): pw for name, pw in PASSWORDS.items()}}
    out = run(env, "-m", "shared.bus.permissions", str(tmp_path / "nats"))
    assert out.returncode == 0, out.stderr
    for name in ("nats-1.conf", "auth.conf"):
        checked = subprocess.run([nats_server_binary(), "-t", "-c", str(tmp_path / "nats" / name)], env=env,
                                 capture_output=True, text=True, timeout=30, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    server = NatsServer(tmp_path / "js", port=port, config_file=tmp_path / "nats" / "auth.conf",
                        log_file=tmp_path / "nats.log")
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)  # the server resolves $NATS_PASSWORD_<USER> from env
    server.start()
    try:
        setup = run({**env, "GROVE_NATS_USER": ADMIN, "GROVE_NATS_PASSWORD": PASSWORDS[ADMIN]},
                    "-m", "services.cli", "setup", "--nats-only")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        janitor = run({**env, "GROVE_NATS_USER": "janitor", "GROVE_NATS_PASSWORD": PASSWORDS["janitor"]},
                      "-m", "services.cli", "janitor")
        assert janitor.returncode == 0, janitor.stdout + janitor.stderr
        assert janitor.stdout.startswith("janitor: expired 0 archives"), janitor.stdout
    finally:
        server.stop()
    assert "permissions violation" not in (tmp_path / "nats.log").read_text().lower()
