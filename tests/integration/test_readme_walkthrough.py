"""The README's walkthrough, run as written against a real local stack, so the README cannot drift.

The blocks marked ``<!-- walkthrough: server -->`` (the first terminal) and ``<!-- walkthrough -->``
(the second) are read from README.md and run in a folder laid out like a fresh clone: the Makefile
and pyproject.toml, this checkout's virtualenv (so nothing is installed), no ``var/``. Each
terminal is a new bash with no GROVE_* variables and no virtualenv on the PATH. Two changes only,
both said here: the gateway's port 8080 becomes a free one (``PORT=`` for ``make serve``,
``:8080`` in the client blocks), and the stack runs with ``GROVE_DEMO_THROTTLE_S`` as the README's
Cancel paragraph tells a person to, so the cancel block really cancels.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- walkthrough(?P<server>: server)? -->\n```sh\n(?P<body>.*?)```", re.S)


def walkthrough(text: str) -> tuple[str, list[str]]:
    """(the server block, the client blocks in order) from the README's marked blocks."""
    server, clients = [], []
    for m in BLOCK.finditer(text):
        (server if m.group("server") else clients).append(m.group("body"))
    assert len(server) == 1, "the README needs exactly one <!-- walkthrough: server --> block"
    assert clients, "the README has no <!-- walkthrough --> blocks"
    return server[0], clients


def fresh_clone(where: Path) -> Path:
    """A folder that looks like a clone after `make` set it up once: nothing of var/ yet."""
    where.mkdir()
    for name in ("Makefile", "pyproject.toml"):
        (where / name).symlink_to(ROOT / name)
    venv = where / ".venv"
    venv.mkdir()
    for entry in (ROOT / ".venv").iterdir():
        if entry.name != ".installed":
            (venv / entry.name).symlink_to(entry)
    (venv / ".installed").touch()  # newer than pyproject.toml: make installs nothing here
    return where


def new_shell_env(**extra: str) -> dict[str, str]:
    """A new terminal's environment: no GROVE_* settings, no virtualenv active."""
    path = ":".join(p for p in os.environ.get("PATH", "/usr/bin:/bin").split(":") if ".venv" not in p)
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    return {**env, **extra}


def wait_ready(url: str, server: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, "make serve ended before the gateway was ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready after {timeout}s")


def stop(server: subprocess.Popen[str]) -> str:
    """Ctrl-C in the first terminal; returns what it printed."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    return server.stdout.read() if server.stdout else ""


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written_from_a_fresh_clone_in_new_shells(tmp_path: Path) -> None:
    for tool, package in (("make", "make"), ("curl", "curl"), ("sha256sum", "coreutils"), ("bash", "bash")):
        require_tool(tool, package)
    server_block, client_blocks = walkthrough(README.read_text())
    assert "8080" in server_block and "make serve" in server_block
    clone = fresh_clone(tmp_path / "clone")
    port = free_port()
    server = subprocess.Popen(["bash", "--noprofile", "--norc", "-c", server_block], cwd=clone, text=True,
                              env=new_shell_env(PORT=str(port), GROVE_DEMO_THROTTLE_S="0.2"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", server, 120)
        # The first terminal's comment says where the page is: a person opens that very address (it
        # said http://127.0.0.1:8080, where the gateway answers a 404 problem, not the page).
        shown_urls = re.findall(r"http://127\.0\.0\.1:8080[^\s,]*", server_block)
        assert shown_urls, server_block
        for url in shown_urls:
            try:
                with urllib.request.urlopen(url.replace(":8080", f":{port}"), timeout=10) as resp:
                    assert resp.headers.get_content_type() == "text/html", (url, resp.headers)
            except urllib.error.HTTPError as err:
                raise AssertionError(f"the README's {url} answers {err.code}, not the page") from err
        found = json.loads((clone / "var" / "stack.json").read_text())
        assert found["nats_user"] == "admin" and found["nats_url"].startswith("nats://127.0.0.1:")
        script = "set -e\n" + "\n".join(b.replace(":8080", f":{port}") for b in client_blocks)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=clone, env=new_shell_env(),
                              capture_output=True, text=True, timeout=240, check=False)
    finally:
        printed = stop(server)
    shown = f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}\nserver:\n{printed}"
    assert done.returncode == 0, shown
    out = done.stdout.splitlines()
    assert "var/export.zip: OK" in out, shown  # the download matches the API's SHA-256
    assert any(line.split()[3:4] == ["ExportCompleted"] for line in out if len(line.split()) > 3), shown
    assert any(line.startswith("janitor: would expire") for line in out), shown
    assert out[-1] == "cancelled", shown
    assert "Traceback" not in done.stderr, shown
    assert not (clone / "var" / "stack.json").exists(), "a stopped stack leaves no stack.json behind"
