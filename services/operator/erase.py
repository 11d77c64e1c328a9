"""Erase: ``grove-export erase-tenant TENANT`` removes everything Grove Export holds about a tenant.

Order matters. Running exports are first cancelled through the log (so the assembler stops
writing and the canceller aborts the upload), then the tenant's subjects are purged from the
stream, its KV keys purged from the bucket streams (no delete markers are left behind), its
objects and open uploads removed from the store, and its rows deleted from the read model.
Finally everything is listed again: the command says "nothing left" only when that is what it saw.
A second run finds nothing and removes nothing, so running it twice is safe.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.operator import actions
from services.operator.inspect import read, requested
from shared.bus.connect import Bus, kv_names
from shared.core import keys
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings


@dataclass
class Holdings:
    """What the system holds about one tenant, where."""

    events: int = 0
    exports: list[str] = field(default_factory=list)
    archives: list[str] = field(default_factory=list)
    work_objects: list[str] = field(default_factory=list)
    uploads: list[tuple[str, str]] = field(default_factory=list)
    admission_keys: list[str] = field(default_factory=list)
    heartbeat_keys: list[str] = field(default_factory=list)
    read_model_rows: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.events or self.archives or self.work_objects or self.uploads or self.admission_keys
                    or self.heartbeat_keys or any(self.read_model_rows.values()))

    def lines(self, verb: str) -> list[str]:
        return [
            f"{verb} {self.events} events of {len(self.exports)} exports from stream subjects",
            f"{verb} {len(self.archives)} archives",
            f"{verb} {len(self.work_objects)} snapshot, text and part-record objects",
            f"{verb} {len(self.uploads)} open multipart uploads",
            f"{verb} {len(self.admission_keys)} admission and idempotency keys",
            f"{verb} {len(self.heartbeat_keys)} heartbeat keys",
            *(f"{verb} {n} read-model rows in {path}" for path, n in self.read_model_rows.items()),
        ]


class Eraser:
    def __init__(self, settings: Settings, bus: Bus, store: ObjectStore, read_models: list[Path]) -> None:
        self.settings, self.bus, self.store, self.read_models = settings, bus, store, read_models
        self.bucket = settings.buckets.exports
        self.heartbeats, self.admission = kv_names(settings)

    def _subjects(self, tenant_id: str) -> dict[str, list[str]]:
        """Stream → the subject filters that hold this tenant (never a wildcard in the tenant's place)."""
        p = self.settings.subject_prefix
        return {
            self.settings.stream_name: [f"{p}.{tenant_id}.>"],
            f"KV_{self.admission}": [f"$KV.{self.admission}.tenant.{tenant_id}",
                                     f"$KV.{self.admission}.idem.{tenant_id}.>"],
            f"KV_{self.heartbeats}": [f"$KV.{self.heartbeats}.{keys.heartbeat_key('*', tenant_id, '>')}"],
        }

    async def _count(self, stream: str, subject: str) -> dict[str, int]:
        info = await self.bus.js.stream_info(stream, subjects_filter=subject)
        return dict(info.state.subjects or {})

    async def holdings(self, tenant_id: str) -> Holdings:
        h = Holdings()
        subjects = self._subjects(tenant_id)
        events = await self._count(self.settings.stream_name, subjects[self.settings.stream_name][0])
        h.events = sum(events.values())
        h.exports = sorted({s.split(".")[2] for s in events})
        for subject in subjects[f"KV_{self.admission}"]:
            h.admission_keys += sorted(await self._count(f"KV_{self.admission}", subject))
        h.heartbeat_keys = sorted(await self._count(f"KV_{self.heartbeats}", subjects[f"KV_{self.heartbeats}"][0]))
        prefix = keys.tenant_prefix(tenant_id)
        for obj in await self.store.list_keys(self.bucket, prefix):
            (h.work_objects if keys.is_work_key(obj.key) else h.archives).append(obj.key)
        h.uploads = [(u.key, u.upload_id) for u in await self.store.list_uploads(self.bucket, prefix)]
        for path in self.read_models:
            h.read_model_rows[str(path)] = _rows(path, tenant_id, delete=False)
        return h

    async def stop_running(self, tenant_id: str, who: actions.Who, wait_s: float) -> list[str]:
        """Cancel the tenant's running exports through the log and wait for them to stop; the ids
        still running when the wait ends (e.g. no services are up) are returned."""
        running = []
        for _, tenant, export in await requested(self.bus, self.settings, tenant_id):
            state = (await read(self.bus, tenant, export)).state
            if state.exists and not state.terminal:
                running.append(export)
                try:
                    await actions.cancel(self.bus, tenant, export, who)
                except actions.Refusal:
                    pass  # already cancelling, or finalizing: wait for it to finish either way
        deadline = time.monotonic() + wait_s
        while running and time.monotonic() < deadline:
            states = [(await read(self.bus, tenant_id, e)).state for e in running]
            running = [s.export_id for s in states if s.exists and not s.terminal]
            if running:
                await asyncio.sleep(0.2)
        return running

    async def erase(self, tenant_id: str, found: Holdings) -> None:
        for key, upload_id in found.uploads:  # first, so no part lands after the objects are gone
            await self.store.abort_multipart(self.bucket, key, upload_id)
        for stream, filters in self._subjects(tenant_id).items():
            for subject in filters:
                await self.bus.js.purge_stream(stream, subject=subject)
        await self.store.delete_many(self.bucket, [*found.archives, *found.work_objects])
        for path in self.read_models:
            _rows(path, tenant_id, delete=True)


def _rows(path: Path, tenant_id: str, *, delete: bool) -> int:
    """Rows of the tenant in one read-model file (a missing file or table holds none)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=10)
    try:
        try:
            (n,) = db.execute("SELECT COUNT(*) FROM storage_exports WHERE tenant_id = ?", (tenant_id,)).fetchone()
        except sqlite3.OperationalError:
            return 0
        if delete and n:
            db.execute("DELETE FROM storage_exports WHERE tenant_id = ?", (tenant_id,))
            db.commit()
        return int(n)
    finally:
        db.close()
