"""A local stack's secrets.json that cannot be read (cut short, not JSON, not an object of strings) is
refused in one line naming the file and what to do — never a traceback, never silently replaced (it
may be a good file cut short by a full disk; replacing it would void every token signed with it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.runtime.secrets import SecretError, local_secrets

# the last: arrays nested past the JSON parser's stack (a RecursionError traceback)
DAMAGED = ['{"GROVE_JWT', "not json", "[1, 2]", '{"GROVE_JWT_SECRET": 42}', "\udcff", "[" * 100_000 + "]" * 100_000]


@pytest.mark.parametrize("text", DAMAGED)
def test_a_damaged_secrets_file_is_refused_and_kept(tmp_path: Path, text: str) -> None:
    path = tmp_path / "secrets.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SecretError) as e:
        local_secrets(tmp_path)  # what `grove-export serve` reads
    assert str(path) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)
    assert path.read_bytes() == text.encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("text", DAMAGED)
def test_token_says_which_file_is_damaged_in_one_line(tmp_path: Path, text: str) -> None:
    (tmp_path / "secrets.json").write_bytes(text.encode("utf-8", "surrogateescape"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    out = subprocess.run([sys.executable, "-m", "services.cli", "token", "--tenant", "acme", "--user", "u1",
                          "--email", "a@b.c", "--username", "u", "--data", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert str(tmp_path / "secrets.json") in out.stderr and "delete it" in out.stderr
