"""An interrupted command whose undo fails (the archive `assemble` had put in place cannot be removed:
its folder was made read-only, the disk went away) still says its one line and exits 130. Seen: the
undo's OSError came out of main() as a traceback, exit 1, and the interrupted line was never said."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import services.cli as cli


def test_an_undo_that_fails_is_one_line_before_the_interrupted_line_and_the_exit_is_130(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    ran: list[str] = []

    def failing_undo() -> None:
        raise PermissionError(errno.EACCES, "Permission denied", "/srv/out/a.zip")

    def put_then_cut_short(args, settings) -> None:  # noqa: ANN001
        args.on_interrupt.append(lambda: ran.append("first put, undone last"))
        args.on_interrupt.append(failing_undo)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_verify", put_then_cut_short)
    with pytest.raises(SystemExit) as ended:
        cli.main(["verify", str(tmp_path / "a.zip")])
    assert ended.value.code == 130
    assert ran == ["first put, undone last"]  # the other undos still ran
    err = capsys.readouterr().err
    assert err == ("grove-export: could not take back what verify had put in place: Permission denied: "
                   "/srv/out/a.zip\ngrove-export: interrupted; verify did not finish\n"), err
