"""``grove-export run janitor`` (compose's long-running janitor) is stopped by SIGTERM — ``docker compose
stop``, a pod deleted — as every other ``run SERVICE`` is: at once, exit 0, its exit hooks run (the
traces' flush). SIGTERM's default ended it, exit 143, between runs or in the middle of one. A run cut
short is as safe as a killed one: every act is a fenced append or an idempotent delete."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import connect
from shared.core import events as ev
from tests.support.env import build, settings_for, to_env


async def _one_export(values: dict[str, Any]) -> None:
    bus = await connect(build(values), "test", ensure=True)
    try:
        await bus.log.append(ev.ExportRequested(export_id="exp_1", tenant_id="t1", user_id="u",
                                                user_email="a@example.org", username="autumn"), 0)
    finally:
        await bus.close()


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["between runs", "in the middle of a run"])
def test_sigterm_stops_the_long_running_janitor_with_exit_0(tmp_path: Path, nats_server: NatsServer,
                                                            when: str) -> None:
    values = settings_for(tmp_path, nats_server.url, janitor_interval_s=3600)
    asyncio.run(_one_export(values))
    faults = tmp_path / "faults"
    faults.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values),
           "GROVE_FAULTS_DIR": str(faults)}
    if when == "in the middle of a run":
        env["GROVE_FAULTS_SLOW"] = "janitor.read:120"  # the run holds after reading exp_1's log
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "janitor"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if when == "between runs":
            assert proc.stdout is not None
            line = proc.stdout.readline()  # the first run's summary (the test's timeout bounds the wait)
            assert line.startswith("janitor: "), line  # the first run is over; the next is an hour on
        else:
            held = faults / "janitor.read.reached.count"
            _until(held.exists, 60, "the run to hold mid-way")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
