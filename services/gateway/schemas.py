"""Request and response bodies of the HTTP API (the spec's camelCase field names).

These models are the single source of the OpenAPI document's schemas.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.core.humanize import human_size as human_size  # re-exported for views
from shared.core.lifecycle import Status


class Body(BaseModel):
    # An answer carries every field, a defaulted one too (``success``, ``status``), so the served schema
    # says each is required: pydantic leaves defaulted fields out of "required", and a client generated
    # from the document made them optional. The exception, fields left out when empty, is taken out of
    # "required" where the document is built (services/gateway/openapi.py).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              json_schema_serialization_defaults_required=True)
    omit_when_none: ClassVar[frozenset[str]] = frozenset()  # optional fields left out rather than null

    def dump(self) -> dict[str, object]:
        data = self.model_dump(mode="json", by_alias=True)
        for name in self.omit_when_none:
            alias = to_camel(name)
            if data.get(alias) is None:
                data.pop(alias, None)
        return data


class ExportRequest(Body):
    """Body of ``POST /api/export``. Identity (tenant, email, username) comes from the token."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, frozen=True, extra="forbid",
                              strict=True, title="ExportRequest")

    mode: Literal["blog", "storage"] = Field("blog", description="What to export.")
    include_images: bool = Field(True, description="Include media files (blog mode only).")
    delivery_method: Literal["email", "download"] = Field("email", description="How to notify when done.")


class ExportCreated(Body):
    success: Literal[True] = True
    export_id: str = Field(examples=["exp_3f2a9c0d1e2b4a5c6d7e8f90"])
    status: Literal["pending"] = "pending"
    message: str


class ExportStatus(Body):
    """Progress of one export; the download fields appear once it is complete."""

    omit_when_none = frozenset({"download_url", "file_size", "size_bytes", "expires_at", "sha256", "error",
                                "notice"})

    export_id: str
    status: Status
    progress: int = Field(ge=0, le=100)
    item_counts: dict[str, int] = Field(description="{posts, pages, images} or {files}; empty until cataloged.")
    created_at: datetime
    mode: Literal["blog", "storage"]
    bytes_done: int = Field(description="Source bytes written into the archive so far.")
    total_bytes: int | None = Field(description="Source bytes planned; null until cataloged.")
    items_done: int
    items_total: int | None
    eta_seconds: float | None = Field(description="Estimated seconds left while assembling, else null.")
    error_count: int = Field(description="Items that could not be included (see errors.json).")
    notification: Literal["sent", "failed"] | None
    download_url: str | None = Field(None, description="Signed, short-lived; regenerated on each poll.")
    file_size: str | None = Field(None, examples=["24.5 MB"])
    size_bytes: int | None = None
    expires_at: datetime | None = None
    sha256: str | None = None
    error: str | None = Field(None, description="Why the export failed.")
    notice: str | None = Field(None, description="Set when only the email could not be sent.")


class HistoryItem(Body):
    export_id: str
    status: Status
    mode: Literal["blog", "storage"]
    file_size: str | None
    created_at: datetime
    expires_at: datetime | None


class History(Body):
    exports: list[HistoryItem] = Field(description="The tenant's 10 most recent exports, newest first.")


class Cancelled(Body):
    success: Literal[True] = True
    message: str = "Export cancelled."


class Health(Body):
    status: Literal["ok"] = "ok"


class ProblemBody(BaseModel):
    """RFC 9457 problem details plus ``code`` and a few extras."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(pattern=r"^GROVE-EXPORT-\d{3}$", examples=["GROVE-EXPORT-002"])
    active_export_id: str | None = Field(None, alias="activeExportId", description="With 002.")
    next_allowed_at: datetime | None = Field(None, alias="nextAllowedAt", description="With 003.")
    retry_after: int | None = Field(None, alias="retryAfter", description="With 003, in seconds.")
    errors: list[dict[str, object]] | None = Field(None, description="With 004: what was wrong.")
    size_bytes: int | None = Field(None, alias="sizeBytes", description="With 010: the archive's size.")
    max_concurrent_downloads: int | None = Field(None, alias="maxConcurrentDownloads",
                                                 description="With 012: how many downloads a tenant may have at once.")


def from_ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value is not None else None
