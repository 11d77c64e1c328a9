"""The local stack's nats-server, started again after a crash, runs but does not listen on its port: it is
stopped once its listen timeout passes and started again, with a line each time, until one listens. It was
said once ("nats-server did not start again") and then taken as alive for ever: every service retried a
port nothing would ever answer on.

Made real, no mock: the restarts run with an extra ``-p`` (the last one counts), so a real nats-server
runs, listening on another port than the one the stack and its services use."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port
from services.devtools.stack.supervisor import Stack, listen_timeout, local_env


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def test_a_restarted_nats_server_that_does_not_listen_is_stopped_and_started_again_until_one_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, port = tmp_path / "data", free_port()
    stack = Stack(data, port=port, env=local_env(data, port), services=()).start()
    try:
        server, child = stack.nats, stack._server
        assert server is not None and server.proc is not None and child is not None
        child.listen_s = 2.0  # 15 s in use: a test need not wait that long for each try
        server.extra_args = ["-p", str(free_port())]  # the next starts listen elsewhere
        child.started = time.monotonic() - 60  # it ran a while: its death is a crash, not a failed start
        first = server.proc.pid
        server.proc.kill()

        deadline = time.monotonic() + 30
        hung: list[int] = []
        while len(hung) < 2:  # two restarts in a row that did not listen, each stopped and said
            assert time.monotonic() < deadline, f"not stopped and started again: {capsys.readouterr().err!r}"
            assert child.proc is not None
            if child.proc.pid not in (first, *hung) and child.proc.poll() is not None:
                hung.append(child.proc.pid)
            time.sleep(0.05)
        server.extra_args = []  # the next start listens on its port again
        while not (listens(server.port) and child.listening):
            assert time.monotonic() < deadline, f"never listened again: {capsys.readouterr().err!r}"
            time.sleep(0.1)
        err = capsys.readouterr().err
        for pid, limit in zip(hung, (2, 4), strict=True):
            assert (f"grove-export serve: nats-server (pid {pid}) did not listen on port {server.port} within "
                    f"{limit} s and was stopped; starting it again now — see {data / 'logs' / 'nats.log'}") in err, err
    finally:
        stack.stop()


@pytest.mark.parametrize(("failures", "seconds"), [(0, 15), (1, 30), (2, 60), (3, 120), (4, 240), (8, 3840)])
def test_a_restart_may_take_longer_to_listen_after_each_one_that_did_not(failures: int, seconds: float) -> None:
    """A nats-server only slow to listen (a big store to recover) is never stopped for ever at the same mark."""
    assert listen_timeout(failures) == seconds
