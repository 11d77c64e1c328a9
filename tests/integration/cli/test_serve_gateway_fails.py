"""A gateway that dies at every start (here GROVE_HOST, an address it cannot listen on: a setting only it
refuses) ends `grove-export serve` and `demo` within seconds, exit 1, with one line saying why and
everything stopped. `serve` waited the whole 60 s for its /readyz while it died and was restarted nine
times, then said "local stack started, but its gateway did not answer" and went on running without one;
`demo` waited the 60 s too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port
from tests.integration.cli.test_serve_signals import kill_all, running_from

NOT_HERE = "192.0.2.1"  # TEST-NET-1 (RFC 5737): an address no interface of this machine has


@pytest.mark.parametrize(("command", "said"), [("serve", ": the local stack did not start"), ("demo", " demo failed")])
def test_a_gateway_that_dies_at_every_start_stops_the_stack_within_seconds_saying_why(
        tmp_path: Path, command: str, said: str) -> None:
    data, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {"GROVE_HOST": NOT_HERE}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", command, "--data", str(data), "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=40)  # it waited 60 s, then kept running
        took = time.monotonic() - started
        lines = err.strip().splitlines()
        assert proc.returncode == 1, (proc.returncode, out, err)
        assert lines[-1] == (
            f"grove-export{said}: the gateway died 3 times in a row soon after starting; "
            f"it exited with code 2: invalid settings: GROVE_HOST: the gateway cannot listen on {NOT_HERE}:{port} "
            f"(error while attempting to bind on address ('{NOT_HERE}', {port}): cannot assign requested address) "
            f"(see {data / 'logs' / 'gateway.log'})"), err
        assert "local stack up" not in out and "local stack started" not in out, out
        assert took < 30, f"{took:.1f} s to give up"
        assert not (data / "stack.json").exists(), "the stack was not stopped (its stack.json is left)"
        assert not running_from(data), "a process of the stack outlived serve"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        kill_all(data)
