"""An interrupted command whose terminal is gone (SIGHUP after the ssh session dropped: every write to
stderr and stdout fails with EIO) still exits 130 once its clean-up is done. Seen: the undo ran, then
the line saying the command did not finish raised OSError out of main(), and the exit code was 1."""

from __future__ import annotations

import errno
import io
import sys
from pathlib import Path

import pytest

import services.cli as cli


class Gone(io.StringIO):
    """A terminal that closed: every write fails as the kernel fails it."""

    def write(self, s: str) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def flush(self) -> None:
        raise OSError(errno.EIO, "Input/output error")


@pytest.fixture
def terminal_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    return []


def _main_without_a_terminal(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    """main() with stderr and stdout gone (set here, in the test's call: pytest's capture sets its own
    streams when the call begins)."""
    monkeypatch.setattr(sys, "stderr", Gone())
    monkeypatch.setattr(sys, "stdout", Gone())
    cli.main(argv)


def test_a_command_that_undid_its_work_exits_130_though_its_line_cannot_be_written(
        terminal_gone: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def cut_short(args: object, settings: object) -> None:
        try:
            raise KeyboardInterrupt  # SIGHUP acts as Ctrl-C
        finally:
            terminal_gone.append("undone")  # the command's own clean-up (a restore deletes its streams)

    monkeypatch.setattr(cli, "cmd_verify", cut_short)
    with pytest.raises(SystemExit) as ended:
        _main_without_a_terminal(monkeypatch, ["verify", str(tmp_path / "a.zip")])
    assert ended.value.code == 130
    assert terminal_gone == ["undone"]


def test_what_main_takes_back_is_taken_back_before_the_line_that_cannot_be_written(
        terminal_gone: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def put_then_cut_short(args, settings) -> None:  # noqa: ANN001
        args.on_interrupt.append(lambda: terminal_gone.append("taken back"))
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_verify", put_then_cut_short)
    with pytest.raises(SystemExit) as ended:
        _main_without_a_terminal(monkeypatch, ["verify", str(tmp_path / "a.zip")])
    assert ended.value.code == 130
    assert terminal_gone == ["taken back"]
