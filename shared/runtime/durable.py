"""A folder's entries on disk: after a file is renamed into (or removed from) a folder, the rename is
durable only once the folder itself is fsynced. One home for the commands that promise a whole file
or none (``grove-export assemble --out``, ``backup``)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
