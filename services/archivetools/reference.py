"""``grove-export assemble``: a frozen snapshot → a local ZIP, no bus involved.

The reference that byte-identity is judged against: the same encoder as the assembler, from
byte 0, with no parts and no log.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from services.assembler.bridge import source_opener
from services.assembler.encoder import ArchiveStream, Stopped
from services.assembler.plan import MemberRecord, resume_point
from shared.core.snapshot import Snapshot
from shared.objectstore import ObjectStore


async def assemble_to_file(store: ObjectStore, bucket: str, snapshot_key: str, out: Path) -> tuple[int, str]:
    """Write the archive of ``snapshot_key`` to ``out``; returns (size, sha256). Cut short (Ctrl-C: this
    coroutine cancelled) or failing, it writes nothing at ``out`` and leaves no ``.part`` beside it:
    the writing thread stops at its next block. It went on to the end — the command did not exit
    until the whole archive was written (reading from S3 it never did: the thread waited for a loop
    that had closed), then put it at ``out`` and said the command did not finish."""
    snapshot = Snapshot.loads(await store.read(bucket, snapshot_key))
    loop = asyncio.get_running_loop()
    stop = threading.Event()

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
            tmp.replace(out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return size, sha.hexdigest()

    opener = source_opener(store, loop, stop, members=snapshot.members)  # from S3: one member read ahead
    # A thread of its own, not the loop's default executor: reading from S3, ``write`` waits for the
    # loop, whose DNS lookups use the default executor (the assembler's deadlock, services/assembler).
    own = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference")
    try:
        return await loop.run_in_executor(own, write)
    except BaseException:
        stop.set()  # the thread stops at its next block (a wait for the store gives up too)
        raise
    finally:
        own.shutdown(wait=False)
