"""`make clean` deletes var/, but never from under a running local stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]


def _clean(clone: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    # as typed in a shell: under `make test` the outer make's MAKELEVEL made this one say "make[1]:"
    outer = {"MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"}
    env = {k: v for k, v in os.environ.items() if k not in outer} | {"PYTHONPATH": str(ROOT)}
    return subprocess.run(["make", "clean", f"PY={sys.executable}", *overrides], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _clone_with_stack(tmp_path: Path, pid: int) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "var" / "store").mkdir(parents=True)
    (tmp_path / "var" / "stack.json").write_text(json.dumps(
        {"nats_url": "nats://127.0.0.1:4222", "nats_user": "admin", "credentials_file": "/nowhere", "pid": pid,
         "env": {}}))
    return tmp_path


def test_make_clean_refuses_while_the_local_stack_runs_in_one_line(tmp_path: Path) -> None:
    """Seen: `make clean` beside a running `make run` deleted its nats-server store, object store and
    databases from under it (the Makefile's own help said only "stop the stack first"). Then its
    refusal came in two lines: the reason, and make's `make: *** [Makefile:60: clean] Error 1`."""
    require_tool("make", "make")
    clone = _clone_with_stack(tmp_path, os.getpid())  # a live process, as a running stack's stack.json names
    out = _clean(clone)
    assert out.returncode != 0 and (clone / "var" / "store").is_dir(), out
    assert re.fullmatch(r"Makefile:\d+: \*\*\* (.*)\.  Stop\.\n", out.stderr), out.stderr  # make's own error line
    assert f"the local stack in var is running (pid {os.getpid()}): stop it first (Ctrl-C where `make run` or " \
           "`make serve` runs), then make clean." in out.stderr
    assert out.stdout == ""


def test_make_clean_deletes_var_once_the_stack_is_gone(tmp_path: Path) -> None:
    require_tool("make", "make")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    clone = _clone_with_stack(tmp_path, dead.pid)  # killed, not stopped: its stack.json is left
    out = _clean(clone)
    assert out.returncode == 0 and not (clone / "var").exists(), out
    (clone / "var").mkdir()  # no stack ever ran here
    assert _clean(clone).returncode == 0 and not (clone / "var").exists()


def test_make_clean_checks_for_a_running_stack_without_the_venv(tmp_path: Path) -> None:
    """Seen: with no .venv/bin/python (a venv deleted or never made, `make clean` in a fresh clone), the
    check was skipped and var/ deleted from under a running stack. It runs on $(PYTHON) then, needing
    none of the venv's packages (here: -S, no site-packages at all)."""
    require_tool("make", "make")
    clone = _clone_with_stack(tmp_path, os.getpid())
    no_venv = (f"PY={clone / '.venv' / 'bin' / 'python'}", f"PYTHON={sys.executable} -S")
    out = _clean(clone, *no_venv)
    assert out.returncode != 0 and (clone / "var" / "store").is_dir(), out
    assert re.fullmatch(r"Makefile:\d+: \*\*\* (.*)\.  Stop\.\n", out.stderr), out.stderr
    assert f"the local stack in var is running (pid {os.getpid()}): stop it first" in out.stderr
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stack = json.loads((clone / "var" / "stack.json").read_text())
    (clone / "var" / "stack.json").write_text(json.dumps({**stack, "pid": dead.pid}))  # killed: its stack.json left
    assert _clean(clone, *no_venv).returncode == 0 and not (clone / "var").exists()


def test_make_clean_with_no_python_to_check_refuses_in_one_line(tmp_path: Path) -> None:
    """No Python at all to run the check (no venv, no python3): it deletes nothing, and says why."""
    require_tool("make", "make")
    clone = _clone_with_stack(tmp_path, os.getpid())
    out = _clean(clone, f"PY={clone / 'nothing'}", f"PYTHON={clone / 'no-python3'}")
    assert out.returncode != 0 and (clone / "var" / "store").is_dir(), out
    assert re.fullmatch(r"Makefile:\d+: \*\*\* cannot tell whether a local stack runs in var \(.*\): nothing was "
                        r"deleted\.  Stop\.\n", out.stderr), out.stderr
