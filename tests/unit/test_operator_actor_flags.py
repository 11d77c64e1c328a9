"""--reason and --by are recorded in the log with every operator action: a blank one is a bad command
line (one line, exit 2) on every command that takes them — erase-tenant too, whose --reason is optional
— never a blank reason in the log or, for an empty --by, the login name recorded instead."""

from __future__ import annotations

import pytest

from services.cli import parser

ACTIONS = [["cancel", "exp_x"], ["retry", "exp_x"], ["resend", "exp_x"], ["unlock", "t1"], ["erase-tenant", "t1"]]


@pytest.mark.parametrize("command", ACTIONS, ids=lambda c: c[0])
@pytest.mark.parametrize(("flag", "value"), [("--reason", "   "), ("--reason", ""), ("--by", ""), ("--by", "  ")])
def test_a_blank_reason_or_operator_name_is_a_bad_command_line(
        command: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    others = {"--reason": "ticket 9", "--by": "ada"}
    others[flag] = value
    with pytest.raises(SystemExit) as e:
        parser().parse_args([*command, *(x for k, v in others.items() for x in (k, v))])  # no server asked
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and flag in err and "Traceback" not in err, err
