"""Is a local stack running in a data folder? ``python -m services.devtools.stack.running DIR`` is
`make clean`'s check: exit 0 and nothing said when none runs there, else exit 3 and one line on stderr.

Standard library only, so it runs on any Python 3 (the Makefile's ``$(PYTHON)``) when the project's
virtualenv is missing: with no ``.venv/bin/python`` the check used to be skipped, and `make clean`
deleted var/ from under a running stack. Any other exit (this file cannot run) means "cannot tell"."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from shared.runtime.regularfile import open_regular  # standard library only, as this file

STACK_FILE = "stack.json"  # written by the stack when it starts, removed when it stops
MAX_STACK_FILE = 1 << 20  # a stack writes well under 4 KiB; more is read as a file cut there (not JSON)
RUNNING = 3  # not 1: an uncaught error exits 1, and must not read as an answer


def alive(pid: object) -> bool:
    """Does the process ``pid`` (as stack.json gives it) exist? One of another user's counts too."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_stack_file(data_dir: Path) -> dict[str, Any] | None:
    """What ``<data>/stack.json`` says, when it is the object a stack writes there (a ``nats_url``
    string; ``env``, when there, an object); None when it is absent or is not that — cut short, not
    JSON, or JSON of another shape (``[]``, ``{}``, arrays nested thousands deep), which every command
    that reads settings met as an AttributeError, KeyError or RecursionError traceback. The one
    reader of the file: operator commands, ``serve``'s "already runs" line and `make clean`'s check."""
    body = _loaded(data_dir)
    if not isinstance(body, dict) or not isinstance(body.get("nats_url"), str) \
            or not isinstance(body.get("env", {}), dict):
        return None
    return body


def _loaded(data_dir: Path) -> Any:
    try:  # a FIFO or a link to /dev/zero in its place was waited on, or read, for ever by every command
        with open_regular(data_dir / STACK_FILE) as f:
            return json.loads(f.read(MAX_STACK_FILE))
    except (OSError, ValueError, RecursionError):  # absent (no stack running), or unreadable
        return None


def running_pid(data_dir: Path) -> object | None:
    """The pid of the stack running in ``data_dir`` (its stack.json names a live process), else None.
    Any object naming a live pid counts, whatever else it lacks: `make clean` asks this before it
    deletes the folder, and a file it took for no stack let it delete a running stack's data."""
    body = _loaded(data_dir)
    pid = body.get("pid") if isinstance(body, dict) else None
    return pid if alive(pid) else None


def main(argv: list[str] | None = None) -> int:
    """The Makefile gives the line as make's own error (``Makefile:N: *** LINE.  Stop.``), so it names
    no command."""
    data = Path((sys.argv[1:] if argv is None else argv)[0])
    pid = running_pid(data)
    if pid is not None:
        print(f"the local stack in {data} is running (pid {pid}): stop it first "
              "(Ctrl-C where `make run` or `make serve` runs), then make clean", file=sys.stderr)
        return RUNNING
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
