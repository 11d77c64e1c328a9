"""The one line the CLI prints for an infrastructure error names what failed, never one for another."""

from __future__ import annotations

import errno

from services.cli import _hint
from shared.runtime.settings import Settings


def test_a_taken_port_is_named_as_a_port_not_blamed_on_nats() -> None:
    """Seen: a gateway whose port another program held said "is NATS … reachable?"."""
    taken = OSError(errno.EADDRINUSE, "address already in use")
    line = _hint(taken, Settings(port=18080), "nats://127.0.0.1:4222")
    assert line == "address already in use: port 18080 (GROVE_PORT) is taken by another program"
    line = _hint(taken, Settings(port=18080, metrics_port=9100), "nats://127.0.0.1:4222")
    assert "port 18080 (GROVE_PORT) or 9100 (GROVE_METRICS_PORT)" in line and "NATS" not in line
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    assert _hint(refused, Settings(), "nats://127.0.0.1:4222") == \
        "NATS at nats://127.0.0.1:4222 failed: connection refused (is nats-server running there?)"


def test_why_nats_could_not_be_reached_is_said_in_words_without_a_class_name() -> None:
    """Seen: `NoServersError: nats: no servers available ... (reachable with GROVE_NATS_USER/
    GROVE_NATS_PASSWORD?)` with no user set; the reason (refused, unknown host) was lost."""
    import socket

    from nats.errors import AuthorizationError, NoServersError

    from shared.bus.connect import unreachable_reason

    assert unreachable_reason(socket.gaierror(-2, "Name or service not known")) == \
        "unknown host (Name or service not known)"
    assert unreachable_reason(TimeoutError()) == "no answer in time"
    assert unreachable_reason(AuthorizationError()) == \
        "the server refused the connection without a user (set GROVE_NATS_USER and GROVE_NATS_PASSWORD)"
    assert "user 'catalog' and its password" in unreachable_reason(AuthorizationError(), "catalog")
    assert unreachable_reason(NoServersError()) == "no servers available for connection"


def test_a_refused_password_is_the_reason_even_when_a_later_try_met_the_closed_connection() -> None:
    """Seen: `GROVE_NATS_USER=admin GROVE_NATS_PASSWORD=wrong grove-export events exp_1` said "the
    server refused the user 'admin' and its password" most times, and now and then "Connection reset
    by peer": the server closes the connection after refusing the login, nats-py's second try met
    that close, and the reason was taken from the last failure."""
    from nats.errors import AuthorizationError, NoServersError

    from shared.bus.connect import failure_reason

    refused = "the server refused the user 'admin' and its password (GROVE_NATS_USER, GROVE_NATS_PASSWORD)"
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert failure_reason([AuthorizationError(), reset], NoServersError(), "admin") == refused
    assert failure_reason([reset, AuthorizationError()], NoServersError(), "admin") == refused
    assert failure_reason([reset], NoServersError(), "admin") == "Connection reset by peer"  # nothing better said
    assert failure_reason([], ConnectionRefusedError(), "admin") == "connection refused (is nats-server running there?)"


def test_data_before_the_command_means_the_commands_own_data_folder() -> None:
    """Seen: `grove-export --data DIR seed` got argparse's "invalid choice"."""
    from services.cli import data_before_command, parser

    args = parser().parse_args(["--data", "/srv/grove", "exports", "--tenant", "t1"])
    assert data_before_command(args) is None and args.data == "/srv/grove"
    args = parser().parse_args(["--data", "/srv/grove", "seed", "--data", "/srv/grove"])
    assert data_before_command(args) is None and args.data == "/srv/grove"
    args = parser().parse_args(["seed", "--data", "/srv/grove"])
    assert data_before_command(args) is None and args.data == "/srv/grove"
    args = parser().parse_args(["--data", "/a", "seed", "--data", "/b"])
    assert data_before_command(args) == "two data folders given: --data /a and --data /b"
    args = parser().parse_args(["--data", "/a", "verify", "x.zip"])
    assert data_before_command(args) == "verify takes no --data"


def test_a_taken_port_names_only_the_port_that_service_binds() -> None:
    """Seen: `run notifier` with GROVE_METRICS_PORT=9317 taken said "port 8080 (GROVE_PORT) or 9317
    (GROVE_METRICS_PORT) is taken": a step service never binds GROVE_PORT, and the gateway never binds
    GROVE_METRICS_PORT (compose sets it for every service), so the operator was sent after a port that
    was not the one."""
    taken = OSError(errno.EADDRINUSE, "address already in use")
    s = Settings(port=18080, metrics_port=9317)
    assert _hint(taken, s, "nats://127.0.0.1:4222", service="notifier") == \
        "address already in use: port 9317 (GROVE_METRICS_PORT) is taken by another program"
    assert _hint(taken, s, "nats://127.0.0.1:4222", service="gateway") == \
        "address already in use: port 18080 (GROVE_PORT) is taken by another program"


def test_ctrl_c_is_a_failure_of_a_command_that_did_not_finish_and_the_way_a_service_stops(
        tmp_path, monkeypatch, capsys) -> None:
    """Seen: `grove-export import` cut short by Ctrl-C exited 0, so `import … && next-step` went on
    as if the tenant were restored. A service in the foreground (`run`, `serve`) ends this way."""
    import pytest

    import services.cli as cli

    def interrupted(args, settings) -> None:
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_verify", interrupted)
    monkeypatch.setattr(cli, "cmd_run", interrupted)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["verify", str(tmp_path / "a.zip")])
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "grove-export: interrupted; verify did not finish\n"
    cli.main(["run", "catalog"])  # returns: a service stopped with Ctrl-C has done what it was asked
    assert capsys.readouterr().err == ""


def test_a_content_database_error_reaches_the_terminal_with_its_control_characters_escaped(
        tmp_path, monkeypatch, capsys) -> None:
    """A database error can quote a value an imported archive chose (PostgreSQL's DETAIL names the
    key of a unique violation): it is printed as a member name is, escaped."""
    import pytest

    import services.cli as cli
    from shared.content.port import ContentError

    def failing(args, settings) -> None:
        raise ContentError("duplicate key (id)=(\x1b]0;pwned\x07\u202eexe.jpg)")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "cmd_verify", failing)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["verify", str(tmp_path / "a.zip")])
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and err.count("\n") == 1
    assert "\x1b" not in err and "\u202e" not in err and "\\x1b]0;pwned" in err, ascii(err)


def test_a_command_run_in_process_puts_the_signal_handlers_back(tmp_path, monkeypatch) -> None:
    """main() turns SIGTERM and SIGHUP into Ctrl-C for an operator command; called in-process (as
    tests do) it left them so for the rest of the process."""
    import signal

    import pytest

    from services.cli import main

    monkeypatch.chdir(tmp_path)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(SystemExit) as ended:
        main(["verify", str(tmp_path / "missing.zip")])
    assert ended.value.code != 0
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_an_oserror_of_this_machine_without_a_file_name_is_not_blamed_on_nats() -> None:
    """Seen: `verify` whose read of the archive failed with EIO said "NATS at … failed: Input/output
    error": every OSError without a file name was taken for the server's. Only nats-py's own errors, a
    wait for the bus that ran out and a socket's error name NATS."""
    from nats.errors import NoRespondersError

    where = "nats://127.0.0.1:4222"
    assert _hint(OSError(errno.EIO, "Input/output error"), Settings(), where, command="import") == \
        ("import failed on this machine: a local file or device could not be read or written: Input/output error "
         "(EIO), not a failure of NATS")
    assert "NATS at" not in _hint(IsADirectoryError(errno.EISDIR, "Is a directory"), Settings(), where, command="verify")
    for theirs in (NoRespondersError(), TimeoutError(), ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")):
        assert _hint(theirs, Settings(), where, command="events").startswith(f"NATS at {where} failed: "), theirs


def test_data_var_given_after_the_command_is_a_second_folder_like_any_other() -> None:
    """Seen: `grove-export --data /a restore --replace B --data var` replaced /a's streams, without a word:
    `--data var` typed after the command was taken for the default (no --data) and /a won, while `--data /b`
    there is refused as a second folder. Typed, `var` is a folder too."""
    from services.cli import data_before_command, parser

    args = parser().parse_args(["--data", "/a", "restore", "--replace", "B", "--data", "var"])
    assert data_before_command(args) == "two data folders given: --data /a and --data var"
    args = parser().parse_args(["--data", "var", "exports", "--data", "var"])  # the same folder twice: no conflict
    assert data_before_command(args) is None and args.data == "var"
    args = parser().parse_args(["--data", "/a", "restore", "B"])  # only before: the command's default gives way
    assert data_before_command(args) is None and args.data == "/a"
