"""Opening an SQLite file through aiosqlite without a stray traceback when the open fails.

aiosqlite runs each connection on a thread of its own. When ``sqlite3.connect`` fails there (the path
is a folder, in a folder that cannot hold files), aiosqlite raises the error and asks that thread to
stop, without waiting for it: the thread's last step is a call into the event loop. A command that
said its one line and ended (``asyncio.run`` closes the loop) then had the thread fail on the closed
loop and print two tracebacks under that line ("RuntimeError: Event loop is closed"), e.g.
``grove-export seed --data DIR`` with ``DIR/content.db`` a folder. :func:`connect` raises the error
only once that thread has ended.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiosqlite

STOP_WAIT_S = 5.0  # the thread's stop is one queued call: it ends at once unless the machine is stuck


async def connect(path: Path | str) -> aiosqlite.Connection:
    """An open aiosqlite connection to ``path``; close it with ``await db.close()`` (not ``async with``:
    that would start its thread again)."""
    pending = aiosqlite.connect(path)
    try:
        return await pending
    except BaseException:
        thread = getattr(pending, "_thread", None)
        if isinstance(thread, threading.Thread) and thread.is_alive():
            await asyncio.to_thread(thread.join, STOP_WAIT_S)
        raise
