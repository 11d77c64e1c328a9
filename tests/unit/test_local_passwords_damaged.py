"""A local stack's nats-users.json that cannot be read (cut short, not JSON, not an object of strings)
is refused in one line naming the file and what to do — by ``grove-export serve`` (which writes
nats.conf from it) and by an operator command that borrows the admin password from it — never a
traceback, never a login with no password, and the file is left as it was."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from services.devtools.stack import operator
from services.devtools.stack.supervisor import local_passwords
from shared.runtime.secrets import SecretError

DAMAGED = ['{"admin', "not json", "[1, 2]", '{"admin": 42}', "\udcff"]
PASSWORDS = "nats-users.json"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def a_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_line_naming(out: subprocess.CompletedProcess[str], path: Path) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert str(path) in out.stderr and "delete it" in out.stderr, out.stderr


@pytest.mark.parametrize("text", DAMAGED)
def test_a_damaged_passwords_file_is_refused_and_kept(tmp_path: Path, text: str) -> None:
    path = tmp_path / PASSWORDS
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SecretError) as e:
        local_passwords(path)
    assert str(path) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == text.encode("utf-8", "surrogateescape")


def test_serve_says_which_file_is_damaged_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / PASSWORDS
    path.write_text('{"admin": "cut sh')
    one_line_naming(run_cli("serve", "--data", str(tmp_path), "--port", str(a_free_port())), path)
    assert path.read_text() == '{"admin": "cut sh'


@pytest.mark.parametrize("text", ['{"admin', '{"gateway": "pw"}'])
def test_an_operator_command_says_which_file_is_damaged_instead_of_logging_in_without_a_password(
        tmp_path: Path, text: str) -> None:
    path = tmp_path / PASSWORDS
    path.write_text(text)
    # what a running stack leaves (this process stands in for it: alive); the URL answers nothing, so a
    # command that got past the refusal would say it cannot reach NATS, not name the file
    operator.write(tmp_path, nats_url=f"nats://127.0.0.1:{a_free_port()}", nats_user="admin",
                   credentials_file=path, env={})
    one_line_naming(run_cli("events", "exp_x", "--data", str(tmp_path)), path)
    assert json.loads((tmp_path / operator.STACK_FILE).read_text())["credentials_file"] == str(path.resolve())
