"""The event contract: every event of an export's append-only log, in one module.

Subject: ``exports.<tenant_id>.<export_id>.<EventName>``. Body: the JSON of the model (UTF-8).
Events are frozen; new fields get defaults; ``schema_version`` moves when a field's meaning does,
and old versions are upcast on read: :func:`parse_event` reads the body's ``version`` and applies
the registered upcasters (``@upcaster("PartUploaded", 1)`` turns a v1 body into v2) one version
at a time. A body from a newer producer parses with the fields this version knows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic_core import from_json

from shared.core import keys
from shared.core.mailaddr import is_single_address
from shared.core.printable import USERNAME_MAX_CHARS, has_unprintable

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_ID_RE = re.compile(ID_PATTERN)

Id = Annotated[str, Field(pattern=ID_PATTERN, description="Subject-safe id: [A-Za-z0-9_-]{1,64}.")]
MAX_COUNT = 2**63 - 1  # what a reader can store (SQLite's INTEGER) and compare


# Every reader compares event times with its own clock and stores them as Unix milliseconds: a time
# without a zone (a TypeError against an aware clock; before year 1970 ``timestamp()`` reads it as
# local time and fails in year 1) or one that leaves the calendar in UTC (year 1 at +05:00 is year 0)
# would stop a reader at that event for good — the projector retries it in order, the janitor's run
# ends there. Such a body is malformed: dropped and counted like one that is not JSON. Likewise a
# count past 64 bits. The bounds keep a day inside the calendar, so no zone's offset takes a time out
# of it in UTC; pydantic-core checks them (a Python validator here cost 1.3 µs an event, 7 % of a
# read-model replay).
TIME_MIN = datetime(1, 1, 2, tzinfo=UTC)
TIME_MAX = datetime(9999, 12, 30, tzinfo=UTC)
Time = Annotated[AwareDatetime, Field(ge=TIME_MIN, le=TIME_MAX)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Mode = Literal["blog", "storage"]
Step = Literal["catalog", "assemble", "finalize", "notify", "cancel"]


def is_valid_id(value: str) -> bool:
    """True when ``value`` can be a tenant or export id (one subject token)."""
    return bool(_ID_RE.fullmatch(value))


def new_export_id() -> str:
    """A fresh export id, ``exp_`` + 24 hex digits."""
    return "exp_" + uuid.uuid4().hex[:24]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    schema_version: ClassVar[int] = 1

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Unique id of this event.")
    export_id: Id = Field(description="The export this event belongs to.", examples=["exp_3f2a9c"])
    tenant_id: Id = Field(description="The tenant that owns the export.", examples=["tenant_autumn"])
    version: int = Field(1, description="Schema version of this event's body (the type's schema_version when written).")
    occurred_at: Time = Field(default_factory=utcnow, description="When it happened: ISO 8601 with its time zone (`Z` for UTC).")
    producer: str = Field("unknown", description="Service that appended it.")
    worker: str = Field("", description="Replica (host-pid) that appended it: who did what, for operators and audits.")

    @model_validator(mode="before")
    @classmethod
    def _written_at_this_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "version" not in data and cls.schema_version != 1:
            return {**data, "version": cls.schema_version}
        return data

    @computed_field(description="The event's type; equals the subject's last token (checked on read).")  # type: ignore[prop-decorator]
    @property
    def type(self) -> str:
        return type(self).__name__

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    # The step a type is that step's own record of (its subject names the step, and only the NATS user
    # of the service that runs it may publish it): a body naming another step is forged (:func:`decode`).
    # None: the type's subject names no step (a body's ``step``, if it has one, is trusted).
    of_step: ClassVar[str | None] = None

    def foreign_keys(self) -> list[str]:
        """The object keys this event names that are not its own export's (:mod:`shared.core.keys`).
        Any at all and the event is forged (:func:`decode`): a step must never read another
        export's snapshot or write over another tenant's archive because a body said so."""
        return []


def _not_own(*checks: tuple[str | None, bool]) -> list[str]:
    return [str(key) for key, own in checks if not own]


class ExportRequested(Event):
    """A person (or an API gateway on their behalf) asked for an export. Always the first event."""

    user_id: str = Field(min_length=1, description="Id of the requesting user, from the verified identity; no "
                                                   "control or bidi characters.")
    user_email: str = Field(description="Where the export-ready email goes (from the identity): exactly one bare "
                                        "address, local@domain.tld, ASCII or internationalised (RFC 6531: UTF-8 "
                                        "in the local part, U-labels in the domain).",
                            examples=["autumn@example.org", "josé@bücher.de"])
    # Not empty, as the gateway refuses a token whose sub or username is (the email began "Hi ,").
    # No length bound here: requests the release before stored (any username that fit a token) must
    # still be read. New requests are held to printable.USERNAME_MAX_CHARS where they are written
    # (the gateway's token check, import, seed).
    username: str = Field(min_length=1, description="Shown in the archive name and the email; no control or "
                                                    f"bidi characters; writers keep it to {USERNAME_MAX_CHARS} "
                                                    "characters.")
    mode: Mode = Field("blog", description="'blog' (posts, pages, media) or 'storage' (Amber files).")
    include_images: bool = Field(True, description="Blog mode: include media files.")
    delivery_method: Literal["email", "download"] = Field("email", description="'download' sends no email.")

    @field_validator("user_id", "username")
    @classmethod
    def _printable(cls, value: str) -> str:
        # They reach the person's email ("Hi {username},"), the archive's name and the operator's
        # terminal: a line break would forge lines of the email, a bidi control reorder what follows.
        # The gateway refuses such a token (services/gateway/auth.py); this holds a publisher on the
        # event contract to the same rule.
        if has_unprintable(value):
            raise ValueError("holds a control or bidi character")
        return value

    @field_validator("user_email")
    @classmethod
    def _one_address(cls, value: str) -> str:
        # The export-ready email goes there. The gateway refuses a token whose email claim is not
        # exactly one address (shared/core/mailaddr.py); a publisher on the event contract is held to
        # it here, before any work — the mail adapters' same check came only after the whole export.
        if not is_single_address(value):
            raise ValueError("is not exactly one email address")
        return value


class CatalogStarted(Event):
    """The catalog began reading the tenant's content."""


class ExportCataloged(Event):
    """The snapshot is frozen; everything after works from it, never from the live database."""

    snapshot_key: str = Field(description="Key of the snapshot object in the exports bucket.")
    snapshot_sha256: str
    archive_key: str = Field(description="Where the ZIP will be, in the exports bucket.")
    member_count: Count = Field(description="Members planned (README, posts, pages, media/files).")
    total_bytes: Count = Field(description="Sum of the real sizes of every planned member.")
    item_counts: dict[str, Count] = Field(description="{posts, pages, images} or {files}.")
    error_count: Count = Field(0, description="Items already known to be missing at catalog time.")

    def foreign_keys(self) -> list[str]:
        t, e = self.tenant_id, self.export_id
        return _not_own((self.snapshot_key, keys.is_snapshot_key_of(t, e, self.snapshot_key)),
                        (self.archive_key, keys.is_archive_key_of(t, e, self.archive_key)))


class UploadStarted(Event):
    """A multipart upload was created for the archive."""

    upload_id: str
    archive_key: str
    part_size: Count = Field(description="Bytes per part (all but the last).")
    fingerprint: str = Field(description="Encoder fingerprint: zlib, stream-zip, levels, block size.")

    def foreign_keys(self) -> list[str]:
        return _not_own((self.archive_key, keys.is_archive_key_of(self.tenant_id, self.export_id, self.archive_key)))


class PartUploaded(Event):
    """Part ``part_number`` of the archive is in the store; its member records are an object.

    Re-logging a part number means the stream was rewound to it: later parts are void.
    """

    part_number: Count
    etag: str = Field(description="The store's ETag of the part (its integrity check at completion).")
    md5: str | None = Field(None, description="MD5 of the part (hex); written by older assemblers only.")
    crc32: Count | None = Field(None, description="CRC-32 of the part's bytes (the assembler's own digest).")
    byte_start: Count
    byte_end: Count = Field(description="Exclusive end offset of the part in the archive.")
    records_key: str = Field(description=(
        "Object with the member records completed in this part: one of its export's records keys, "
        "work/parts-{upload}/{part:05d}.json (work/parts/{part:05d}.json in logs from before)."))
    records_count: Count
    members_done: Count = Field(description="Members finished (written or skipped) so far.")
    source_bytes_done: Count = Field(description="Source bytes consumed so far (progress).")

    def foreign_keys(self) -> list[str]:
        own = keys.is_records_key_of(self.tenant_id, self.export_id, self.part_number, self.records_key)
        return _not_own((self.records_key, own))


class ArchiveAssembled(Event):
    """Every part is uploaded; the upload awaits completion."""

    archive_key: str
    upload_id: str
    size_bytes: Count
    part_count: Count
    member_count: Count
    error_count: Count
    sha256: str | None = Field(None, description="Archive SHA-256, or None when a resume happened.")
    item_counts: dict[str, Count] | None = Field(
        None, description="What the archive holds: the catalog's counts less members skipped while assembling.")

    def foreign_keys(self) -> list[str]:
        return _not_own((self.archive_key, keys.is_archive_key_of(self.tenant_id, self.export_id, self.archive_key)))


class FinalizeStarted(Event):
    """The finalizer is completing the upload; from here a cancel loses the race."""


class ExportCompleted(Event):
    """The archive is in the store and downloadable until ``expires_at``."""

    archive_key: str
    size_bytes: Count
    sha256: str
    item_counts: dict[str, Count]
    error_count: Count
    expires_at: Time

    def foreign_keys(self) -> list[str]:
        return _not_own((self.archive_key, keys.is_archive_key_of(self.tenant_id, self.export_id, self.archive_key)))


class NotificationSent(Event):
    """The export-ready (or export-failed) email was handed to the mail path."""

    channel: str
    kind: Literal["ready", "failed"] = "ready"


class NotificationFailed(Event):
    """The email could not be sent after every retry. The export stays as it was."""

    channel: str
    reason: str
    kind: Literal["ready", "failed"] = "ready"


class StepFailed(Event):
    """An attempt of a step failed and will be retried, as logs from before per-step types record it.

    Its subject names no step, so any step's user could record any step's failure; no service user
    may append it now (each appends its step's :data:`ATTEMPT_FAILED` type), and it is still read
    from logs written before, trusting its ``step``. The per-step types are its subclasses."""

    # The step whose failure the type itself records (its subject says it, and only that step's NATS
    # user may publish it): None for this older type, whose subject said no step.
    of_step: ClassVar[Step | None] = None

    step: Step = Field(description="The step whose attempt failed (for a per-step type, that type's step).")
    attempt: Count = Field(description="Which attempt of the step failed (the first is 1).")
    reason: str = Field(description="What failed, for a person.")


_OWN_STEP = "The step whose attempt failed: always this type's (a body naming another is forged)."


class CatalogAttemptFailed(StepFailed):
    """An attempt of the catalog step failed and will be retried."""

    of_step: ClassVar[Step | None] = "catalog"
    step: Literal["catalog"] = Field("catalog", description=_OWN_STEP)


class AssembleAttemptFailed(StepFailed):
    """An attempt of the assemble step failed and will be retried."""

    of_step: ClassVar[Step | None] = "assemble"
    step: Literal["assemble"] = Field("assemble", description=_OWN_STEP)


class FinalizeAttemptFailed(StepFailed):
    """An attempt of the finalize step failed and will be retried."""

    of_step: ClassVar[Step | None] = "finalize"
    step: Literal["finalize"] = Field("finalize", description=_OWN_STEP)


class CancelAttemptFailed(StepFailed):
    """An attempt of the cancel step failed and will be retried."""

    of_step: ClassVar[Step | None] = "cancel"
    step: Literal["cancel"] = Field("cancel", description=_OWN_STEP)


# A step's failed attempt, by step: the type each step appends (the step table lists it among the
# step's events, so the generated permissions let only that step's user publish it).
ATTEMPT_FAILED: dict[str, type[StepFailed]] = {
    cls.of_step: cls for cls in (CatalogAttemptFailed, AssembleAttemptFailed, FinalizeAttemptFailed,
                                 CancelAttemptFailed) if cls.of_step is not None
}


def attempt_failed(step: str, **fields: Any) -> StepFailed:
    """The event recording a failed attempt of ``step`` (KeyError for a step that records none)."""
    return ATTEMPT_FAILED[step](step=step, **fields)


class ExportFailed(Event):
    """The export stopped for good, as logs from before per-publisher types record it (read, no longer written).

    Its subject names no step, so every step's user (and the janitor's) could fail any export naming
    any step; no service user may append it now (each appends its own :data:`EXPORT_FAILED` type), and
    it is still read from logs written before, trusting its ``step``. The per-publisher types are its
    subclasses: a reader of ``ExportFailed`` reads them all."""

    # The step whose giving up the type itself records (its subject says it, and only the user of the
    # service that gives up there may publish it): None for this older type, whose subject said none.
    of_step: ClassVar[Step | Literal["janitor"] | None] = None

    step: Step | Literal["janitor"] = Field(
        description="The step that gave up ('janitor': the janitor found the export's worker dead).")
    reason: str = Field(description="Why, for the person who asked (the failure email says it).")


_GAVE_UP = "The step that gave up: always this type's (a body naming another is forged)."


class ExportFailedAtCatalog(ExportFailed):
    """The export stopped for good: the catalog step gave up; ``reason`` is meant for a person."""

    of_step: ClassVar[Step | Literal["janitor"] | None] = "catalog"
    step: Literal["catalog"] = Field("catalog", description=_GAVE_UP)


class ExportFailedAtAssemble(ExportFailed):
    """The export stopped for good: the assemble step gave up; ``reason`` is meant for a person."""

    of_step: ClassVar[Step | Literal["janitor"] | None] = "assemble"
    step: Literal["assemble"] = Field("assemble", description=_GAVE_UP)


class ExportFailedAtFinalize(ExportFailed):
    """The export stopped for good: the finalize step gave up; ``reason`` is meant for a person."""

    of_step: ClassVar[Step | Literal["janitor"] | None] = "finalize"
    step: Literal["finalize"] = Field("finalize", description=_GAVE_UP)


class ExportFailedByJanitor(ExportFailed):
    """The export stopped for good: the janitor found its worker dead; ``reason`` is meant for a person."""

    of_step: ClassVar[Step | Literal["janitor"] | None] = "janitor"
    step: Literal["janitor"] = Field("janitor", description=_GAVE_UP)


# An export's failure, by who gives up (a step, or the janitor): the type each appends (the step
# table lists it among that service's events, so the generated permissions let only that service's
# user publish it). A step that never fails the export (notify, cancel) has none.
EXPORT_FAILED: dict[str, type[ExportFailed]] = {
    cls.of_step: cls for cls in (ExportFailedAtCatalog, ExportFailedAtAssemble, ExportFailedAtFinalize,
                                 ExportFailedByJanitor) if cls.of_step is not None
}


def export_failed(step: str, **fields: Any) -> ExportFailed:
    """The event failing an export at ``step`` ("janitor": a dead export); KeyError for one that fails none."""
    return EXPORT_FAILED[step](step=step, **fields)


class CancelRequested(Event):
    """The owner (or an operator, with ``grove-export cancel``) asked to cancel."""

    requested_by: str = ""
    operator: str = Field("", description="The operator who cancelled it; empty when the owner did.")
    reason: str = Field("", description="Why the operator cancelled it.")


class ExportCancelled(Event):
    """Work stopped and the multipart upload (if any) was aborted."""

    aborted_upload: bool = False


class ExportExpired(Event):
    """The janitor deleted the archive after its retention period."""

    deleted_key: str | None = None

    def foreign_keys(self) -> list[str]:
        key = self.deleted_key
        return _not_own((key, key is None or keys.is_archive_key_of(self.tenant_id, self.export_id, key)))


class ExportRetried(Event):
    """An operator started a failed export again (``grove-export retry``): a new attempt that goes
    on from ``from_step``, the furthest point its log and the store still allow."""

    operator: str = Field("", description="Who retried it.")
    reason: str = Field("", description="Why.")
    from_step: Literal["catalog", "assemble", "finalize"] = Field(
        "catalog", description="'catalog' starts over; 'assemble' keeps the snapshot; 'finalize' keeps the parts.")
    upload_id: str | None = Field(
        None, description="Assemble: the open upload to resume into; None starts a new upload from part 1.")
    attempt: Count = Field(2, description="Which attempt of the whole export this starts (the first is 1).")
    error_count: Count = Field(0, description="Items already known to be missing at the point it restarts from.")


class ResendRequested(Event):
    """An operator asked for the export's email again (``grove-export resend``)."""

    operator: str = Field("", description="Who asked.")
    reason: str = Field("", description="Why.")


class AdmissionUnlocked(Event):
    """An operator freed the tenant's admission slot (``grove-export unlock``): the active export
    and the hourly limit no longer hold the tenant back. Recorded on the export the slot named."""

    operator: str = Field("", description="Who unlocked it.")
    reason: str = Field("", description="Why.")
    released_export_id: str | None = Field(None, description="The export the slot held, if any.")


_EVERY_TYPE: tuple[type[Event], ...] = (
    ExportRequested,
    CatalogStarted,
    ExportCataloged,
    UploadStarted,
    PartUploaded,
    ArchiveAssembled,
    FinalizeStarted,
    ExportCompleted,
    NotificationSent,
    NotificationFailed,
    StepFailed,
    *ATTEMPT_FAILED.values(),
    ExportFailed,
    *EXPORT_FAILED.values(),
    CancelRequested,
    ExportCancelled,
    ExportExpired,
    ExportRetried,
    ResendRequested,
    AdmissionUnlocked,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in _EVERY_TYPE}


class BadEvent(ValueError):
    """A message on the stream that is not a usable event: read it, drop it, count it (never retry).

    ``reason`` is the metric label: ``unknown`` (a type this version does not know), ``malformed``
    (not valid JSON of its type) or ``forged`` (its body disagrees with its subject).
    """

    reason = "malformed"


class UnknownEvent(BadEvent):
    """A message on the stream whose type this version does not know."""

    reason = "unknown"


class ForgedEvent(BadEvent):
    """An event whose body names another tenant, export or type than its subject."""

    reason = "forged"


Body = dict[str, Any]
UPCASTERS: dict[tuple[str, int], Callable[[Body], Body]] = {}


def upcaster(type_name: str, from_version: int) -> Callable[[Callable[[Body], Body]], Callable[[Body], Body]]:
    """Register the function that turns a ``type_name`` body of ``from_version`` into the next version."""

    def register(fn: Callable[[Body], Body]) -> Callable[[Body], Body]:
        UPCASTERS[(type_name, from_version)] = fn
        return fn

    return register


def parse_event(type_name: str, data: bytes | str | dict[str, Any]) -> Event:
    """Decode one event body by its type name (the last subject token), upcasting old versions."""
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEvent(type_name)
    if cls.schema_version == 1:  # nothing older to upcast from: the fast path
        return cls.model_validate(data) if isinstance(data, dict) else cls.model_validate_json(data)
    body: Body = dict(data) if isinstance(data, dict) else json.loads(data)
    version = body.get("version", 1)
    if type(version) is not int or version < 1:  # not int(): a list is a TypeError, 1.5 and true pass
        raise ValueError("version is not a whole number from 1")
    while version < cls.schema_version:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise ValueError(f"no upcaster for {type_name} version {version}")
        body = step(body)
        version += 1
        body["version"] = version
    return cls.model_validate(body)


def subject_tokens(prefix: str, subject: str) -> tuple[str, str, str]:
    """``<prefix>.<tenant>.<export>.<Event>`` → (tenant, export, event type); ForgedEvent otherwise."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != prefix or not is_valid_id(parts[1]) or not is_valid_id(parts[2]):
        raise ForgedEvent(f"not an export subject: {subject!r}")
    return parts[1], parts[2], parts[3]


def export_of_subject(prefix: str, subject: str) -> tuple[str, str] | None:
    """(tenant, export) of a subject some message was stored on, when both tokens are ids an export
    can have; else None. To nats-server a token is any bytes but a space or a dot — ``*`` and ``>`` too:
    the gateway may publish on ``<prefix>.*.*.ExportRequested`` and any user can aim a PubAck there.
    Taken as ids, (``*``, ``*``) read every export's events as one export's history (``export_filter``),
    whose ids are the oldest request's and whose status another export's end. Every listing of the
    log's exports (the janitor's, the operator's) asks this."""
    try:
        tenant_id, export_id, _ = subject_tokens(prefix, subject)
    except BadEvent:
        return None
    return tenant_id, export_id


def _what_is_wrong(error: ValidationError) -> str:
    """``username: Value error, holds a control or bidi character`` — the first wrong field and why
    (never its value: that is the publisher's text). pydantic's first line named only the model."""
    problems = error.errors(include_url=False, include_input=False, include_context=False)
    if not problems:
        return str(error).splitlines()[0]
    where = ".".join(str(part) for part in problems[0]["loc"]) or "body"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {problems[0]['msg']}{more}"


def decode(prefix: str, subject: str, data: bytes | str, *, answer: bool = False) -> Event:
    """The event stored on ``subject``, checked against it: the subject is what the server's
    permissions vouched for, so the body must name the same tenant, export and type (a step's
    failure, :data:`ATTEMPT_FAILED` and :data:`EXPORT_FAILED`, the step its type is for:
    :attr:`Event.of_step`), and every object key in it must be that export's own
    (:meth:`Event.foreign_keys`).

    ``answer``: the server stored it as its answer to someone's request (shared/bus/answers.py), so
    no publisher's permission vouched for its subject: forged, whatever its body says.

    Raises :class:`BadEvent` (unknown, malformed or forged); the caller drops and counts it.
    """
    if answer:
        raise ForgedEvent(f"{subject}: stored by the server as its answer to a request, not published")
    tenant_id, export_id, type_name = subject_tokens(prefix, subject)
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEvent(type_name)
    try:
        raw = from_json(data)  # pydantic-core's parser: half the time of json.loads on these bodies
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:  # not JSON, not an object
        raise BadEvent(f"{subject}: {str(e).splitlines()[0]}") from None
    own_step = cls.of_step
    if own_step is not None and raw.get("step", own_step) != own_step:
        # A step's failure types (a failed attempt, the export failed there) name their step, and only
        # the user of the service that runs it may publish them: a body naming another step is someone
        # else's password recording a failure that is not its own. Checked before the model's (which
        # would call it malformed): forged, as the subject check says.
        raise ForgedEvent(f"{subject}: body names another step than {own_step}")
    try:
        event = parse_event(type_name, raw)  # upcasts an older version
    except ValidationError as e:
        raise BadEvent(f"{subject}: {_what_is_wrong(e)}") from None
    except ValueError as e:  # no upcaster, a bad version
        raise BadEvent(f"{subject}: {str(e).splitlines()[0]}") from None
    claimed = raw.get("type", type_name)
    if event.tenant_id != tenant_id or event.export_id != export_id or claimed != type_name:
        raise ForgedEvent(f"{subject}: body says {event.tenant_id}/{event.export_id}/{claimed}")
    foreign = event.foreign_keys()
    if foreign:
        raise ForgedEvent(f"{subject}: names an object that is not this export's: {foreign[0]!r}")
    return event


def envelope_agrees(prefix: str, subject: str, data: bytes | str) -> bool:
    """Whether ``data`` reads as an event of the export and type ``subject`` names — a JSON object
    whose ``tenant_id`` and ``export_id`` (and ``type``, when given) are the subject's — whatever its
    type. For a type this version does not know (:class:`UnknownEvent`): a newer version's event
    agrees; a PubAck (``{"stream": …, "seq": …}``), which any user can have the server store on any
    export's subjects by naming one as its reply subject, or another export's event delivered there,
    does not."""
    try:
        tenant_id, export_id, type_name = subject_tokens(prefix, subject)
        raw = from_json(data)
    except ValueError:  # ForgedEvent is one too: not an export subject; or no JSON
        return False
    return (isinstance(raw, dict) and raw.get("tenant_id") == tenant_id and raw.get("export_id") == export_id
            and raw.get("type", type_name) == type_name)


def subject_for(prefix: str, event: Event) -> str:
    return f"{prefix}.{event.tenant_id}.{event.export_id}.{event.name()}"


def export_filter(prefix: str, tenant_id: str, export_id: str) -> str:
    """The wildcard subject of one export's whole history."""
    return f"{prefix}.{tenant_id}.{export_id}.>"
