"""A data folder whose stack.json, secrets.json or nats-users.json is not a regular file — a FIFO, a
link to /dev/zero — is one line and an exit, at once. Seen: every command given that folder hung
(the FIFO was opened and waited on for a writer, /dev/zero read for ever) before it said anything,
and neither Ctrl-C nor SIGTERM ended it: `timeout 15 grove-export exports --data DIR` had to be
killed with SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_S = 20


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True,
                          timeout=DEADLINE_S, check=False, cwd=cwd)  # killed at the deadline: a failure


@pytest.mark.parametrize("make", [_fifo, _zero], ids=["fifo", "dev-zero"])
def test_a_stack_file_that_is_no_regular_file_is_no_stack(tmp_path: Path, make: Callable[[Path], None]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make(data / "stack.json")
    out = _run("exports", "--data", str(data), cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"grove-export: no local stack is running in {data}/"), out.stderr


@pytest.mark.parametrize("make", [_fifo, _zero], ids=["fifo", "dev-zero"])
def test_a_passwords_file_that_is_no_regular_file_is_damaged(tmp_path: Path, make: Callable[[Path], None]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make(data / "nats-users.json")
    (data / "stack.json").write_text(json.dumps({  # a running stack: this test's own process is its pid
        "nats_url": "nats://127.0.0.1:1", "nats_user": "admin", "credentials_file": str(data / "nats-users.json"),
        "pid": os.getpid(), "env": {}}))
    out = _run("exports", "--data", str(data), cwd=tmp_path)
    assert (out.returncode, out.stderr.count("\n")) == (2, 1), out.stderr
    assert (f"the local stack's NATS passwords file {data / 'nats-users.json'} is damaged (not a regular file"
            in out.stderr), out.stderr


def test_a_secrets_file_that_is_a_fifo_stops_serve_before_it_starts_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _fifo(data / "secrets.json")
    out = _run("serve", "--data", str(data), "--port", "1", cwd=tmp_path)  # refused before the port is asked
    assert (out.returncode, out.stderr.count("\n")) == (2, 1), out.stderr
    assert f"secrets file {data / 'secrets.json'} is damaged (not a regular file" in out.stderr, out.stderr
    assert sorted(p.name for p in data.iterdir()) == ["secrets.json"]
