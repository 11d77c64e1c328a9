"""Rows of the read model as the API shows them (pure, except for signing the download link)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from services.gateway.projection import Row
from services.gateway.schemas import ExportStatus, HistoryItem, from_ms, human_size
from shared.core.keys import is_archive_key_of
from shared.core.lifecycle import shown_status as lifecycle_status

Signer = Callable[[str, int], Awaitable[str]]  # (key, expires_in seconds) -> URL
EMAIL_NOTICE = "Your export is ready, but we could not send the email. You can download it here."


def shown_status(row: Row, now_ms: int) -> str:
    """The row's status as the lifecycle shows it at ``now_ms`` (complete past its expiry: expired)."""
    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)
    expires = at(row.expires_at) if row.expires_at is not None else None
    return lifecycle_status(row.status, expires, at(now_ms))


def link_ttl(row: Row, now_ms: int, max_ttl_s: float) -> int:
    """Seconds a download link may live: min(max TTL, time to expiry); 0 = no link."""
    if row.expires_at is None:
        return 0
    return max(0, int(min(max_ttl_s, (row.expires_at - now_ms) // 1000)))


async def status_view(row: Row, sign: Signer, max_ttl_s: float, now_ms: int | None = None) -> ExportStatus:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    status = shown_status(row, now)
    fields: dict[str, object] = dict(
        export_id=row.id, status=status, progress=row.progress, item_counts=row.counts(),
        created_at=from_ms(row.created_at), mode=row.mode, bytes_done=row.bytes_done,
        total_bytes=row.total_bytes, items_done=row.items_done, items_total=row.items_total,
        eta_seconds=row.eta_seconds, error_count=row.error_count, notification=row.notification,
    )
    if row.file_size_bytes is not None and status in ("complete", "expired"):
        fields |= dict(file_size=human_size(row.file_size_bytes), size_bytes=row.file_size_bytes,
                       expires_at=from_ms(row.expires_at), sha256=row.sha256)
    ttl = link_ttl(row, now, max_ttl_s)
    if status == "complete" and is_archive_key_of(row.tenant_id, row.id, row.r2_key) and ttl > 0:
        assert row.r2_key is not None
        fields["download_url"] = await sign(row.r2_key, ttl)
    if status == "failed":
        fields["error"] = row.error_message or "The export failed."
    if row.notification == "failed":
        fields["notice"] = (EMAIL_NOTICE if status == "complete"
                            else "We could not send the email about this export.")
    return ExportStatus(**fields)  # type: ignore[arg-type]


def history_item(row: Row, now_ms: int | None = None) -> HistoryItem:
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return HistoryItem(
        export_id=row.id, status=shown_status(row, now), mode=row.mode,  # type: ignore[arg-type]
        file_size=human_size(row.file_size_bytes) if row.file_size_bytes is not None else None,
        created_at=from_ms(row.created_at), expires_at=from_ms(row.expires_at),  # type: ignore[arg-type]
    )
