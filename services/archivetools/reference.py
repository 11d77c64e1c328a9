"""``grove-export assemble``: a frozen snapshot → a local ZIP, no bus involved.

The reference that byte-identity is judged against: the same encoder as the assembler, from
byte 0, with no parts and no log.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.assembler.bridge import source_opener
from services.assembler.encoder import ArchiveStream, Stopped
from services.assembler.plan import MemberRecord, resume_point
from shared.core.snapshot import Snapshot
from shared.objectstore import ObjectStore
from shared.runtime.durable import fsync_folder


async def assemble_to_file(store: ObjectStore, bucket: str, snapshot_key: str, out: Path,
                           placed: list[os.stat_result] | None = None) -> tuple[int, str]:
    """Write the archive of ``snapshot_key`` to ``out``; returns (size, sha256). Cut short (Ctrl-C: this
    coroutine cancelled) or failing, it writes nothing at ``out`` and leaves no ``.part`` beside it:
    the writing thread stops at its next block, and once every block is written it renames the file
    into place only under a lock, while the command still wants it; one it had just put there is taken
    back. (It put the archive at ``out`` after an interrupt that landed past the last block: the thread
    went on to the rename after the command had said it did not finish.) ``placed`` gets the stat of
    the file put at ``out``, for a caller that may still be interrupted after this returns
    (:func:`take_back`)."""
    snapshot = Snapshot.loads(await store.read(bucket, snapshot_key))
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    lock = threading.Lock()  # the rename into place, against the interrupt's stop
    put: list[os.stat_result] = [] if placed is None else placed

    def write() -> tuple[int, str]:
        stream = ArchiveStream(snapshot, lambda m: opener(m), resume_point([]))
        sha, size = hashlib.sha256(), 0
        tmp = out.with_name(out.name + ".part")
        try:
            with open(tmp, "wb") as f:
                for item in stream:
                    if stop.is_set():
                        raise Stopped()
                    if not isinstance(item, MemberRecord):
                        f.write(item)
                        sha.update(item)
                        size += len(item)
                f.flush()
                os.fsync(f.fileno())  # on disk before it is in place: never a short archive at ``out``
                st = os.fstat(f.fileno())
            with lock:
                if stop.is_set():  # interrupted after the last block: it is not put in place
                    raise Stopped()
                tmp.replace(out)
                put.append(st)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_folder(out.parent)
        return size, sha.hexdigest()

    opener = source_opener(store, loop, stop, members=snapshot.members)  # from S3: one member read ahead
    # A thread of its own, not the loop's default executor: reading from S3, ``write`` waits for the
    # loop, whose DNS lookups use the default executor (the assembler's deadlock, services/assembler).
    own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference")
    try:
        return await loop.run_in_executor(own, write)
    except BaseException:
        with lock:
            stop.set()  # the thread stops at its next block (a wait for the store gives up too), or
        take_back(out, put)  # before its rename; one that was done is undone
        raise
    finally:
        own.shutdown(wait=False)


def take_back(out: Path, placed: list[os.stat_result]) -> None:
    """Remove the archive :func:`assemble_to_file` put at ``out`` (``placed``: its stat), if it is still
    that file there; nothing when none was put, or another file has replaced it since."""
    for st in placed:
        try:
            now = out.stat()
        except FileNotFoundError:
            return
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            out.unlink()
            fsync_folder(out.parent)

