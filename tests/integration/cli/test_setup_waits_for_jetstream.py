"""``grove-export setup`` run as a NATS cluster forms — compose's first ``up``, the Kubernetes setup Job
beside a new NATS — waits for JetStream to answer. Nodes that have just started have JetStream on (their
health check passes) before a majority has elected the leader the JetStream API needs; a request sent
then is never answered, and setup failed after 10 s with "run it as the admin user", whoever it ran as
(compose then started no service: they wait for setup to complete). Driven deliberately: one node of a
three-node cluster, setup started against it, the other two started once setup says it waits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import nats.js.errors
import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from shared.bus.connect import connect, open_nats, unreachable_reason
from shared.bus.ready import JetStreamNotReady
from tests.support.backups import backup_folder
from tests.support.env import build, settings_for, to_env
from tests.support.nojetstream import no_jetstream_server

WAITING = "does not answer yet"


def cluster(tmp_path: Path) -> list[NatsServer]:
    ports, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    return [NatsServer(tmp_path / f"n{i}", port=ports[i], name=f"n{i}", cluster=("grove", routes[i], routes),
                       log_file=tmp_path / f"n{i}.log") for i in range(3)]


def test_setup_waits_for_a_forming_cluster_and_sets_it_up(tmp_path: Path) -> None:
    nodes = cluster(tmp_path)
    nodes[0].start()  # JetStream on, no leader: the other two are not up
    values = settings_for(tmp_path, ",".join(n.url for n in nodes), stream_replicas=3)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
    setup = subprocess.Popen([sys.executable, "-m", "services.cli", "setup", "--nats-only"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert setup.stderr is not None
        waiting = setup.stderr.readline()  # setup has asked, and JetStream did not answer
        assert WAITING in waiting, waiting
        for node in nodes[1:]:
            node.start()
        out, err = setup.communicate(timeout=90)
        assert setup.returncode == 0, waiting + err
        assert f"stream {values['stream_name']}: " in out and "3 replica(s)" in out, out

        async def replicas() -> int:
            bus = await connect(build(values), "test", persistent=False)
            try:
                return int((await bus.js.stream_info(values["stream_name"])).config.num_replicas or 0)
            finally:
                await bus.close()

        assert asyncio.run(replicas()) == 3
    finally:
        if setup.poll() is None:
            setup.kill()
        for node in nodes:
            node.stop()


async def test_a_cluster_that_never_forms_is_one_line_after_the_wait(tmp_path: Path) -> None:
    nodes = cluster(tmp_path)
    nodes[0].start()
    try:
        settings = build(settings_for(tmp_path, nodes[0].url, nats_jetstream_wait_s=1))
        started = time.monotonic()
        with pytest.raises(JetStreamNotReady) as caught:
            await open_nats(settings, "setup", persistent=False)
        assert time.monotonic() - started < 10
    finally:
        nodes[0].stop()
    reason = unreachable_reason(caught.value)
    assert reason.startswith("its JetStream did not answer within 1 s: JetStream is not ready there (a cluster "
                             "without a JetStream leader"), reason


# The wait is for a cluster still forming, not for a NATS that will never answer: a server without
# JetStream (no -js, no jetstream block) has no responder for the JetStream API, and an account without
# JetStream answers "JetStream not enabled for account". Both were taken for a forming cluster: setup
# waited its 60 s, then blamed "a cluster without a JetStream leader" for a setting.

async def test_a_server_without_jetstream_is_said_at_once_not_waited_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli import _setup_nats

    with no_jetstream_server() as url:
        settings = build(settings_for(tmp_path, url))
        started = time.monotonic()
        with pytest.raises(nats.js.errors.ServiceUnavailableError) as caught:  # nats-py's "no responders"
            await _setup_nats(settings)
        took = time.monotonic() - started
    assert took < 10, f"setup waited {took:.0f} s for a server that has no JetStream"
    assert WAITING not in capsys.readouterr().err
    reason = unreachable_reason(caught.value)  # main()'s line, as every command's (the test below)
    assert "JetStream is not enabled there" in reason and "-js" in reason and "leader" not in reason, reason


async def test_an_account_without_jetstream_is_said_at_once_not_waited_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli import _setup_nats

    conf = tmp_path / "accounts.conf"
    conf.write_text('accounts {\n  PLAIN { users = [{user: "plain", password: "pw"}] }\n}\n')  # no jetstream
    server = NatsServer(tmp_path / "js", port=free_port(), config_file=conf, log_file=tmp_path / "nats.log").start()
    try:
        settings = build({**settings_for(tmp_path, server.url), "nats_user": "plain", "nats_password": "pw"})
        started = time.monotonic()
        with pytest.raises(nats.js.errors.ServiceUnavailableError) as caught:
            await _setup_nats(settings)
        took = time.monotonic() - started
    finally:
        server.stop()
    assert took < 10, f"setup waited {took:.0f} s for an account that has no JetStream"
    assert WAITING not in capsys.readouterr().err
    reason = unreachable_reason(caught.value, "plain")
    assert reason.startswith("JetStream is not enabled for user 'plain''s account (the server said: JetStream not "
                             "enabled for account)"), reason


def test_operator_commands_on_a_server_without_jetstream_say_so_in_one_line(tmp_path: Path) -> None:
    """Seen: a fresh server started for a restore without -js (the README's line, one flag short):
    `exports`, `events` and `backup` said "NATS at … failed: ServiceUnavailableError: code=None
    err_code=None description='None'", `restore` "… failed: no responders available for request" —
    while `setup` named the cause. Every command that reads the log now says what `setup` says, and `setup`
    and `restore` say it as every other command, at once: JetStream's wait is for one not ready yet."""
    with no_jetstream_server() as url:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, "GROVE_NATS_URL": url}
        restorable = backup_folder(tmp_path / "restorable")
        for command in (["exports"], ["events", "exp_x"], ["backup", str(tmp_path / "backup")],
                        ["restore", str(restorable)], ["setup", "--nats-only"]):
            out = subprocess.run([sys.executable, "-m", "services.cli", *command], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60, check=False)
            assert (out.returncode, out.stderr.count("\n")) == (1, 1), (command, out.stderr)
            assert out.stderr.startswith(f"grove-export: NATS at {url} (from GROVE_NATS_URL) failed: nothing "
                                         "answers its JetStream API: JetStream is not enabled there — start "
                                         "nats-server with -js"), (command, out.stderr)
    assert not (tmp_path / "backup").exists()
