"""A new terminal with no GROVE_* environment: the CLI finds the running local stack through its
data folder, warns about a token for a tenant it does not know, and names the server it asked."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import free_port
from services.devtools.stack.supervisor import Stack, gateway_ready, how_it_ended, local_env
from tests.support.tools import without_dac_override


def new_shell(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | extra
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def http(method: str, url: str, token: str) -> dict[str, object]:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return dict(json.loads(resp.read()))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, int]]:
    data, port = tmp_path / "data", free_port()
    stack = Stack(data, port=port, env=local_env(data, port)).start()
    try:
        assert stack.wait_gateway(60), "the local stack did not become ready"
        yield stack, port
    finally:
        stack.stop()


def test_operator_commands_in_a_new_terminal_find_the_local_stack_through_its_data_folder(
        stack: tuple[Stack, int], tmp_path: Path) -> None:
    running, port = stack
    data = running.data_dir
    assert (data / "stack.json").is_file() and running.nats is not None
    assemblers = [c.name for c in running.children if c.service == "assembler"]
    from services.devtools.stack.supervisor import usable_cpus
    assert assemblers == (["assembler", "assembler-2"] if usable_cpus() >= 2 else ["assembler"])
    seeded = new_shell("seed", "--images", "2", "--data", str(data), cwd=tmp_path)
    assert seeded.returncode == 0 and seeded.stderr == "", seeded.stderr  # its stack runs: nothing to say
    tenant = seeded.stdout.strip()

    token = new_shell("token", "--tenant", tenant, "--user", "u1", "--email", "a@example.org", "--username", "autumn",
                      "--data", str(data), cwd=tmp_path)
    assert token.returncode == 0 and token.stderr == "", token.stderr  # a tenant it knows: no warning
    typo = new_shell("token", "--tenant", tenant + "x", "--user", "u1", "--email", "a@example.org",
                     "--username", "autumn", "--data", str(data), cwd=tmp_path)
    assert typo.returncode == 0 and typo.stdout.count(".") == 2, typo  # still a token (a JWT)
    assert typo.stderr.startswith("grove-export: warning: ") and f"no tenant '{tenant}x'" in typo.stderr

    bearer = token.stdout.strip()
    export_id = str(http("POST", f"http://127.0.0.1:{port}/api/export", bearer)["exportId"])
    deadline = time.monotonic() + 60
    while http("GET", f"http://127.0.0.1:{port}/api/export/status/{export_id}", bearer)["status"] != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # The data folder as the current folder (a clone's var/ is the default) and as --data.
    (tmp_path / "clone").mkdir()
    (tmp_path / "clone" / "var").symlink_to(data)
    events = new_shell("events", export_id, cwd=tmp_path / "clone")
    assert events.returncode == 0, events.stderr
    names = [line.split()[3] for line in events.stdout.splitlines()]
    assert names[0] == "ExportRequested" and "ExportCompleted" in names
    dry = new_shell("--data", str(data), "janitor", "--dry-run", cwd=tmp_path)  # --data before the command too
    assert dry.returncode == 0 and dry.stdout.splitlines()[-1].startswith("janitor: would expire 0"), dry.stderr

    missing = new_shell("events", "exp_000000000000000000000000", "--data", str(data), cwd=tmp_path)
    assert missing.returncode == 1  # the log says no, as from `show` (a bad argument is 2)
    assert missing.stderr.strip() == (f"grove-export: no events for export 'exp_000000000000000000000000' in stream "
                                      f"EXPORTS on NATS {running.nats.url} (from {(data / 'stack.json').resolve()})")
    mistaken = new_shell("events", tenant, "--data", str(data), cwd=tmp_path)  # a tenant's id, not an export's
    assert mistaken.returncode == 1
    assert mistaken.stderr.strip().endswith(
        f"; '{tenant}' is a tenant: `grove-export exports --tenant {tenant}` lists its exports"), mistaken.stderr
    listed = new_shell("exports", "--tenant", tenant, "--data", str(data), cwd=tmp_path)
    assert listed.returncode == 0 and export_id in listed.stdout and listed.stderr == "", listed
    none = new_shell("exports", "--tenant", tenant + "x", "--data", str(data), cwd=tmp_path)
    assert none.returncode == 0 and "page 1: 0 exports" in none.stdout
    assert none.stderr.startswith(f"grove-export: the log holds no export of tenant '{tenant}x' (a typo?"), none


def test_a_nats_server_killed_under_the_stack_is_started_again_and_exports_run_again(
        stack: tuple[Stack, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Seen on call: `kill -9` of the local stack's nats-server (the out-of-memory killer does the same)
    and `serve` said nothing and went on: the server stayed a zombie, every service retried it for
    ever and the gateway answered 503 "Not connected to the event bus" until Ctrl-C. It is started
    again on its port and store, said on stderr, and the services reconnect: an export runs."""
    running, port = stack
    data = running.data_dir
    assert running.nats is not None and running.nats.proc is not None
    killed = running.nats.proc.pid
    running.nats.proc.kill()
    deadline = time.monotonic() + 30
    while running.nats.proc is None or running.nats.proc.pid == killed or running.nats.proc.poll() is not None:
        assert time.monotonic() < deadline, "nats-server was not started again"
        time.sleep(0.1)
    assert (f"grove-export serve: nats-server (pid {killed}) was killed by SIGKILL; starting it again now — see "
            f"{data / 'logs' / 'nats.log'}") in capsys.readouterr().err

    tenant = new_shell("seed", "--images", "2", "--data", str(data), cwd=tmp_path).stdout.strip()
    bearer = new_shell("token", "--tenant", tenant, "--user", "u1", "--email", "a@example.org", "--username",
                       "autumn", "--data", str(data), cwd=tmp_path).stdout.strip()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # the gateway answers 503 until it has reconnected
        try:
            export_id = str(http("POST", f"{base}/api/export", bearer)["exportId"])
            break
        except urllib.error.HTTPError as e:
            assert e.code == 503 and time.monotonic() < deadline, (e.code, e.read())
            time.sleep(0.2)
    while http("GET", f"{base}/api/export/status/{export_id}", bearer)["status"] != "complete":
        assert time.monotonic() < deadline, "the export did not complete after nats-server came back"
        time.sleep(0.2)


def test_a_url_set_by_hand_wins_and_the_message_says_where_it_came_from(stack: tuple[Stack, int],
                                                                       tmp_path: Path) -> None:
    running, _ = stack
    dead = f"nats://127.0.0.1:{free_port()}"
    out = new_shell("events", "exp_000000000000000000000000", "--data", str(running.data_dir), cwd=tmp_path,
                    GROVE_NATS_URL=dead)
    assert (out.returncode, out.stderr) == (2, f"grove-export: cannot reach NATS at {dead} (from GROVE_NATS_URL): "
                                               f"connection refused (is nats-server running there?)\n"), out.stderr


def test_seed_with_a_data_folder_and_no_stack_running_seeds_that_folder(tmp_path: Path) -> None:
    """Seen in use: `seed --data DIR` after `demo` had stopped wrote into ./var of the working
    directory, and the export from DIR then found no such tenant."""
    data, cwd = tmp_path / "data", tmp_path / "elsewhere"
    cwd.mkdir()
    seeded = new_shell("seed", "--posts", "2", "--images", "1", "--files", "0", "--data", str(data), cwd=cwd)
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stderr.startswith(f"grove-export: no local stack is running in {data}/; seeded its folder"), \
        seeded.stderr  # seeding a folder no stack serves is said, not silent
    tenant = seeded.stdout.strip()
    assert (data / "content.db").is_file() and not (cwd / "var").exists()
    assert any((data / "store").rglob("*")), "the image went to the data folder's store"
    with sqlite3.connect(data / "content.db") as db:
        assert db.execute("SELECT count(*) FROM posts WHERE tenant_id = ?", (tenant,)).fetchone() == (2,)


def test_a_second_local_stack_in_the_same_folder_is_refused_and_the_first_keeps_its_file(
        stack: tuple[Stack, int], tmp_path: Path) -> None:
    """Seen in use: `make run` beside a running `make serve` started a second nats-server on the same
    store folder, and on exit removed the first stack's stack.json. Its refusal then said "pass --data",
    which `make run` takes no way to."""
    running, port = stack
    data = running.data_dir
    for command in (["serve", "--port", str(free_port())], ["demo", "--port", str(free_port())]):
        out = new_shell(*command, "--data", str(data), cwd=tmp_path)
        assert out.returncode == 2, out
        assert out.stderr.startswith(f"grove-export: a local stack already runs in {data} (pid {os.getpid()}, "
                                     f"gateway http://127.0.0.1:{port})"), out.stderr
        # `make run` beside `make serve` said "pass --data", which a person typing make cannot: say how
        assert "(with make, whose `make run` and `make serve` use var/: `.venv/bin/grove-export demo --data DIR`" \
            in out.stderr, out.stderr
    assert (data / "stack.json").is_file()
    assert len([p for p in (data / "logs").glob("nats*.log")]) == 1


def test_a_taken_port_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Seen in use: a refused `serve` had made logs/, secrets.json and stack.lock in its data folder. And
    `make run` on a taken port said only "pass --port", which a person typing make cannot: PORT=N."""
    import socket

    kept = tmp_path / "kept"  # a folder with a stack's data in it, not running: left exactly as it was
    (kept / "store").mkdir(parents=True)
    (kept / "content.db").write_bytes(b"rows")
    before = sorted(p.relative_to(kept) for p in kept.rglob("*"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        for command, data in (("serve", tmp_path / "data"), ("demo", tmp_path / "data"), ("serve", kept)):
            out = new_shell(command, "--port", str(busy), "--data", str(data), cwd=tmp_path)
            assert out.returncode == 2 and out.stderr.strip() == (
                f"grove-export: port {busy} is in use by another program: pass --port with a free one "
                f"(with make: `make run PORT=N`, `make serve PORT=N`)"), out.stderr
            assert not (tmp_path / "data").exists(), sorted((tmp_path / "data").rglob("*"))
    assert sorted(p.relative_to(kept) for p in kept.rglob("*")) == before


def test_a_data_folder_that_cannot_be_written_is_refused_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    """Seen: `serve --data` (and `demo`) on a folder its user may not write said `Permission denied:
    <data>/secrets.json.tmp`, a file nobody had asked for, exit 1 (the code of a failure on the way,
    not of a wrong command line). As root the folder's mode does not stop a write: the command runs
    without the capability that lets root ignore it."""
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    prefix = without_dac_override()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    try:
        for command, data in (("serve", read_only), ("demo", read_only / "new" / "data")):
            out = subprocess.run([*prefix, sys.executable, "-m", "services.cli", command, "--port", str(free_port()),
                                  "--data", str(data)], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=60, check=False)
            assert out.returncode == 2 and out.stderr.strip() == (
                f"grove-export: the data folder {data} cannot be written here ({read_only} is not writable by this "
                f"user): pass --data with a folder you may write (the stack keeps its secrets, log, store and "
                f"databases there)"), (out.returncode, out.stderr)
            assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o700)


def test_seed_into_a_data_folder_that_cannot_be_written_says_so_as_a_command_line_error(tmp_path: Path) -> None:
    """Seen: `seed --data` on a read-only folder said "the content database …/content.db cannot be used:
    unable to open database file", exit 1, which did not say why; it is the --data given that is wrong."""
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    try:
        for data in (read_only, read_only / "new" / "data"):
            out = subprocess.run([*without_dac_override(), sys.executable, "-m", "services.cli", "seed", "--posts", "1",
                                  "--data", str(data)], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=60, check=False)
            assert (out.returncode, out.stderr) == (2, (
                f"grove-export: the data folder {data} cannot be written here ({read_only} is not writable by this "
                f"user): pass --data with a folder you may write (seed puts the content database and the store's "
                f"files there)\n")), (out.returncode, out.stderr)
            assert list(read_only.iterdir()) == []
    finally:
        read_only.chmod(0o700)


@pytest.mark.parametrize(("damage", "says"), [
    ({"secrets.json": '{"GROVE_JWT'}, "secrets file"),
    ({"nats-users.json": '{"admin'}, "NATS passwords file"),
    ({}, "GROVE_JWT_SECRET is shorter than 32 bytes"),  # with GROVE_JWT_SECRET=short below
])
def test_a_start_refused_for_a_damaged_file_or_a_weak_secret_writes_nothing(
        tmp_path: Path, damage: dict[str, str], says: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, text in damage.items():
        (data / name).write_text(text)
    weak = {} if damage else {"GROVE_JWT_SECRET": "short"}
    for command in ("serve", "demo"):
        out = new_shell(command, "--port", str(free_port()), "--data", str(data), cwd=tmp_path, **weak)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
        assert sorted(p.name for p in data.iterdir()) == sorted(damage), command


def test_an_operator_command_against_a_server_without_the_stream_names_that_server(
        nats_server: Any, tmp_path: Path) -> None:
    out = new_shell("exports", cwd=tmp_path, GROVE_NATS_URL=nats_server.url, GROVE_STREAM_NAME="NOT_HERE",
                    GROVE_KV_PREFIX="not_here")
    assert out.returncode == 1, out
    assert f"NATS {nats_server.url} (from GROVE_NATS_URL)" in out.stderr, out.stderr  # the server it asked


def test_serve_says_the_stack_is_up_once_its_gateway_answers(tmp_path: Path) -> None:
    """Seen: `serve` printed "local stack up — gateway http://127.0.0.1:PORT/export" as it started its
    processes, 2.4 s before the gateway listened: the link it had just printed was refused."""
    import signal

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    proc = subprocess.Popen(  # SIGINT as a terminal's Ctrl-C delivers it (a background job would ignore it)
        [sys.executable, "-m", "services.cli", "serve", "--data", str(tmp_path / "data"), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until serve says something (or ends)
        assert line.startswith(f"grove-export: local stack up — gateway http://127.0.0.1:{port}/export"), line
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:  # at once: no wait, no retry
            assert answer.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.endswith("grove-export: stack stopped\n"), (out, err)


def test_serve_with_another_data_folder_says_how_operator_commands_find_it(tmp_path: Path) -> None:
    """Seen: `serve --data DIR` said "operator commands … run from this folder find it through
    DIR/stack.json", but run from that folder without --data they look in ./var and said no local stack
    is running there. What the banner tells a person to do must work."""
    import shlex
    import signal

    # a space in the folder's name: the --data DIR said must be one argument to a shell, pasted
    port, data = free_port(), tmp_path / "else where"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    proc = subprocess.Popen(  # SIGINT as a terminal's Ctrl-C delivers it (a background job would ignore it)
        [sys.executable, "-m", "services.cli", "serve", "--data", str(data), "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        up, how = proc.stdout.readline(), proc.stdout.readline()
        assert up.startswith("grove-export: local stack up"), (up, how)
        assert f"--data {shlex.quote(str(data))}" in how, how
        if "run from this folder" in how:  # then so it must
            plain = new_shell("exports", cwd=tmp_path)
            assert plain.returncode == 0, (how, plain.stderr)
        with_data = new_shell("exports", "--data", str(data), cwd=tmp_path)
        assert with_data.returncode == 0, with_data.stderr
        # a second serve on that folder is refused with "use it": how, in the same words
        again = new_shell("serve", "--data", str(data), "--port", str(free_port()), cwd=tmp_path)
        assert again.returncode == 2 and "already runs" in again.stderr, again
        assert "run from this folder" not in again.stderr and f"--data {shlex.quote(str(data))}" in again.stderr, \
            again.stderr
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_ctrl_c_during_the_demo_stops_it_and_its_stack_at_once(tmp_path: Path) -> None:
    import signal

    from services.devtools.stack import supervisor

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {"GROVE_DEMO_THROTTLE_S": "0.5"}
    proc = subprocess.Popen(  # SIGINT as a terminal's Ctrl-C delivers it (a background job would ignore it)
        [sys.executable, "-m", "services.cli", "demo", "--data", str(data), "--port", str(free_port())],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        logs = data / "logs"  # either assembler replica may take the export
        while not any(": started" in log.read_text() for log in logs.glob("assembler*.log")):  # mid-export
            assert proc.poll() is None and time.monotonic() < deadline, "the demo's export never started"
            time.sleep(0.2)
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; stopping the local stack" in err and time.monotonic() - interrupted < 15
    assert not (data / "stack.json").exists()
    os.close(supervisor._lock(data))  # the folder is free for the next stack


def _armed_demo(tmp_path: Path, data: Path, arm: str) -> tuple[subprocess.Popen[str], str, str]:
    """``demo`` on ``data`` run by the Python source ``arm`` (which ends calling the CLI's main), with SIGINT as a
    terminal's Ctrl-C delivers it (a background job would ignore it): the process, its stdout and stderr."""
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", arm, "demo", "--data", str(data), "--port", str(free_port())],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out, err


def test_ctrl_c_as_the_demo_downloads_leaves_no_cut_off_archive_in_downloads(tmp_path: Path) -> None:
    """Seen: the demo wrote the download straight to downloads/grove-export-<user>-<day>.zip; a Ctrl-C as it
    downloaded left a cut-off ZIP there under the archive's name (over the whole one an earlier run that
    day had put there), exit 130: 111104 bytes of a 2.7 MB archive. downloads/ must hold nothing afterwards."""

    from services.devtools.stack import supervisor

    data = tmp_path / "data"
    # once the download's file is open (an audit hook sees it), the real SIGINT is sent as its first block
    # has been written (a profile hook sees the write return): mid-download, deterministically
    arm = ("import os, signal, sys\n"
           "def written(frame, event, arg):\n"
           "    if event == 'c_return' and getattr(arg, '__name__', '') == 'write' \\\n"
           "            and type(getattr(arg, '__self__', None)).__name__ == 'BufferedWriter':\n"
           "        sys.setprofile(None)\n"
           "        os.kill(os.getpid(), signal.SIGINT)\n"
           "def hook(event, args):\n"
           "    if event == 'open' and '/downloads/' in str(args[0]) and 'w' in str(args[1] or ''):\n"
           "        sys.setprofile(written)\n"
           "sys.addaudithook(hook)\n"
           "from services.cli import main\n"
           "main()\n")
    proc, out, err = _armed_demo(tmp_path, data, arm)
    assert "export exp_" in out and proc.returncode == 130, (proc.returncode, out, err)  # interrupted downloading
    assert "interrupted; stopping the local stack" in err, err
    assert (data / "downloads").is_dir() and list((data / "downloads").iterdir()) == []
    os.close(supervisor._lock(data))  # the folder is free for the next stack


def test_ctrl_c_as_the_demo_stops_its_stack_neither_cuts_the_stop_short_nor_loses_the_archive(
        tmp_path: Path) -> None:
    """Seen: a Ctrl-C in the 0.8 s the demo takes to stop its stack after a verified download raised
    KeyboardInterrupt inside ``stack.stop()``: exit 130, "interrupted; demo did not finish", no path,
    stack.json left in the folder and nats-server still running as the command returned (the kernel's
    parent-death signal took it a moment later). The stop is under way: it is finished, and the demo
    ends as it was ending."""

    from services.devtools.stack import supervisor

    data = tmp_path / "data"
    # the real SIGINT, sent as the demo's own stop begins (once the export is downloaded and verified)
    arm = ("import os, signal\n"
           "from services.devtools.stack import supervisor\n"
           "stop = supervisor.Stack.stop\n"
           "def stopping(self, *a, **k):\n"
           "    os.kill(os.getpid(), signal.SIGINT)\n"
           "    stop(self, *a, **k)\n"
           "    print('stop returned', flush=True)\n"
           "supervisor.Stack.stop = stopping\n"
           "from services.cli import main\n"
           "main()\n")
    proc, out, err = _armed_demo(tmp_path, data, arm)
    lines = out.splitlines()
    assert proc.returncode == 0 and "interrupted" not in err, (proc.returncode, out, err)
    assert lines[-2:] == ["stop returned", str(data.resolve() / "downloads" / Path(lines[-1]).name)], out
    assert Path(lines[-1]).is_file() and not (data / "stack.json").exists()
    os.close(supervisor._lock(data))  # the folder is free for the next stack


def test_a_start_that_fails_part_way_stops_its_nats_server_and_lets_the_folder_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The children run in sessions of their own: a nats-server left running by a failed start
    would outlive the command, and the held lock would refuse the next start in this process."""
    from services.devtools.stack import supervisor

    def failing_setup(env: dict[str, str], log_path: Path, timeout: float = 60.0) -> None:
        raise RuntimeError("grove-export setup failed; see the log")

    monkeypatch.setattr(supervisor, "run_setup", failing_setup)
    data, port = tmp_path / "data", free_port()
    stack = Stack(data, port=port, env=local_env(data, port))
    with pytest.raises(RuntimeError, match="setup failed"):
        stack.start()
    assert stack.nats is not None and stack.nats.proc is None  # it had started, and was stopped
    assert not stack.children and not (data / "stack.json").exists()
    os.close(supervisor._lock(data))  # the folder's lock is free again


def test_serve_runs_as_many_assemblers_as_asked_and_refuses_a_count_out_of_range(tmp_path: Path) -> None:
    import signal

    for bad in ("0", "17"):
        out = new_shell("serve", "--assemblers", bad, "--data", str(tmp_path / "bad"), cwd=tmp_path)
        assert out.returncode == 2 and out.stderr.strip() == f"grove-export: --assemblers must be 1 to 16, not {bad}"
        assert not (tmp_path / "bad").exists()  # refused before anything was made
    data, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--assemblers", "3", "--data", str(data),
                             "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert gateway_ready(port, 60, lambda: None if proc.poll() is None else f"serve {how_it_ended(proc.returncode)}"), \
            "the stack did not become ready"
        assert sorted(p.name for p in (data / "logs").glob("assembler*.log")) == [
            "assembler-2.log", "assembler-3.log", "assembler.log"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_token_warns_about_a_missing_content_database_only_when_one_was_chosen(tmp_path: Path) -> None:
    """Seen in use: deploy/README's `docker compose run --rm gateway token …` warned "there is no
    content database at var/content.db; its exports will be empty": the gateway container has the
    signing secret but no GROVE_CONTENT_DSN (it never reads content; the catalog reads PostgreSQL),
    so that path was only the default."""
    import secrets

    token = ("token", "--tenant", "demo_1", "--user", "u1", "--email", "a@example.org", "--username", "autumn")
    signing = {"GROVE_JWT_SECRET": secrets.token_urlsafe(48)}
    gateway = new_shell(*token, cwd=tmp_path, **signing)  # as in the compose gateway: no DSN, no var/
    assert gateway.returncode == 0 and gateway.stdout.count(".") == 2, gateway.stderr
    assert gateway.stderr == "", "no database was chosen, so there is none to be missing"
    missing = tmp_path / "content.db"
    chosen = new_shell(*token, cwd=tmp_path, GROVE_CONTENT_DSN=f"sqlite:///{missing}", **signing)
    assert chosen.returncode == 0 and chosen.stdout.count(".") == 2, chosen.stderr
    assert chosen.stderr.startswith(f"grove-export: warning: there is no content database at {missing}; "
                                    "its exports will be empty"), chosen.stderr


def test_restore_into_a_stack_given_by_data_names_the_replace_command_with_that_data(
        stack: tuple[Stack, int], tmp_path: Path) -> None:
    """Seen: `restore DIR --data D` into a running local stack (whose start made the streams) said "replace
    them, deleting what they hold: `grove-export restore --replace DIR`" — without --data D. Run as named
    where another stack runs in ./var, that command deletes and replaces *that* stack's log."""
    import re
    import shlex

    running, _ = stack
    data, cwd = running.data_dir, tmp_path / "elsewhere"
    cwd.mkdir()
    backup = tmp_path / "backup"
    assert new_shell("backup", str(backup), "--data", str(data), cwd=cwd).returncode == 0
    refused = new_shell("restore", str(backup), "--data", str(data), cwd=cwd)
    assert refused.returncode == 1, refused.stderr
    named = re.search(r"deleting what they hold: `([^`]*)`", refused.stderr)
    assert named, refused.stderr
    command = shlex.split(named.group(1))
    assert command[:2] == ["grove-export", "restore"] and f"--data {data}" in named.group(1), named.group(1)
    replaced = new_shell(*command[1:], cwd=cwd)  # as named, from the same folder
    assert replaced.returncode == 0, replaced.stderr
    assert "restored" in replaced.stdout, replaced.stdout
    # and the note that follows names erase-tenant with that --data too: run as it said, without it, from
    # here it asked ./var's stack (another one's, or none), and the tenant erased since stayed in this one
    erase = re.search(r"run `(grove-export erase-tenant [^`]*)` again", replaced.stderr)
    assert erase, replaced.stderr
    assert shlex.split(erase.group(1)) == ["grove-export", "erase-tenant", "TENANT", "--data", str(data)], \
        erase.group(1)
