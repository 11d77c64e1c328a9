"""Whatever signal ends `grove-export serve` — SIGTERM while it is still starting, the terminal's SIGHUP
once it is up — it stops its nats-server and every service first. They run in
sessions of their own (a Ctrl-C in the terminal reaches only `serve`), so one it does not stop outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port


def running_from(data: Path) -> list[str]:
    """The processes (besides `serve` itself) that belong to the stack in ``data``: nats-server names the
    folder on its command line, every service in its environment (GROVE_STORE_ROOT and the rest)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours
            continue
        if state != "Z" and (str(data).encode() in cmdline or str(data).encode() in environ) \
                and b" serve " not in cmdline:
            found.append(f"{proc.name}: {cmdline.decode(errors='replace')[:80]}")
    return found


def kill_all(data: Path) -> None:
    for line in running_from(data):
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


def start_serve(cwd: Path, data: Path) -> subprocess.Popen[str]:
    """`grove-export serve` in a new terminal (no GROVE_* set), its data in ``data``, on a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--data", str(data),
                             "--port", str(free_port())], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(("signals", "when"), [
    ([signal.SIGTERM], "starting"),  # e.g. `timeout`, systemd or docker stopping it while setup runs
    ([signal.SIGHUP], "up"),  # the terminal window it runs in is closed
])
def test_a_signal_that_ends_serve_ends_its_children_too(tmp_path: Path, signals: list[int], when: str) -> None:
    data = tmp_path / "data"
    proc = start_serve(tmp_path, data)
    try:
        deadline = time.monotonic() + 90
        if when == "starting":  # nats-server runs, setup has begun, no service yet
            while not (data / "logs" / "setup.log").exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                time.sleep(0.02)
        else:
            assert "local stack up" in (proc.stdout.readline() if proc.stdout else ""), proc.communicate()
        assert running_from(data), "nothing of the stack was found running before the signal"
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.1)
        _, err = proc.communicate(timeout=60)
        left = running_from(data)
        assert not left, f"still running after `serve` exited ({proc.returncode}, {err[-300:]!r}): {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(data)


def test_a_killed_serve_takes_its_children_with_it(tmp_path: Path) -> None:
    """SIGKILL (`kill -9`, the out-of-memory killer, a test harness's timeout) cannot be caught: the
    kernel ends each child with its parent instead (PR_SET_PDEATHSIG). Seen: nats-server and every
    service ran on, in sessions of their own, after a test's subprocess.run timeout killed `serve`."""
    data = tmp_path / "data"
    proc = start_serve(tmp_path, data)
    try:
        assert "local stack up" in (proc.stdout.readline() if proc.stdout else ""), proc.communicate()
        assert running_from(data)
        proc.kill()
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 30  # the services stop as they would on SIGTERM
        while (left := running_from(data)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, f"still running after `serve` was killed: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(data)
