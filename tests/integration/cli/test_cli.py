"""The command line: bad input gets one line and a non-zero exit; the operator commands work."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.core import steps
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.env import to_env
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import start_stack


def cli(values: dict[str, Any], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **to_env(values)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_bad_input_gets_a_one_line_message_and_a_non_zero_exit(values: dict[str, Any]) -> None:
    cases = [
        ("run", "nonsense"),
        ("token", "--tenant", "bad tenant!", "--user", "u", "--email", "a@b.c", "--username", "x"),
        ("events", "exp_does_not_exist"),
        ("assemble", "--snapshot", "exports/x/y/work/snapshot.jsonl", "--out", "/tmp/never.zip"),
    ]
    for args in cases:
        out = cli(values, *args)
        assert out.returncode != 0, args
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert lines and (lines[-1].startswith("grove-export") or "invalid choice" in lines[-1]), (args, out.stderr)
        assert "Traceback" not in out.stderr, out.stderr
    bad_env = cli({**values, "min_part_size": "lots"}, "janitor")
    assert (bad_env.returncode, bad_env.stderr) == (2, "grove-export: invalid settings: GROVE_MIN_PART_SIZE: Input "
                                                       "should be a valid integer, unable to parse string as an "
                                                       "integer (got 'lots')\n")
    out_of_range = cli({**values, "concurrency": "-1", "mail": {**values["mail"], "backend": "nope"}}, "run", "catalog")
    assert (out_of_range.returncode, out_of_range.stderr) == (
        2, "grove-export: invalid settings: GROVE_CONCURRENCY: Input should be greater than or equal to 1 (got '-1'); "
           "GROVE_MAIL__BACKEND: Input should be 'outbox', 'smtp' or 'http' (got 'nope')\n")


async def test_events_assemble_and_janitor_on_a_real_export(values: dict[str, Any], bus: Bus, store: ObjectStore,
                                                            content: ContentSource, settings: Settings,
                                                            tmp_path: Path) -> None:
    stack = start_stack(tmp_path / "stack", values)
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, images=2)
        export_id = await request_export(bus, seeded.tenant_id)
        state = await wait_status(bus, seeded.tenant_id, export_id)
    finally:
        stack.stop()
    assert state.completed and state.cataloged
    events = cli(values, "events", export_id)
    assert events.returncode == 0, events.stderr
    names = [line.split()[3] for line in events.stdout.splitlines()]
    assert names[0] == "ExportRequested" and "ExportCompleted" in names
    assert " type=" not in events.stdout and "=None" not in events.stdout  # said once, or not set at all
    out = tmp_path / "ref.zip"
    ref = cli(values, "assemble", "--snapshot", state.cataloged.snapshot_key, "--out", str(out))
    assert ref.returncode == 0, ref.stderr
    assert out.read_bytes() == await store.read(settings.buckets.exports, state.completed.archive_key)
    dry = cli(values, "janitor", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.strip().splitlines()[-1].startswith("janitor: would expire 0")
    replay = cli(values, "replay")
    assert replay.returncode == 0 and ": 1 exports rebuilt from the log" in replay.stdout, replay.stderr
    run = cli(values, "janitor")
    assert run.returncode == 0 and run.stdout.strip().splitlines()[-1].startswith("janitor: expired 0 archives")


def bare(*args: str, cwd: Path, timeout: float = 60, **extra: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a new terminal: no GROVE_* in the environment but ``extra``."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | extra
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_a_nats_command_with_no_local_stack_and_no_url_is_refused_without_asking_any_server(tmp_path: Path) -> None:
    """Seen: with no stack running, every operator command asked nats://127.0.0.1:4222 — whatever
    listened there — and `setup` would have created the stream and buckets on it."""
    tail = "and GROVE_NATS_URL is not set: start one with `make serve`, pass --data DIR, or set GROVE_NATS_URL"
    commands = [["exports"], ["events", "exp_x"], ["show", "exp_x"], ["cancel", "exp_x", "--reason", "r"],
                ["retry", "exp_x", "--reason", "r"], ["resend", "exp_x", "--reason", "r"], ["unlock", "t", "--reason", "r"],
                ["backup", str(tmp_path / "b")], ["restore", str(tmp_path / "b")], ["erase-tenant", "t"],
                ["replay"], ["janitor", "--dry-run"], ["setup"]]
    for command in commands:
        out = bare(*command, cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: no local stack is running in var/ (no such folder) {tail}\n"), \
            (command, out.stderr)
    (tmp_path / "empty").mkdir()
    out = bare("exports", "--data", str(tmp_path / "empty"), cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"grove-export: no local stack is running in {tmp_path}/empty/ {tail}\n")
    out = bare("--data", str(tmp_path / "missing"), "setup", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith(
        f"grove-export: no local stack is running in {tmp_path}/missing/ (no such folder) and"), out.stderr
    (tmp_path / "killed").mkdir()  # a stack killed, not stopped: its file names a server that is gone
    (tmp_path / "killed" / "stack.json").write_text('{"nats_url": "nats://127.0.0.1:1", "pid": 999999999}')
    out = bare("exports", "--data", str(tmp_path / "killed"), cwd=tmp_path)
    assert out.returncode == 2 and "(its stack.json is left from a stack that is gone)" in out.stderr, out.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "b").exists()  # nothing was made


def test_run_with_no_nats_url_is_refused_in_one_line_without_asking_any_server(tmp_path: Path) -> None:
    """Seen: `grove-export run catalog` in a new terminal connected to nats://127.0.0.1:4222, whatever
    listened there (on this machine an old nats-server without headers), while every other command
    refused in one line. Nothing sets up a service without the URL: deploy/ and the local stack pass it."""
    for service in steps.service_names():
        out = bare("run", service, cwd=tmp_path, timeout=30)
        assert (out.returncode, out.stdout, out.stderr) == (2, "", (
            "grove-export: GROVE_NATS_URL is not set: set it to the NATS server this service is to use (as "
            "deploy/ does), or run the whole local stack with `make serve`\n")), (service, out.stderr)
    assert list(tmp_path.iterdir()) == [], "a refused run made files"


def test_a_nats_url_set_by_hand_is_still_asked_with_no_local_stack(values: dict[str, Any], tmp_path: Path) -> None:
    out = bare("exports", cwd=tmp_path, GROVE_NATS_URL=values["nats_url"], GROVE_STREAM_NAME=values["stream_name"],
               GROVE_KV_PREFIX=values["kv_prefix"], GROVE_SUBJECT_PREFIX=values["subject_prefix"])
    assert out.returncode == 1 and "no local stack" not in out.stderr, out.stderr  # asked: it has no stream yet
    assert f"NATS {values['nats_url']} (from GROVE_NATS_URL)" in out.stderr, out.stderr


def test_a_server_without_the_set_up_is_named_without_sending_a_restore_astray(values: dict[str, Any],
                                                                               tmp_path: Path) -> None:
    """Seen as an on-call operator, on a fresh server awaiting a restore: `exports` (and `backup`,
    `events`, `erase-tenant`…) said only "KV bucket … does not exist: run `grove-export setup` first".
    Setup there makes the streams empty, and restore then refuses them (the README: restore before
    setup); on a mistyped URL's server it would set Grove up on someone else's NATS."""
    bucket = f"{values['kv_prefix']}_heartbeats"
    for args in (("exports",), ("backup", str(tmp_path / "backup"))):
        out = bare(*args, cwd=tmp_path, GROVE_NATS_URL=values["nats_url"], GROVE_STREAM_NAME=values["stream_name"],
                   GROVE_KV_PREFIX=values["kv_prefix"], GROVE_SUBJECT_PREFIX=values["subject_prefix"])
        assert (out.returncode, out.stderr) == (1, (
            f"grove-export: KV bucket {bucket} does not exist on NATS {values['nats_url']} (from GROVE_NATS_URL): "
            f"Grove is not set up there (stream {values['stream_name']}). The wrong server? A new one: "
            "`grove-export setup` sets it up — but to restore a backup into it, run `grove-export restore DIR` "
            "first (setup makes the streams empty, and restore then refuses them)\n")), (args, out.stderr)
    assert not (tmp_path / "backup").exists()


async def test_a_set_up_server_missing_a_bucket_is_not_said_to_have_no_set_up(values: dict[str, Any], bus: Bus,
                                                                              tmp_path: Path) -> None:
    """The stream is there, holding the log, and one KV bucket was deleted (by hand, a cleanup script). Seen:
    "Grove is not set up there … The wrong server? … to restore a backup into it, run `grove-export restore
    DIR` first" — about a server that is set up and holds the exports, where the restore advice leads to
    `restore` refusing the existing stream; `setup` makes the bucket again."""
    await request_export(bus, "t1")
    bucket = f"{values['kv_prefix']}_heartbeats"
    await bus.js.delete_key_value(bucket)
    out = bare("exports", cwd=tmp_path, GROVE_NATS_URL=values["nats_url"], GROVE_STREAM_NAME=values["stream_name"],
               GROVE_KV_PREFIX=values["kv_prefix"], GROVE_SUBJECT_PREFIX=values["subject_prefix"])
    assert (out.returncode, out.stderr) == (1, (
        f"grove-export: KV bucket {bucket} does not exist on NATS {values['nats_url']} (from GROVE_NATS_URL), though "
        f"Grove's stream {values['stream_name']} does (1 message): part of the set-up there is missing. "
        "`grove-export setup` makes what is missing again and keeps the stream (after a restore that stopped "
        "part-way, run `grove-export restore --replace DIR` again instead)\n")), out.stderr


def test_a_number_flag_out_of_range_is_refused_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    """Seen: `serve --port 99999` ended in an OverflowError traceback; `exports --page 0` and
    `--limit -3` were taken as given."""
    cases = {("serve", "--port", "99999"): "--port must be 1-65535, not 99999",
             ("serve", "--port", "0"): "--port must be 1-65535, not 0",
             ("demo", "--port", "x"): "--port must be a whole number 1-65535, not 'x'",
             ("exports", "--page", "0"): "--page must be 1 or more, not 0",
             ("exports", "--limit", "-3"): "--limit must be 1 or more, not -3",
             ("token", "--tenant", "t", "--user", "u", "--email", "a@b.c", "--username", "n", "--ttl", "0"):
                 "--ttl must be 1 or more, not 0",
             ("setup", "--days", "0"): "--days must be 1 or more, not 0",
             ("erase-tenant", "t", "--wait", "-1"): "--wait must be 0-86400, not -1",
             # seen: `--wait inf` (or 1e400) was taken, and an export that never stopped was waited for for ever
             ("erase-tenant", "t", "--wait", "inf"): "--wait must be 0-86400, not inf",
             ("erase-tenant", "t", "--wait", "1e400"): "--wait must be 0-86400, not 1e400",
             ("erase-tenant", "t", "--wait", "86401"): "--wait must be 0-86400, not 86401",
             ("serve", "--assemblers", "0"): "--assemblers must be 1 to 16, not 0",
             ("seed", "--posts", "99999999999999999999"): "--posts must be 0-100000, not 99999999999999999999",
             ("seed", "--images", "-1"): "--images must be 0-10000, not -1"}
    for args, line in cases.items():
        out = bare(*args, "--data", str(tmp_path / "data"), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}\n"), (args, out.stderr)
    out = bare("exports", "--bogus", cwd=tmp_path)  # argparse's own refusals: one line too, no usage block
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("grove-export: unrecognized arguments: --bogus"), out.stderr
    assert not (tmp_path / "data").exists()


def test_every_command_says_the_same_line_when_nats_cannot_be_reached(tmp_path: Path) -> None:
    """Seen: `restore` printed three nats-py tracebacks before its line, which named a class
    (NoServersError) and GROVE_NATS_USER/PASSWORD though none was set; `setup` alone exited 2."""
    from services.devtools.stack.natsserver import free_port

    dead = f"nats://127.0.0.1:{free_port()}"
    line = (f"grove-export: cannot reach NATS at {dead} (from GROVE_NATS_URL): connection refused (is nats-server "
            f"running there?)\n")
    from tests.support.backups import backup_folder

    backup_folder(tmp_path / "backup")  # restore checks its folder before it connects: give it one that passes
    for command in (["restore", str(tmp_path / "backup")], ["backup", str(tmp_path / "b")], ["setup"], ["exports"],
                    ["events", "exp_x"], ["janitor"]):
        out = bare(*command, cwd=tmp_path, GROVE_NATS_URL=dead)
        assert (out.returncode, out.stderr) == (2, line), (command, out.stderr)


def test_a_service_started_before_nats_logs_one_line_per_try_and_connects_once_it_is_up(tmp_path: Path) -> None:
    """Seen: `grove-export run catalog` with NATS down logged a full traceback every 0.5 s, for ever."""
    import json
    import os
    import time

    from services.devtools.stack.natsserver import NatsServer
    from tests.support.env import settings_for

    server = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    values = settings_for(tmp_path, server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | to_env(values)
    setup = subprocess.run([sys.executable, "-m", "services.cli", "setup", "--nats-only"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)
    assert setup.returncode == 0, setup.stderr
    server.stop()  # the stream and durables stay in its store folder
    log = tmp_path / "catalog.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "catalog"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]

        deadline = time.monotonic() + 60  # three tries: 0.5 + 1 + 2 s once the process is up (slow on a busy machine)
        while len([r for r in lines() if "trying again in" in r["msg"]]) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        down = lines()
        tries = [r for r in down if "trying again in" in r["msg"]]
        assert not any("exc" in r for r in down), down  # no traceback
        assert len(down) <= len(tries) + 1, [r["msg"] for r in down]  # one line a try
        assert tries[0]["msg"] == (f"NATS at {server.url}: connection refused (is nats-server running there?); "
                                   f"trying again in 0.5 s")
        assert "trying again in 1 s" in tries[1]["msg"] and "trying again in 2 s" in tries[2]["msg"]
        # backing off: each try comes no sooner than the wait the one before it announced
        at = [datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in tries[:3]]
        assert (at[1] - at[0]).total_seconds() >= 0.45 and (at[2] - at[1]).total_seconds() >= 0.95, at
        server.start()  # the same port and store
        deadline = time.monotonic() + 30
        while "FastStream app started successfully" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(15)
        server.stop()


def test_run_takes_a_log_level_in_any_case_and_refuses_another_in_one_line(tmp_path: Path) -> None:
    """Seen: `grove-export run catalog --log-level debug` (or a typo) went straight to logging: a 20-line
    traceback ending in "ValueError: Unknown level: 'debug'", exit 1. A level is the command line's:
    any case is taken; another word is one line, exit 2, before the service starts."""
    import json
    import time

    for bad in ("bogus", "", "TRACE"):
        out = bare("run", "catalog", "--log-level", bad, cwd=tmp_path, GROVE_NATS_URL="nats://127.0.0.1:1")
        assert (out.returncode, out.stderr) == (
            2, f"grove-export: --log-level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {bad!r}\n"), out.stderr
    # every name logging takes still runs (WARN and CRITICAL did before the check: found by the review)
    from services.cliargs import a_log_level

    assert [a_log_level(w) for w in ("warn", "Critical", "fatal", " error ")] == ["WARN", "CRITICAL", "FATAL", "ERROR"]
    # lower case is taken: the service starts (and, with no NATS there, says so once a try, as it does)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")} | {
        "GROVE_NATS_URL": "nats://127.0.0.1:1", "GROVE_METRICS_PORT": "0"}
    log = tmp_path / "catalog.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "catalog", "--log-level", "debug"],
                                env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "trying again in" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert records and "Traceback" not in log.read_text(), log.read_text()[-2000:]
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_file_problem_names_the_file_not_nats_and_a_closed_pipe_ends_quietly(values: dict[str, Any],
                                                                             tmp_path: Path) -> None:
    """Seen: `backup /etc/passwd` said "NATS at nats://… failed: File exists"; `events … | head`
    said NATS failed with a broken pipe."""
    assert cli(values, "setup").returncode == 0
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    out = cli(values, "backup", str(taken))
    assert out.returncode != 0 and "NATS" not in out.stderr and str(taken) in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr, out.stderr
    import os

    env = {**os.environ, **to_env(values)}
    reader = subprocess.Popen([sys.executable, "-m", "services.cli", "token", "--tenant", "t", "--user", "u",
                               "--email", "a@b.c", "--username", "n"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # the reader goes away before the command prints (it takes a second to start)
    assert reader.wait(timeout=60) == 1
    err = reader.stderr.read()
    assert not any(word in err for word in ("Broken pipe", "NATS", "Traceback", "Exception ignored")), err


def test_a_notifier_with_a_missing_smtp_ca_file_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    """Seen: `run notifier` with GROVE_MAIL__SMTP_CA_FILE=/etc/grove/ca.pem (not mounted) started, and
    each email then failed as "cannot reach SMTP server". Now: refused before it connects, exit 2."""
    from services.devtools.stack.natsserver import free_port

    out = bare("run", "notifier", cwd=tmp_path, GROVE_NATS_URL=f"nats://127.0.0.1:{free_port()}",
               GROVE_MAIL__BACKEND="smtp", GROVE_MAIL__SMTP_SECURITY="starttls",
               GROVE_MAIL__SMTP_CA_FILE=str(tmp_path / "ca.pem"), timeout=20)
    assert (out.returncode, out.stdout) == (2, ""), out.stderr[-2000:]
    assert out.stderr == (f"grove-export: invalid settings: GROVE_MAIL__SMTP_CA_FILE: No such file or directory "
                          f"({tmp_path / 'ca.pem'})\n"), out.stderr


def test_contradicting_erase_flags_are_a_bad_command_line(tmp_path: Path) -> None:
    """Seen: `erase-tenant T --no-read-model --read-model PATH` exited 1, the code for "the log says no",
    though it is the command line that is wrong (exit 2), refused before anything is asked."""
    from services.devtools.stack.natsserver import free_port

    out = bare("erase-tenant", "t1", "--no-read-model", "--read-model", str(tmp_path / "rm.db"), cwd=tmp_path,
               GROVE_NATS_URL=f"nats://127.0.0.1:{free_port()}")
    assert (out.returncode, out.stderr) == (
        2, "grove-export: --no-read-model and --read-model contradict each other: give one\n"), out.stderr


def test_backup_and_restore_name_a_folder_argument_that_is_no_folder(tmp_path: Path) -> None:
    """Seen: `restore var/bakup` (a typo) said "var/bakup has no manifest.json; it is not a grove-export
    backup" and exited 1; `backup FILE` said "File exists: FILE", exit 1. No such folder is the command
    line's fault: one line saying so, exit 2, before any server is asked."""
    from services.devtools.stack.natsserver import free_port

    dead = f"nats://127.0.0.1:{free_port()}"
    out = bare("restore", str(tmp_path / "bakup"), cwd=tmp_path, GROVE_NATS_URL=dead)
    assert (out.returncode, out.stderr) == (2, f"grove-export: no such folder: {tmp_path / 'bakup'}\n"), out.stderr
    (tmp_path / "notes.txt").write_text("x")
    for command in ("backup", "restore"):
        out = bare(command, str(tmp_path / "notes.txt"), cwd=tmp_path, GROVE_NATS_URL=dead)
        assert (out.returncode, out.stderr) == (
            2, f"grove-export: {tmp_path / 'notes.txt'} is a file, not a folder\n"), (command, out.stderr)


def test_a_backup_folder_inside_a_file_is_a_bad_command_line(tmp_path: Path) -> None:
    """Seen: `backup FILE/sub` (DIR is made when it does not exist, but here it cannot be) connected to
    NATS and then said only "Not a directory: FILE/sub", exit 1. The command line's fault, as a --data
    inside a file is: one line naming the file in the way, exit 2, before any server is asked."""
    from services.devtools.stack.natsserver import free_port

    dead = f"nats://127.0.0.1:{free_port()}"  # asked, it would say "cannot reach NATS"
    (tmp_path / "notes.txt").write_text("x")
    out = bare("backup", str(tmp_path / "notes.txt" / "backup"), cwd=tmp_path, GROVE_NATS_URL=dead)
    assert (out.returncode, out.stderr) == (
        2, f"grove-export: {tmp_path / 'notes.txt' / 'backup'} cannot be made: {tmp_path / 'notes.txt'} is a file, "
           "not a folder\n"), out.stderr
    assert (tmp_path / "notes.txt").read_text() == "x"


def test_a_backup_folder_that_is_a_dangling_link_is_a_bad_command_line(tmp_path: Path) -> None:
    """Seen: `backup LINK` (a symbolic link to a folder that is not there: an unmounted volume, a backup
    disk's mount point removed) or `backup LINK/sub` connected to NATS, then said only "File exists:
    LINK", exit 1 — the operator saw no file there. The command line's fault, as a file in the way is:
    one line naming the link and where it points, exit 2, before any server is asked, nothing made."""
    from services.devtools.stack.natsserver import free_port

    dead = f"nats://127.0.0.1:{free_port()}"  # asked, it would say "cannot reach NATS"
    gone = tmp_path / "mnt" / "backups"
    link = tmp_path / "backups"
    link.symlink_to(gone)
    for target in (link, link / "nightly"):
        out = bare("backup", str(target), cwd=tmp_path, GROVE_NATS_URL=dead)
        assert (out.returncode, out.stderr) == (
            2, f"grove-export: {target} cannot be made: {link} is a link to {gone}, which does not exist\n"), \
            out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backups"] and not gone.exists()


def test_backup_into_a_folder_holding_other_files_is_refused_writing_nothing(tmp_path: Path) -> None:
    """Seen: `backup DIR` into a folder with other files in it (not a backup: no manifest.json) wrote its
    snapshots and manifest.json among them, though its help says "an empty folder". The command line's
    fault: one line, exit 2, before any server is asked, nothing written. (A folder that already holds a
    backup keeps its own refusal, exit 1; a folder that does not exist is still made.)"""
    from services.devtools.stack.natsserver import free_port

    dead = f"nats://127.0.0.1:{free_port()}"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    out = bare("backup", str(folder), cwd=tmp_path, GROVE_NATS_URL=dead)
    assert (out.returncode, out.stderr) == (
        2, f"grove-export: {folder} is not empty and holds no backup: choose an empty or a new folder\n"), out.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_a_gateway_host_it_cannot_listen_on_is_named_not_blamed_on_nats(values: dict[str, Any]) -> None:
    """Seen: `run gateway` with GROVE_HOST=no.such.host (or an address not on this machine) said "NATS at
    nats://… failed: unknown host" — NATS had answered; the gateway's own address was the problem."""
    from services.devtools.stack.natsserver import free_port

    assert cli(values, "setup", "--nats-only").returncode == 0
    port = free_port()
    for host, why in (("no.such.host.invalid", "unknown host"), ("192.0.2.1", "cannot assign requested address")):
        out = cli({**values, "host": host, "port": port}, "run", "gateway", timeout=60)
        lines = [line for line in out.stderr.splitlines() if line.startswith("grove-export:")]
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith(
            f"grove-export: invalid settings: GROVE_HOST: the gateway cannot listen on {host}:{port} "), lines
        assert why in lines[0] and "NATS" not in lines[0], lines


def test_a_metrics_host_it_cannot_listen_on_stops_a_step_service_in_one_line(values: dict[str, Any]) -> None:
    """`run catalog` with GROVE_METRICS_HOST an address not on this machine: one settings line, exit 2."""
    from services.devtools.stack.natsserver import free_port

    assert cli(values, "setup", "--nats-only").returncode == 0
    port = free_port()
    out = cli({**values, "metrics_host": "192.0.2.1", "metrics_port": port}, "run", "catalog", timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.startswith("grove-export:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(
        f"grove-export: invalid settings: GROVE_METRICS_HOST: the metrics endpoint cannot listen on 192.0.2.1:{port} ("
    ), lines


def test_a_content_database_that_cannot_be_opened_is_one_line_with_no_thread_traceback(tmp_path: Path) -> None:
    """Seen: `seed --data DIR` with DIR/content.db a folder (or DIR under /proc) said its line, then
    aiosqlite's worker thread printed two tracebacks ("Event loop is closed") under it: the failed open
    left that thread to call into the loop asyncio.run had just closed."""
    (tmp_path / "data" / "content.db").mkdir(parents=True)
    for _ in range(3):  # the thread lost that race every time here; three runs leave it no chance
        out = bare("seed", "--data", str(tmp_path / "data"), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (
            1, f"grove-export: the content database {tmp_path / 'data' / 'content.db'} cannot be used: unable to "
               f"open database file\n"), out.stderr
        assert out.stdout == ""


async def test_replay_into_a_read_model_it_cannot_write_is_one_line_and_leaves_nothing_beside_it(
        values: dict[str, Any], bus: Bus, tmp_path: Path) -> None:
    """Seen: `GROVE_READ_MODEL_DB=/proc/rm.db grove-export replay` ended in a traceback
    (sqlite3.OperationalError); with the setting naming a folder, replay rebuilt the table beside it,
    failed the swap with "Is a directory: <folder>.replay-…" and left that file there."""
    import pytest

    from services.gateway import replay

    folder = tmp_path / "rm"
    folder.mkdir()
    out = cli({**values, "read_model_db": str(folder)}, "replay")
    assert (out.returncode, out.stderr) == (
        2, f"grove-export: the read model {folder} (GROVE_READ_MODEL_DB) is a folder, not a file: nothing was "
           f"replayed\n"), out.stderr
    with pytest.raises(IsADirectoryError):  # past the command's check: the swap fails, the rebuilt file goes
        await replay(folder, bus)
    assert not list(tmp_path.glob("rm.replay-*"))
    if Path("/proc/self").is_dir():  # a folder no file can be made in, even as root
        out = cli({**values, "read_model_db": "/proc/rm.db"}, "replay")
        assert (out.returncode, out.stderr) == (
            1, "grove-export: the read model /proc/rm.db (GROVE_READ_MODEL_DB) cannot be written: unable to open "
               "database file; nothing was replayed\n"), out.stderr


async def test_replay_into_a_read_model_that_is_a_fifo_is_refused_and_leaves_it_as_it_was(
        values: dict[str, Any], bus: Bus, tmp_path: Path) -> None:
    """Seen: the rebuilt read model was renamed over whatever GROVE_READ_MODEL_DB named: a FIFO became a
    regular file, and `GROVE_READ_MODEL_DB=/dev/full grove-export replay` run as root left /dev/full
    a 32 KiB SQLite file for every program on the machine (exit 0)."""
    import os
    import stat

    fifo = tmp_path / "rm.db"
    os.mkfifo(fifo)
    out = cli({**values, "read_model_db": str(fifo)}, "replay")
    assert (out.returncode, out.stderr) == (
        2, f"grove-export: the read model {fifo} (GROVE_READ_MODEL_DB) is not a regular file (a device, a pipe): "
           f"nothing was replayed\n"), out.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.glob("rm.db*")) == ["rm.db"]


async def test_replay_into_a_folder_that_does_not_exist_is_refused_and_makes_nothing(
        values: dict[str, Any], bus: Bus, tmp_path: Path) -> None:
    """Seen: `grove-export replay` run from another folder than the stack's (GROVE_NATS_URL set, the
    read model left at its default, var/read-model.db) made var/ there, wrote every tenant's rows into
    it — the requesters' addresses, in a file no gateway reads and no erase-tenant is pointed at — and
    said "read model var/read-model.db: N exports rebuilt from the log", exit 0."""
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    target = elsewhere / "var" / "read-model.db"
    out = cli({**values, "read_model_db": str(target)}, "replay")
    assert (out.returncode, out.stdout, out.stderr) == (
        1, "", f"grove-export: the read model's folder {target.parent} does not exist (GROVE_READ_MODEL_DB "
               f"{target}): nothing was replayed; run it in the local stack's folder or pass --data DIR, or set "
               f"GROVE_READ_MODEL_DB to the gateway's read model (for a new one, make its folder first)\n")
    assert list(elsewhere.iterdir()) == []


async def test_replay_on_a_full_disk_leaves_nothing_beside_the_read_model(values: dict[str, Any], bus: Bus,
                                                                           tmp_path: Path) -> None:
    """Seen: with the disk full (here a file size limit, RLIMIT_FSIZE: the same EFBIG/ENOSPC to SQLite)
    replay made <path>.replay-… and failed to write its schema, said "nothing was replayed", and left
    that file beside the read model: the open was outside the clean-up."""
    import asyncio
    import os
    import resource

    target = tmp_path / "rm.db"
    out = await asyncio.to_thread(  # the stream and buckets made by ``bus``: replay gets as far as its file
        subprocess.run, [sys.executable, "-m", "services.cli", "replay"],
        env={**os.environ, **to_env({**values, "read_model_db": str(target)})}, capture_output=True, text=True,
        timeout=60, check=False, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)))
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert "cannot be written" in out.stderr and "nothing was replayed" in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.glob("rm.db*")) == []


def test_assemble_to_a_folder_or_into_a_missing_folder_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    """Seen: `assemble --out /nonexistent/dir/x.zip` read the snapshot and made the archive, then said
    "No such file or directory: /nonexistent/dir/x.zip.part" (a file the user never named), exit 1;
    `--out /root` said "Is a directory: /root.part". A path that cannot be written is the command
    line's fault: exit 2, one line naming --out."""
    folder = tmp_path / "out"
    folder.mkdir()
    cases = {str(folder): (f"--out {folder} is a folder: name the archive file to write in it (like "
                           f"{folder / 'archive.zip'}); nothing was assembled"),
             str(tmp_path / "missing" / "x.zip"): (f"--out {tmp_path / 'missing' / 'x.zip'}: no such folder "
                                                   f"{tmp_path / 'missing'} (make it first); nothing was assembled")}
    for out_path, line in cases.items():
        out = bare("assemble", "--snapshot", "exports/t/e/work/snapshot.jsonl", "--out", out_path,
                   "--data", str(tmp_path / "data"), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}\n"), out.stderr
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())  # nothing made, no .part


def test_assemble_a_snapshot_key_that_can_name_no_object_blames_the_argument_not_the_store(tmp_path: Path) -> None:
    """Seen: `assemble --snapshot ''` (an unset shell variable) and `--snapshot exports/../x` said "the object
    store failed: unsafe key '' (check GROVE_STORE_ROOT)", exit 1: a setting blamed for a typo in the
    command line. A key no object can have is the argument's fault: exit 2, one line naming --snapshot."""
    (tmp_path / "data" / "store" / "grove-exports").mkdir(parents=True)  # the store is there and sound
    out_path = tmp_path / "x.zip"
    for key in ("", "exports/../x", "/etc/passwd", "exports//x"):
        out = bare("assemble", "--snapshot", key, "--out", str(out_path), "--data", str(tmp_path / "data"),
                   cwd=tmp_path)
        assert out.returncode == 2, (key, out.returncode, out.stderr)
        assert out.stderr.startswith(f"grove-export: --snapshot {key!r} cannot name an object of the store ("), out.stderr
        assert out.stderr.endswith("; nothing was assembled\n") and out.stderr.count("\n") == 1, out.stderr
        assert "GROVE_STORE_ROOT" not in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no archive, no .part


def test_an_empty_file_or_folder_argument_is_refused_not_read_as_the_current_folder(tmp_path: Path) -> None:
    """Seen: an unset shell variable (`--data "$DATA"`, `verify "$ZIP"`) is an empty argument, which was read as
    the current folder: `seed --data ''` seeded a tenant into it (content.db and store/ beside whatever was
    there, exit 0, saying "no local stack is running in /"), `verify ''` said " is a folder, not an archive
    file", `erase-tenant --read-model ''` named the current folder. Each is one line naming the argument, exit
    2, and nothing is written."""
    (tmp_path / "kept").write_text("")
    seen = sorted(tmp_path.iterdir())
    cases = [(("seed", "--data", ""), "--data", "folder"), (("--data", "", "exports"), "--data", "folder"),
             (("token", "--tenant", "t1", "--user", "u1", "--email", "a@example.org", "--username", "n", "--data", ""),
              "--data", "folder"),
             (("verify", ""), "ARCHIVE", "file"), (("import", "", "--tenant", "t1"), "ARCHIVE", "file"),
             (("assemble", "--snapshot", "k", "--out", ""), "--out", "file"),
             (("backup", ""), "DIR", "folder"), (("restore", ""), "DIR", "folder"),
             (("erase-tenant", "t1", "--read-model", ""), "--read-model", "file")]
    for args, named, what in cases:
        out = bare(*args, cwd=tmp_path, GROVE_NATS_URL="nats://127.0.0.1:1")
        assert (out.returncode, out.stdout, out.stderr) == (
            2, "", f"grove-export: {named} must name a {what}, not '' (an empty argument: an unset shell variable?)\n"
        ), (args, out.returncode, out.stdout, out.stderr)
    assert sorted(tmp_path.iterdir()) == seen  # no content.db, no store/, no backup


def test_seed_refuses_a_username_token_would_refuse_in_one_line_before_seeding(tmp_path: Path) -> None:
    """Seen: `seed --username ''` and `--username $'a\\nb'` seeded a tenant (its email `@example.org`,
    a username no token may carry); a byte that is not UTF-8 (`$'\\xff'`) got "tenants row 0
    ('demo_…'): username holds a lone surrogate (U+DCFF), which is not text", exit 1. Then its first
    rule was still said in its old words ("must be non-empty text without control or bidi characters,
    not ''"), where `token --username` says the rule as it is now and what is wrong with the name:
    both now say it in one wording (shared/core/printable.py `name_refusal`)."""
    secret = "s" * 40
    for username, shown, problem in (("", "''", "is empty"), ("  ", "'  '", "is empty"),
                                     ("a\nb", "'a\\nb'", "holds a control or bidi character"),
                                     ("x\u202ey", "'x\\u202ey'", "holds a control or bidi character"),
                                     ("\u200b", "'\\u200b'", "is empty")):  # nothing visible once it is left out
        line = (f"--username {shown} must be non-empty text without control or bidi characters, at most 256 "
                f"characters: it {problem}\n")
        out = bare("seed", "--username", username, "--data", str(tmp_path / "data"), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: {line}"), out.stderr
        token = bare("token", "--tenant", "t", "--user", "u", "--email", "a@b.co", "--username", username,
                     cwd=tmp_path, GROVE_JWT_SECRET=secret)
        assert (token.returncode, token.stderr) == (2, f"grove-export: {line[2:]}"), token.stderr  # the same words
    out = subprocess.run([sys.executable, "-m", "services.cli", "seed", "--username", b"\xff",  # type: ignore[list-item]
                          "--data", str(tmp_path / "data")], cwd=tmp_path, capture_output=True, check=False)
    assert (out.returncode, out.stderr) == (
        2, b"grove-export: --username '\\udcff' must be non-empty text without control or bidi characters, at "
           b"most 256 characters: it holds a control or bidi character\n")
    assert not (tmp_path / "data").exists()  # nothing seeded, nothing made


def test_a_data_folder_that_is_a_file_is_refused_in_one_line_by_every_command(tmp_path: Path) -> None:
    """Seen: `seed --data /dev/null` said "File exists: /dev/null", `serve --data FILE` and `demo`
    "Not a directory: FILE/stack.lock", `seed --data FILE/sub` "Not a directory: FILE/sub", each
    exit 1; the operator commands called it "no such folder"."""
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    tail = "not a folder (the local stack's data folder: its store, databases, outbox and stack.json)"
    for args in (["seed"], ["serve", "--port", "1"], ["demo"], ["exports"], ["import", "a.zip", "--tenant", "t"],
                 ["token", "--tenant", "t", "--user", "u", "--email", "a@b.c", "--username", "n"]):
        out = bare(*args, "--data", str(notes), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (2, f"grove-export: --data {notes} is a file, {tail}\n"), (args, out.stderr)
    out = bare("--data", str(notes / "sub"), "seed", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (
        2, f"grove-export: --data {notes / 'sub'} cannot be made: {notes} is a file, {tail}\n"), out.stderr
    out = bare("seed", "--data", "/dev/null", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"grove-export: --data /dev/null is a file, {tail}\n"), out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"] and notes.read_text() == "mine\n"


def test_a_data_folder_whose_name_cannot_be_looked_up_is_no_traceback_in_the_file_check(tmp_path: Path) -> None:
    """Seen: since the check that --data is not a file (55a2297), `seed --data DIR/<300 letters>` ended
    in an OSError traceback ("File name too long") out of that check's Path.exists(), which raises
    what is not "no such file"; before it, seed said the one line "File name too long: …", exit 1.
    A name the check cannot look up is left to the command, as before."""
    long = tmp_path / ("a" * 300)
    out = bare("seed", "--data", str(long), cwd=tmp_path)
    assert out.returncode in (1, 2) and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("grove-export: ") and "Traceback" not in out.stderr, out.stderr


def test_output_that_cannot_be_written_is_said_as_that_not_as_a_server_failure(tmp_path: Path) -> None:
    """Seen: `grove-export token … > /dev/full` (no NATS involved) said "NATS at … failed: No space
    left on device"."""
    import os
    import secrets

    if not Path("/dev/full").exists():
        import pytest

        pytest.skip("no /dev/full here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_") and k != "PYTHONUNBUFFERED"}
    env["GROVE_JWT_SECRET"] = secrets.token_urlsafe(48)
    # buffered, as in a shell (the write fails only at the flush: it was "Exception ignored", exit 120,
    # once main() had returned), and unbuffered (the write itself fails)
    import zipfile

    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as zf:  # no export: verify reports, then exits 1
        zf.writestr("a.txt", "hi")
    for extra in ({}, {"PYTHONUNBUFFERED": "1"}):
        for args in (["token", "--tenant", "t", "--user", "u", "--email", "a@b.co", "--username", "n"],
                     ["verify", str(tmp_path / "plain.zip")]):  # verify's report ends by exiting
            with open("/dev/full", "w") as full:
                out = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=tmp_path, env=env | extra,
                                     stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
            assert (out.returncode, out.stderr) == (
                1, f"grove-export: could not write the output of {args[0]}: No space left on device\n"), \
                (extra, out.stderr)


def test_a_gateway_read_model_it_cannot_open_stops_it_in_one_line(values: dict[str, Any], tmp_path: Path) -> None:
    """Seen: `run gateway` with GROVE_READ_MODEL_DB naming a folder (or a path under /proc) ended in a
    sqlite3.OperationalError traceback."""
    from services.devtools.stack.natsserver import free_port

    assert cli(values, "setup", "--nats-only").returncode == 0
    folder = tmp_path / "rm"
    folder.mkdir()
    out = cli({**values, "read_model_db": str(folder), "port": free_port()}, "run", "gateway", timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.startswith("grove-export:")]
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines == [f"grove-export: invalid settings: GROVE_READ_MODEL_DB: the gateway cannot open its read model "
                     f"{folder} (unable to open database file)"], lines
    # a file where its folder goes: it was an OSError's line (exit 1) not naming the setting
    (tmp_path / "afile").write_text("x")
    beneath = tmp_path / "afile" / "rm.db"
    out = cli({**values, "read_model_db": str(beneath), "port": free_port()}, "run", "gateway", timeout=60)
    lines = [line for line in out.stderr.splitlines() if line.startswith("grove-export:")]
    assert out.returncode == 2 and lines == [
        f"grove-export: invalid settings: GROVE_READ_MODEL_DB: the gateway cannot open its read model {beneath} "
        "(cannot make its folder: File exists)"], out.stderr[-2000:]


def test_an_archive_that_is_a_device_or_a_pipe_is_named_as_such_not_as_missing(tmp_path: Path) -> None:
    """Seen: `verify /dev/null`, `import /dev/null`, `verify <(curl …)` and a FIFO said "no such file:
    /dev/null" — it is there; it is no file an archive can be read from."""
    import os

    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    for archive in ("/dev/null", str(fifo)):
        for args in (["verify", archive], ["import", archive, "--tenant", "t1", "--data", str(tmp_path / "d")]):
            out = bare(*args, cwd=tmp_path)
            assert (out.returncode, out.stderr) == (
                2, f"grove-export: {archive} is not a regular file (a device, a pipe): save the archive to a file "
                   f"first\n"), (args, out.stderr)
    out = bare("verify", str(tmp_path / "gone.zip"), cwd=tmp_path)
    assert (out.returncode, out.stderr) == (2, f"grove-export: no such file: {tmp_path / 'gone.zip'}\n"), out.stderr


def test_a_store_root_that_is_a_file_is_named_as_a_file(tmp_path: Path) -> None:
    """Seen: `GROVE_STORE_ROOT=FILE grove-export janitor` (and assemble) said "the filesystem store FILE
    does not exist" of a file that is there."""
    root = tmp_path / "store"
    root.write_text("not a store")
    out = bare("assemble", "--snapshot", "k", "--out", str(tmp_path / "a.zip"), "--data", str(tmp_path / "d"),
               cwd=tmp_path, GROVE_STORE_ROOT=str(root))
    assert (out.returncode, out.stderr) == (
        1, f"grove-export: the filesystem store {root} is a file, not a folder (GROVE_STORE_ROOT; for a local "
           f"stack, run in its folder or pass --data DIR): nothing was assembled\n"), out.stderr


def test_import_names_the_tenant_id_it_refuses_as_every_other_command_does(tmp_path: Path) -> None:
    """Seen: `import A.zip --tenant 'bad id'` said "--tenant must match ^[A-Za-z0-9_-]{1,64}$" (a regular
    expression's anchors, and not what was given); `exports --tenant` says "must match
    [A-Za-z0-9_-]{1,64}, not 'bad id'"."""
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"PK")
    for tenant in ("bad id", "", "a" * 65):
        out = bare("import", str(archive), "--tenant", tenant, "--data", str(tmp_path / "d"), cwd=tmp_path)
        assert (out.returncode, out.stderr) == (
            2, f"grove-export: --tenant must match [A-Za-z0-9_-]{{1,64}}, not {tenant!r}\n"), out.stderr


def test_a_data_folder_that_cannot_be_made_is_said_as_that(tmp_path: Path) -> None:
    """Seen: `serve --data /proc/x` (and demo, seed) said "No such file or directory: /proc/x", as if it
    were asked to use a folder that is not there; it was asked to make one where none can be made."""
    import pytest

    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here: no folder where, even as root, none can be made")
    for args in (["seed"], ["serve", "--port", "1"], ["demo", "--port", "1"]):
        out = bare(*args, "--data", "/proc/grove-export-test", cwd=tmp_path, timeout=60)
        assert (out.returncode, out.stderr) == (
            1, "grove-export: cannot make the data folder /proc/grove-export-test (--data): No such file or "
               "directory\n"), (args, out.stderr)


def test_token_with_an_unreadable_content_database_warns_that_exports_fail_not_that_they_are_empty(
        tmp_path: Path) -> None:
    """Seen: with <data>/content.db not a database, `token` warned "the content database X could not be
    read (the content database X cannot be read: file is not a database); its exports will be empty (a
    typo? …)" — the path twice, and a wrong forecast: such an export fails ("The content database could
    not be read"), and no tenant id was mistyped."""
    import secrets

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "content.db").write_text("not a database\n")
    out = bare("token", "--tenant", "t1", "--user", "u", "--email", "a@b.co", "--username", "n", "--data",
               str(tmp_path / "d"), cwd=tmp_path, GROVE_JWT_SECRET=secrets.token_urlsafe(48))
    assert out.returncode == 0 and out.stdout.count(".") == 2, out  # still minted: the content may live elsewhere
    assert out.stderr == (f"grove-export: warning: the content database {tmp_path / 'd' / 'content.db'} cannot be "
                          f"read: file is not a database; exports of tenant 't1' fail while it cannot be read\n"), \
        out.stderr


def test_a_data_folder_whose_parent_cannot_be_made_is_said_as_that_too(tmp_path: Path) -> None:
    """Seen: `serve --data /proc/x` became "cannot make the data folder" (2387375), but `serve --data
    /proc/x/y` (and seed, demo) still said "No such file or directory: /proc/x": the OSError names the
    folder above it that mkdir(parents=True) tried first, not the --data folder itself."""
    import pytest

    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here: no folder where, even as root, none can be made")
    for args in (["seed"], ["serve", "--port", "1"]):
        out = bare(*args, "--data", "/proc/grove-export-test/data", cwd=tmp_path, timeout=60)
        assert (out.returncode, out.stderr) == (
            1, "grove-export: cannot make the data folder /proc/grove-export-test/data (--data): No such file or "
               "directory (making /proc/grove-export-test)\n"), (args, out.stderr)


def test_seed_and_token_take_a_username_with_an_invisible_character_as_it_shows_and_say_so(tmp_path: Path) -> None:
    """Seen: `seed --username $'ann\\u200b'` and `token --username $'\\ufeffann'` were refused ("holds an
    invisible format character"), as the gateway refused such a token: a person whose identity provider's
    name held a stray U+200B or U+FEFF could never export. The gateway now takes the name as it shows,
    without those characters; so do these: the tenant row and the token hold "ann", and a line says so.
    A name of nothing visible is still refused, in the words the gateway uses."""
    import secrets
    import sqlite3

    import jwt

    data = tmp_path / "data"
    seeded = bare("seed", "--posts", "1", "--images", "0", "--files", "0", "--username", "ann\u200b",
                  "--data", str(data), cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert seeded.stderr.splitlines()[0] == (
        "grove-export: note: --username 'ann\\u200b' is taken as 'ann', without its invisible format character "
        "(U+200B), as the gateway takes a token's username"), seeded.stderr
    tenant = seeded.stdout.strip()
    with sqlite3.connect(data / "content.db") as db:
        assert db.execute("SELECT username, email FROM tenants WHERE id = ?", (tenant,)).fetchone() == (
            "ann", "ann@example.org")
    out = bare("token", "--tenant", tenant, "--user", "u1", "--email", "a@example.org", "--username", "\ufeffann",
               "--data", str(data), cwd=tmp_path, GROVE_JWT_SECRET=secrets.token_urlsafe(48))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ("grove-export: note: --username '\\ufeffann' is taken as 'ann', without its invisible "
                          "format character (U+FEFF), as the gateway takes a token's username\n"), out.stderr
    assert jwt.decode(out.stdout.strip(), options={"verify_signature": False})["username"] == "ann"
    for command, said in (
            (["seed"], "--username '\\u200b\\u2060' must be non-empty text without control or bidi characters, at "
             "most 256 characters: it is empty"),
            (["token", "--tenant", tenant, "--user", "u1", "--email", "a@example.org"],
             "username '\\u200b\\u2060' must be non-empty text without control or bidi characters, at most 256 "
             "characters: it is empty")):
        out = bare(*command, "--username", "\u200b\u2060", "--data", str(tmp_path / "other"), cwd=tmp_path,
                   GROVE_JWT_SECRET=secrets.token_urlsafe(48))
        assert (out.returncode, out.stdout, out.stderr) == (2, "", f"grove-export: {said}\n"), out
    assert not (tmp_path / "other").exists()
