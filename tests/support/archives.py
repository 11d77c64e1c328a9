"""An archive made in one process from a catalog plan, by the assembler's own encoder (no bus, no
store): the snapshot the catalog would freeze, then ArchiveStream over the given sources."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.assembler.encoder import ArchiveStream
from services.assembler.plan import MemberRecord, resume_point
from services.catalog.render import Plan
from shared.archive import layout
from shared.core.snapshot import Snapshot, SnapshotHeader, SnapshotMember


def encode_plan(plan: Plan, path: Path, open_source: Callable[[SnapshotMember], Iterator[bytes]]) -> Path:
    """``plan``'s archive written to ``path``; its text members live in the object "texts"."""
    members = tuple(layout.snapshot_members(plan.texts, plan.objects, layout.TextsObject("exports", "texts", "e")))
    snap = Snapshot(header=SnapshotHeader(
        export_id="exp_1", tenant_id="t1", mode="blog", username="u", include_images=True,
        created_at=datetime(2026, 1, 1, tzinfo=UTC), archive_key="k.zip", item_counts=plan.counts, generator="t"),
        members=members, errors=tuple(plan.errors))
    path.write_bytes(b"".join(i for i in ArchiveStream(snap, open_source, resume_point([]))
                              if not isinstance(i, MemberRecord)))
    return path
