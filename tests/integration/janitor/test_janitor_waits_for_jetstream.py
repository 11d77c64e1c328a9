"""``grove-export run janitor`` whose NATS has no JetStream leader yet skips the run in one line.

Seen: run without a NATS user (the local stack's layout), the janitor waits GROVE_NATS_JETSTREAM_WAIT_S
for JetStream to answer, as every one-shot connection does; when it still did not, the run was logged as
"janitor run failed" with a traceback, where a NATS it cannot reach is one line ("janitor run skipped:
cannot reach NATS …"). Driven with one node of a three-node cluster: JetStream on, no leader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.permissions import render_accounts
from tests.cluster.secured import PASSWORDS
from tests.support.env import settings_for, to_env


def test_a_run_whose_jetstream_never_answers_is_one_line_and_the_janitor_goes_on(tmp_path: Path) -> None:
    ports, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    node = NatsServer(tmp_path / "n0", port=ports[0], name="n0", cluster=("grove", routes[0], routes),
                      log_file=tmp_path / "n0.log").start()  # the other two never start: no leader
    values = settings_for(tmp_path, node.url, nats_jetstream_wait_s=1, janitor_interval_s=0.2, log_json=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
    _two_runs_skipped_in_one_line_each(env, tmp_path, node)


def _two_runs_skipped_in_one_line_each(env: dict[str, str], tmp_path: Path, node: NatsServer) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "janitor"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        while sum("janitor run" in line for line in lines) < 2:  # two runs (the test's timeout bounds the wait)
            line = proc.stderr.readline()
            assert line, f"the janitor exited ({proc.poll()}):\n{''.join(lines)}"
            lines.append(line)
        assert proc.poll() is None  # it goes on: the next run tries again
    finally:
        proc.terminate()
        proc.wait(10)
        node.stop()
    text = "".join(lines)
    assert "Traceback" not in text and "janitor run failed" not in text, text
    skipped = [line for line in lines if "janitor run" in line]
    assert all(f"janitor run skipped: JetStream on NATS at {node.url}" in line and "did not answer within 1 s" in line
               for line in skipped), text


def test_as_its_own_nats_user_too(tmp_path: Path) -> None:
    """The janitor of compose and the CronJob runs as its own NATS user, who may not ask the account's info:
    its run met its bind's 10 s timeout and was logged as "janitor run failed" with a traceback. It waits
    as the admin's commands do, asking its own streams' info, and skips the run in the same one line."""
    ports, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    values = settings_for(tmp_path, f"nats://127.0.0.1:{ports[0]}", nats_jetstream_wait_s=1, janitor_interval_s=0.2,
                          log_json=False)
    conf = tmp_path / "accounts.conf"
    conf.write_text(render_accounts(PASSWORDS, prefix=values["subject_prefix"], kv_prefix=values["kv_prefix"],
                                    stream=values["stream_name"]))
    node = NatsServer(tmp_path / "n0", port=ports[0], name="n0", cluster=("grove", routes[0], routes),
                      config_file=conf, log_file=tmp_path / "n0.log").start()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values),
           "GROVE_NATS_USER": "janitor", "GROVE_NATS_PASSWORD": PASSWORDS["janitor"]}
    _two_runs_skipped_in_one_line_each(env, tmp_path, node)
