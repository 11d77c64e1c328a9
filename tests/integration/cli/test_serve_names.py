"""`grove-export serve` with the stream, subject prefix or KV prefix set in its environment: its
nats-server's users get their permissions on those names, the ones its services then use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port
from services.devtools.stack.supervisor import Stack, local_env


def test_the_local_nats_permissions_follow_the_names_set_in_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: GROVE_STREAM_NAME=MYSTREAM GROVE_KV_PREFIX=mykv GROVE_SUBJECT_PREFIX=myprefix grove-export serve:
    setup (as admin) made MYSTREAM, the services used it, and nats.conf allowed them only EXPORTS,
    grove_* and exports.* — every service logged "permissions violation" and no export ever ran."""
    monkeypatch.setenv("GROVE_STREAM_NAME", "MYSTREAM")
    monkeypatch.setenv("GROVE_KV_PREFIX", "mykv")
    monkeypatch.setenv("GROVE_SUBJECT_PREFIX", "myprefix")
    data, port = tmp_path / "data", free_port()
    stack = Stack(data, port=port, env=local_env(data, port), services=())
    try:
        stack.start()
        conf = (data / "nats.conf").read_text()
        found = json.loads((data / "stack.json").read_text())["env"]
    finally:
        stack.stop()
    assert '"myprefix.*.*.ExportRequested"' in conf and "$JS.STORE.API.CONSUMER.MSG.NEXT.MYSTREAM.catalog" in conf
    assert "KV_mykv_heartbeats" in conf
    assert '"exports.' not in conf and ".EXPORTS." not in conf and "KV_grove_" not in conf
    # operator commands in a new shell (no such variables there) find the stack's stream through stack.json
    assert (found["GROVE_STREAM_NAME"], found["GROVE_KV_PREFIX"], found["GROVE_SUBJECT_PREFIX"]) == (
        "MYSTREAM", "mykv", "myprefix")


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_metrics_port_for_the_whole_local_stack_is_refused_before_anything_starts(tmp_path: Path,
                                                                                     command: str) -> None:
    """Seen: GROVE_METRICS_PORT=9100 grove-export serve: every step service was given port 9100, one bound
    it, and the other five died at each start ("port … is taken by another program") for as long as the
    stack ran — no export could pass the steps whose services were down."""
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {"GROVE_METRICS_PORT": "9100"}
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", command, "--data", str(data), "--port",
                             str(free_port())], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # it started: stopped as Ctrl-C would, so its children stop too
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith("grove-export: invalid settings: GROVE_METRICS_PORT: "), err
    assert not data.exists(), sorted(p.name for p in data.iterdir())


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_setup_that_fails_at_start_is_one_line_naming_why(tmp_path: Path, command: str) -> None:
    """Seen: GROVE_STREAM_REPLICAS=3 grove-export serve (the local nats-server is one node): a traceback
    ending in "RuntimeError: grove-export setup failed; see …/setup.log", the reason only in that file."""
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {"GROVE_STREAM_REPLICAS": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", command, "--data", str(tmp_path / "data"),
                             "--port", str(free_port())], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("grove-export: the local stack did not start: grove-export setup failed: ") and \
        "replicas > 1 not supported" in err and "setup.log" in err, err
