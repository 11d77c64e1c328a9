"""What operator commands need to reach a running local stack, kept in its data folder.

The local stack's nats-server listens on a new port each start and has one user per service, so an
``export GROVE_NATS_URL=…`` in a README goes stale. Instead the stack writes ``<data>/stack.json``
(0600) when it starts and removes it when it stops::

    {"nats_url": "nats://127.0.0.1:41234", "nats_user": "admin",
     "credentials_file": "/…/var/nats-users.json", "pid": 1234,
     "env": {"GROVE_STORE_ROOT": "/…/var/store", …}}

and every ``grove-export`` command that reads settings (``events``, ``janitor``, ``replay``, ``seed``,
``token``, …) fills in from it what the environment does not say: the environment always wins, and
``GROVE_NATS_URL`` set by hand means "not the local stack" (no user or password is borrowed).
With no stack running (no file), a command still uses the data folder's own store, databases and
outbox (:func:`folder_paths`): ``grove-export seed --data DIR`` seeds DIR, not ./var.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.devtools.stack import running
from shared.content.factory import sqlite_dsn
from shared.runtime.secrets import SecretError, read_local_passwords, write_private

STACK_FILE = "stack.json"


@dataclass(frozen=True)
class Found:
    """The settings to add to the environment, and where they came from (for messages)."""

    env: dict[str, str]
    source: Path | None
    stale: bool = False  # the file names a stack process that is gone (killed, not stopped)
    unreadable: str | None = None  # why the stack's NATS password could not be borrowed: one line
    pid: object = None  # the stack's process, as its stack.json names it

    @property
    def running(self) -> bool:
        """A stack runs in the folder: its stack.json names a process that is alive."""
        return self.source is not None and not self.stale


def folder_paths(data_dir: Path) -> dict[str, str]:
    """Where a local stack kept in ``data_dir`` has its store, databases and outbox: the supervisor
    starts the stack with these, and commands run while it is down use the same folder."""
    return {"GROVE_STORE_ROOT": str(data_dir / "store"), "GROVE_CONTENT_DSN": sqlite_dsn(data_dir / "content.db"),
            "GROVE_READ_MODEL_DB": str(data_dir / "read-model.db"), "GROVE_MAIL__OUTBOX_DIR": str(data_dir / "outbox")}


def write(data_dir: Path, *, nats_url: str, nats_user: str, credentials_file: Path, env: Mapping[str, str]) -> Path:
    path = data_dir / STACK_FILE
    body = {"nats_url": nats_url, "nats_user": nats_user, "credentials_file": str(credentials_file.resolve()),
            "pid": os.getpid(), "env": {k: v for k, v in env.items() if k.startswith("GROVE_")}}
    write_private(path, json.dumps(body, indent=1) + "\n")  # it points at the passwords
    return path


def remove(data_dir: Path) -> None:
    (data_dir / STACK_FILE).unlink(missing_ok=True)


def find(data_dir: Path, environ: Mapping[str, str]) -> Found:
    """The GROVE_* values from ``<data>/stack.json`` that ``environ`` does not set itself (in any
    letter case: the settings read names case-insensitively)."""
    environ = {k.upper(): v for k, v in environ.items()}
    path = data_dir / STACK_FILE
    body = running.read_stack_file(data_dir)
    if body is None:  # absent (no stack running), or unreadable: the folder's own paths;
        # NATS stays unset (the message then names the URL used and why)
        return Found({k: v for k, v in folder_paths(data_dir).items() if k not in environ}, None)
    add = {k: str(v) for k, v in dict(body.get("env") or {}).items() if _settable(k, v) and k.upper() not in environ}
    unreadable = None
    if "GROVE_NATS_URL" not in environ:
        add["GROVE_NATS_URL"] = str(body["nats_url"])
        user = str(body.get("nats_user") or "")
        if user and "GROVE_NATS_USER" not in environ:
            add["GROVE_NATS_USER"] = user
            if "GROVE_NATS_PASSWORD" not in environ:
                try:
                    add["GROVE_NATS_PASSWORD"] = _password(Path(str(body.get("credentials_file", ""))), user)
                except SecretError as e:
                    unreadable = str(e)
    else:
        add.pop("GROVE_NATS_URL", None)
    return Found(add, path.resolve(), stale=not running.alive(body.get("pid")), unreadable=unreadable,
                 pid=body.get("pid"))


def _settable(name: object, value: object) -> bool:
    """Whether a stack.json ``env`` entry is a GROVE_* setting the environment can hold: the file is only
    the stack's when a stack wrote it, and a NUL in a value ended every command given the folder in a
    ValueError traceback (os.environ refuses it), while PATH or LD_PRELOAD there went into the
    command's environment."""
    return (isinstance(name, str) and name.upper().startswith("GROVE_") and "=" not in name
            and isinstance(value, str | int | float) and "\0" not in name + str(value))


def _password(credentials: Path, user: str) -> str:
    """``user``'s password from the stack's ``nats-users.json``, or :class:`SecretError` saying why not:
    a command that logged in without it would only hear that the server refused the user."""
    try:
        passwords = read_local_passwords(credentials)
    except OSError as e:
        raise SecretError(f"the local stack's NATS passwords file {credentials} cannot be read "
                          f"({e.strerror or e}): restore it, or restart the stack (`grove-export serve`)") from None
    if not passwords.get(user):
        raise SecretError(f"the local stack's NATS passwords file {credentials} has no password for {user!r}: "
                          "restore it, or delete it and start the stack again (`grove-export serve`), which "
                          "makes new passwords")
    return passwords[user]


def main(argv: list[str] | None = None) -> int:
    """``python -m services.devtools.stack.operator DIR``: what ``services.devtools.stack.running`` says
    (`make clean` runs that one: it needs no package of the virtualenv)."""
    return running.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
