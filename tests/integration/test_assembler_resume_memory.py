"""A resume reads the logged parts' member records back without holding them all: memory stays flat
in the number of members on resume too (65,536 records as models were 116 MB, more than the
assembler's whole budget). The records are folded part by part into a spill file and the stream
reads them back one at a time, in member order."""

from __future__ import annotations

import base64
import hashlib
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

from services.assembler.plan import MemberRecord
from services.assembler.service import Assembler
from shared.core.lifecycle import PartInfo
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings

PARTS, PER_PART = 40, 600  # 24,000 records


def record(i: int) -> MemberRecord:
    return MemberRecord(index=i, path=f"files/docs/file-{i:06d}.txt", source_id=f"file_{i}_tenant", offset=i * 1200,
                        length=1150, size=1024, crc32=i, sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                        content_type="text/plain", cd=base64.b64encode(bytes(90)).decode())


async def test_a_resume_holds_about_one_parts_records_not_every_part(tmp_path: Path) -> None:
    settings = Settings(store="fs", store_root=tmp_path / "store")
    store = await open_store(settings, create_buckets=True)
    bucket = settings.buckets.exports
    parts = []
    for n in range(1, PARTS + 1):
        key = f"t/e/records/{n}.json"
        recs = [record(i) for i in range((n - 1) * PER_PART, n * PER_PART)]
        await store.put(bucket, key, b"[" + b", ".join(r.model_dump_json().encode() for r in recs) + b"]")
        parts.append(PartInfo(number=n, etag="x", crc32=None, byte_start=(n - 1) * 720_000, byte_end=n * 720_000,
                              records_key=key, members_done=n * PER_PART, source_bytes_done=0))
    ctx = SimpleNamespace(state=SimpleNamespace(parts=tuple(parts)), progress=lambda: None)
    try:
        tracemalloc.start()
        try:
            rp = await Assembler(settings, store)._resume_point(ctx, None)  # type: ignore[arg-type]
            folded = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            count = 0
            for i, r in enumerate(rp.records):  # as the stream reads them: one at a time
                assert r == record(i)
                count += 1
            read_back = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        await store.close()
    assert count == PARTS * PER_PART
    assert (rp.next_part, rp.offset, rp.member_index, rp.member_offset) == \
        (PARTS + 1, PARTS * 720_000, PARTS * PER_PART, record(PARTS * PER_PART - 1).end)
    # every record as a model at once (the old resume) peaks at ~40 MB here
    assert folded < 12 << 20, f"folding the parts peaked at {folded / 2**20:.1f} MiB"
    assert read_back < 2 << 20, f"reading the records back peaked at {read_back / 2**20:.1f} MiB"
