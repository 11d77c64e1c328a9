"""Open a file named from outside (a backup folder's files) only when it is a regular file.

A FIFO there was opened and waited on for a writer that never came, /dev/zero (a link to it) read
for ever, each in the event loop's thread, where neither Ctrl-C nor SIGTERM could end the command:
``grove-export restore`` hung until killed. Opened without waiting (O_NONBLOCK: a FIFO's open
returns at once), looked at (fstat), and refused unless a regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """``path`` is a folder, a device, a FIFO or a socket (after following links)."""


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading in binary when it is a regular file; NotRegularFile when it is not,
    and the OSError of ``os.open`` when it cannot be opened (missing, unreadable)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file: a folder, a device or a pipe", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
