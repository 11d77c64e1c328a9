"""manifest.json counts what the archive holds: a member skipped while assembling is not counted."""

from __future__ import annotations

import json
import zipfile
from io import BytesIO

from services.assembler.encoder import ArchiveStream
from services.assembler.plan import MemberRecord, resume_point
from shared.archive.layout import held_counts
from shared.core.snapshot import Snapshot
from shared.objectstore import ObjectNotFound
from tests.unit.pipeline.test_archive_stream import opener, snapshot


def test_a_member_skipped_while_assembling_lowers_the_counts() -> None:
    src = {"media/a.jpg": b"a" * 10, "media/b.jpg": b"b" * 10}
    base = snapshot(src)
    snap = Snapshot(header=base.header.model_copy(update={"item_counts": {"posts": 0, "images": 2}}),
                    members=base.members)
    stream = ArchiveStream(snap, opener(src, fail={"media/b.jpg": ObjectNotFound("gone")}), resume_point([]))
    data = b"".join(i for i in stream if not isinstance(i, MemberRecord))
    with zipfile.ZipFile(BytesIO(data)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        errors = json.loads(zf.read("errors.json"))
    assert manifest["item_counts"] == {"posts": 0, "images": 1} == held_counts(snap, stream.records)
    assert [e["path"] for e in errors] == ["media/b.jpg"]
