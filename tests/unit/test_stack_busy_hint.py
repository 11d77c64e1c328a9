"""A second stack refused on a busy data folder says how commands find the first: with --data DIR, as a
shell takes it (a folder with a space in its name was named bare, and pasted that is two arguments)."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
from pathlib import Path

import pytest

from services.devtools.stack.supervisor import LOCK_FILE, StackBusy, _lock


def test_a_busy_folder_with_a_space_is_named_as_a_shell_takes_it(tmp_path: Path) -> None:
    data = tmp_path / "my stacks" / "var"
    data.mkdir(parents=True)
    held = os.open(data / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the running stack's lock
        with pytest.raises(StackBusy) as refused:
            _lock(data, probe=True)
    finally:
        os.close(held)
    named = re.search(r"find it with (.*?)\), stop it first", str(refused.value))
    assert named, refused.value
    assert shlex.split(named.group(1)) == ["--data", str(data)], named.group(1)
