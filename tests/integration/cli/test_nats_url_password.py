"""A password (or token) in GROVE_NATS_URL — nats://user:password@host, which NATS clients take — is
never printed: the URL is named in error lines and logs with it masked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port

SECRET = "hunter2-not-to-be-seen"


def env(url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {"GROVE_NATS_URL": url}


@pytest.mark.parametrize(("userinfo", "shown", "scheme"), [
    (f"admin:{SECRET}", "admin:***@", "nats://"), (SECRET, "//***@", "nats://"),
    # without a scheme, which the NATS client takes (it adds nats://): the password was printed as given
    (f"admin:{SECRET}", "at admin:***@", ""), (SECRET, "at ***@", "")])
def test_an_operator_command_that_cannot_reach_nats_masks_the_password(tmp_path: Path, userinfo: str,
                                                                       shown: str, scheme: str) -> None:
    url = f"{scheme}{userinfo}@127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "services.cli", "janitor"], cwd=tmp_path, env=env(url),
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2 and "cannot reach NATS at" in out.stderr, out.stderr
    assert SECRET not in out.stdout + out.stderr and shown in out.stderr, out.stderr


@pytest.mark.parametrize("service", ["finalizer", "janitor"])
def test_a_service_waiting_for_nats_masks_the_password_in_its_log(tmp_path: Path, service: str) -> None:
    url = f"nats://admin:{SECRET}@127.0.0.1:{free_port()}"
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", service], cwd=tmp_path, env=env(url),
                                stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while "NATS at" not in log.read_text():  # its first line about the server it cannot reach
            assert proc.poll() is None or "NATS at" in log.read_text(), log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(10)
    text = log.read_text()
    assert SECRET not in text and "admin:***@" in text, text
