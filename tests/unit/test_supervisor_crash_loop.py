"""A service of the local stack that dies at every start (a setting only it refuses, a port already
taken) is restarted less and less often, and `serve` says which one and where its log is. It was
restarted every 0.2 s for ever, each time a whole Python start, and `serve` said nothing."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from services.devtools.stack.supervisor import Child, Stack


def supervised(tmp_path: Path, args: list[str]) -> tuple[Stack, Child]:
    stack = Stack(tmp_path, services=())
    child = Child("crasher", args, dict(os.environ), tmp_path / "crasher.log", service="crasher")
    stack.children.append(child)
    child.start()
    stack._watch = threading.Thread(target=stack._supervise, daemon=True)
    stack._watch.start()
    return stack, child


def test_a_service_that_dies_at_every_start_is_restarted_less_and_less_often(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    false = shutil.which("false")
    assert false is not None
    stack, child = supervised(tmp_path, [false])
    try:
        time.sleep(4.0)  # a window to count restarts in, not a wait for anything
    finally:
        stack.stop()
    assert child.restarts <= 8, f"restarted {child.restarts} times in 4 s"
    err = capsys.readouterr().err
    assert "crasher" in err and str(tmp_path / "crasher.log") in err, err
    assert "exited with code 1, 3 times in a row soon after starting; starting it again in 0.5 s" in err, err


def test_a_service_that_ran_a_while_is_restarted_at_once_and_serve_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A process killed after it ran (a test's kill, an out-of-memory kill) is back within a poll. Seen:
    `kill -9` of a running service, and `serve` said nothing at all (nor did the service's log, which a
    SIGKILL gives no last line): the only sign of a crash was a second "app starting" in the log."""
    stack, child = supervised(tmp_path, ["sleep", "600"])
    try:
        child.started = time.monotonic() - 60  # as if it had run for a minute
        assert child.proc is not None
        killed = child.proc.pid
        child.proc.kill()
        deadline = time.monotonic() + 5
        while child.restarts == 0:
            assert time.monotonic() < deadline, "not restarted"
            time.sleep(0.05)
    finally:
        stack.stop()
    err = capsys.readouterr().err
    assert (f"grove-export serve: crasher (pid {killed}) was killed by SIGKILL; starting it again now — see "
            f"{tmp_path / 'crasher.log'}") in err, err


def test_a_restart_under_way_when_the_stack_stops_is_stopped_too(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervising thread found a service dead and was starting it again as stop() began: stop()
    passed that child while its old process was dead and returned, and the new one (in a session of
    its own) was left running."""
    stack, child = supervised(tmp_path, ["sleep", "600"])
    real_start = Child.start

    def start_as_stop_begins(self: Child) -> None:
        assert stack._stop.wait(10), "stop() never began"
        time.sleep(0.5)  # the Popen of a busy machine, while stop() goes on
        real_start(self)

    monkeypatch.setattr(Child, "start", start_as_stop_begins)
    assert child.proc is not None
    child.started = time.monotonic() - 60  # ran a while: restarted at once
    child.proc.kill()
    deadline = time.monotonic() + 5
    while child.due is None and child.restarts == 0:  # the supervisor has found it dead
        assert time.monotonic() < deadline, "the death was never noticed"
        time.sleep(0.02)
    stack.stop()
    assert stack._watch is not None
    stack._watch.join(5)  # whatever the supervising thread was doing is done
    try:
        assert child.proc.poll() is not None, "a service started during stop() is still running"
    finally:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(5)


def test_a_child_that_cannot_be_started_again_does_not_end_the_supervision(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Seen: any exception in the supervising thread (here Popen's: the program is gone, as EMFILE or
    EAGAIN would be) ended it without a word, and with it every child it had started again (their
    parent-death signal is tied to that thread); `serve` went on saying the stack was up."""
    stack, child = supervised(tmp_path, ["sleep", "600"])
    try:
        child.started = time.monotonic() - 60
        child.args = [str(tmp_path / "no-such-program")]  # the next start raises FileNotFoundError
        assert child.proc is not None
        child.proc.kill()
        deadline = time.monotonic() + 5
        while "could not start crasher again (FileNotFoundError" not in (err := capsys.readouterr().err):
            assert time.monotonic() < deadline, f"no line for the failed start: {err!r}"
            time.sleep(0.05)
        child.args = ["sleep", "600"]  # the program is back: the next round starts it
        deadline = time.monotonic() + 10
        while child.proc is None or child.proc.poll() is not None:
            assert stack._watch is not None and stack._watch.is_alive(), "the supervising thread ended"
            assert time.monotonic() < deadline, "not started again once it could be"
            time.sleep(0.05)
    finally:
        stack.stop()
