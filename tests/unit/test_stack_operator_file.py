"""What the local stack leaves for operator commands, and how the environment overrides it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.devtools.stack import operator


def write(tmp: Path) -> Path:
    creds = tmp / "nats-users.json"
    creds.write_text(json.dumps({"admin": "s3cret", "gateway": "other"}))
    return operator.write(tmp, nats_url="nats://127.0.0.1:41234", nats_user="admin", credentials_file=creds,
                          env={"GROVE_STORE_ROOT": str(tmp / "store"), "PATH": "/bin"})


def test_a_new_shell_gets_the_url_user_password_and_folders_of_the_running_stack(tmp_path: Path) -> None:
    path = write(tmp_path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # it points at passwords
    found = operator.find(tmp_path, {})
    assert found.env == {"GROVE_NATS_URL": "nats://127.0.0.1:41234", "GROVE_NATS_USER": "admin",
                         "GROVE_NATS_PASSWORD": "s3cret", "GROVE_STORE_ROOT": str(tmp_path / "store")}
    assert found.source == path.resolve() and not found.stale  # written by this (living) process


def test_the_environment_wins_and_a_url_set_by_hand_borrows_no_credentials(tmp_path: Path) -> None:
    write(tmp_path)
    found = operator.find(tmp_path, {"GROVE_NATS_URL": "nats://elsewhere:4222", "GROVE_STORE_ROOT": "/mine"})
    assert found.env == {}
    found = operator.find(tmp_path, {"GROVE_NATS_PASSWORD": "mine"})
    assert found.env["GROVE_NATS_USER"] == "admin" and "GROVE_NATS_PASSWORD" not in found.env


def test_no_file_means_no_server_but_the_data_folders_own_paths_and_a_dead_stack_is_flagged(tmp_path: Path) -> None:
    data = tmp_path / "nowhere"
    found = operator.find(data, {"grove_read_model_db": "/mine.db"})  # the settings ignore case: so does this
    assert found.source is None and not any(k.startswith("GROVE_NATS") for k in found.env)
    assert found.env == {"GROVE_STORE_ROOT": str(data / "store"),
                         "GROVE_CONTENT_DSN": f"sqlite:///{data / 'content.db'}",
                         "GROVE_MAIL__OUTBOX_DIR": str(data / "outbox")}  # the environment still wins
    path = write(tmp_path)
    body = json.loads(path.read_text())
    body["pid"] = 2**22 + 12345  # above pid_max on Linux: no such process
    path.write_text(json.dumps(body))
    assert operator.find(tmp_path, {}).stale
    operator.remove(tmp_path)
    assert not path.exists() and operator.find(tmp_path, {}).source is None


@pytest.mark.parametrize("body", ["[]", "{}", '"x"', '{"nats_url": null}', '{"nats_url": "nats://127.0.0.1:1", "env": "x"}',
                                  "[" * 100_000 + "]" * 100_000])
def test_a_damaged_file_is_read_as_no_stack_not_a_traceback(tmp_path: Path, body: str) -> None:
    # JSON that is not the object the stack writes: every command that reads settings ended in an
    # AttributeError, KeyError or RecursionError traceback; a file cut short was already read as absent
    (tmp_path / operator.STACK_FILE).write_text(body)
    found = operator.find(tmp_path, {})
    assert found.source is None and not any(k.startswith("GROVE_NATS") for k in found.env)
    assert found.env == operator.folder_paths(tmp_path)


@pytest.mark.parametrize("body", [{"pid": "PID"}, {"pid": "PID", "nats_url": None}, {"pid": "PID", "env": "x"}])
def test_a_file_that_names_a_live_pid_is_a_running_stack_whatever_else_it_lacks(tmp_path: Path, body: dict) -> None:
    # `make clean` asks running_pid before it deletes the data folder: a file read as "no stack"
    # for lacking the settings' parts (the review of e1f2b62) let it delete a running stack's data
    from services.devtools.stack import running

    (tmp_path / operator.STACK_FILE).write_text(json.dumps({k: os.getpid() if v == "PID" else v
                                                            for k, v in body.items()}))
    assert running.running_pid(tmp_path) == os.getpid()


def test_only_grove_settings_the_environment_can_hold_are_taken_from_the_file(tmp_path: Path) -> None:
    """Seen: a stack.json whose env held a NUL in a value ended every command given that folder in a
    ValueError traceback (``os.environ.update``: "embedded null byte"), and its PATH or LD_PRELOAD went
    into the command's environment."""
    (tmp_path / "stack.json").write_text(json.dumps({
        "nats_url": "nats://127.0.0.1:41234", "pid": os.getpid(),
        "env": {"GROVE_PORT": "80\u000080", "GROVE_X=Y": "1", "PATH": "/nope", "LD_PRELOAD": "/tmp/x.so",
                "GROVE_STORE_ROOT": "/srv/store", "GROVE_LIST": [1], "grove_read_model_db": "/srv/rm.db"}}))
    found = operator.find(tmp_path, {})
    assert found.env == {"GROVE_STORE_ROOT": "/srv/store", "grove_read_model_db": "/srv/rm.db",
                         "GROVE_NATS_URL": "nats://127.0.0.1:41234"}
    try:
        os.environ.update(found.env)  # what main() does with it: no ValueError
    finally:
        for name in found.env:
            os.environ.pop(name, None)
