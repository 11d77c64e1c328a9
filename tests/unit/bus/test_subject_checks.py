"""An event is what its subject says: the body must name the same tenant, export and type."""

from __future__ import annotations

import json

import pytest

from shared.core import events as ev
from shared.core import keys


def _body(event: ev.Event, **changes: object) -> bytes:
    raw = json.loads(event.to_json())
    raw.update(changes)
    return json.dumps(raw).encode()


REQ = ev.ExportRequested(export_id="exp_a", tenant_id="tenant_a", user_id="u", user_email="a@example.org",
                         username="a")


def test_an_event_on_its_own_subject_decodes() -> None:
    event = ev.decode("exports", "exports.tenant_a.exp_a.ExportRequested", REQ.to_json())
    assert event == REQ


def test_the_body_carries_its_type() -> None:
    assert json.loads(REQ.to_json())["type"] == "ExportRequested"


@pytest.mark.parametrize("subject", [
    "exports.tenant_b.exp_a.ExportRequested",   # another tenant's subject, body says tenant_a
    "exports.tenant_a.exp_b.ExportRequested",   # another export
])
def test_a_body_that_names_another_tenant_or_export_is_forged(subject: str) -> None:
    with pytest.raises(ev.ForgedEvent):
        ev.decode("exports", subject, REQ.to_json())


def test_a_body_that_claims_another_type_is_forged() -> None:
    started = ev.CatalogStarted(export_id="exp_a", tenant_id="tenant_a")
    with pytest.raises(ev.ForgedEvent):
        ev.decode("exports", "exports.tenant_a.exp_a.FinalizeStarted", started.to_json())


def test_a_body_without_a_type_is_taken_as_its_subject_type() -> None:
    raw = json.loads(REQ.to_json())
    del raw["type"]
    assert ev.decode("exports", "exports.tenant_a.exp_a.ExportRequested", json.dumps(raw)) == REQ


@pytest.mark.parametrize("subject", ["exports.a.b", "exports.a.b.c.ExportRequested", "other.tenant_a.exp_a.X",
                                     "exports.ten ant.exp_a.ExportRequested"])
def test_a_subject_that_is_not_an_export_subject_is_forged(subject: str) -> None:
    with pytest.raises(ev.ForgedEvent):
        ev.decode("exports", subject, REQ.to_json())


def test_an_unknown_type_is_unknown_not_a_crash() -> None:
    with pytest.raises(ev.UnknownEvent) as info:
        ev.decode("exports", "exports.tenant_a.exp_a.SomethingNew", b"{}")
    assert info.value.reason == "unknown"


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'{"export_id": "exp_a"}', _body(REQ, mode="tape")])
def test_a_body_that_does_not_parse_is_malformed(data: bytes) -> None:
    with pytest.raises(ev.BadEvent) as info:
        ev.decode("exports", "exports.tenant_a.exp_a.ExportRequested", data)
    assert info.value.reason == "malformed"


# Every object key an event names must be its own export's: with a service user's password alone,
# an ExportCataloged naming tenant B's snapshot made the assembler build B's data into tenant A's
# archive, and an archive key of B's made the finalizer write over B's finished archive.
OWN = {"export_id": "exp_a", "tenant_id": "tenant_a"}
ZIP = keys.archive_key("tenant_a", "exp_a", "a", "2026-12-01")
OTHER_ZIP = keys.archive_key("tenant_b", "exp_b", "b", "2026-12-01")
CATALOGED = ev.ExportCataloged(**OWN, snapshot_key=keys.snapshot_key("tenant_a", "exp_a"), snapshot_sha256="0" * 64,
                               archive_key=ZIP, member_count=1, total_bytes=1, item_counts={})
UPLOAD = ev.UploadStarted(**OWN, upload_id="u", archive_key=ZIP, part_size=8, fingerprint="f")
PART = ev.PartUploaded(**OWN, part_number=2, etag="e", byte_start=0, byte_end=8,
                       records_key=keys.records_key("tenant_a", "exp_a", 2), records_count=1, members_done=1,
                       source_bytes_done=8)
ASSEMBLED = ev.ArchiveAssembled(**OWN, archive_key=ZIP, upload_id="u", size_bytes=8, part_count=1, member_count=1,
                                error_count=0)
COMPLETED = ev.ExportCompleted(**OWN, archive_key=ZIP, size_bytes=8, sha256="0" * 64, item_counts={}, error_count=0,
                               expires_at="2026-12-31T00:00:00Z")
EXPIRED = ev.ExportExpired(**OWN, deleted_key=ZIP)
KEYED = [CATALOGED, CATALOGED.model_copy(update={"snapshot_key": keys.snapshot_key("tenant_a", "exp_a", "0123456789abcdef")}),
         UPLOAD, PART, PART.model_copy(update={"records_key": keys.records_key("tenant_a", "exp_a", 2, "u")}),
         ASSEMBLED, COMPLETED, EXPIRED, ev.ExportExpired(**OWN)]


@pytest.mark.parametrize("event", KEYED, ids=lambda e: e.name())
def test_an_event_naming_its_own_exports_objects_decodes(event: ev.Event) -> None:
    assert ev.decode("exports", f"exports.tenant_a.exp_a.{event.name()}", event.to_json()) == event


@pytest.mark.parametrize(("event", "field", "value"), [
    (CATALOGED, "snapshot_key", keys.snapshot_key("tenant_b", "exp_b")),   # another tenant's snapshot
    (CATALOGED, "snapshot_key", keys.snapshot_key("tenant_a", "exp_other")),  # the same tenant's other export
    (CATALOGED, "snapshot_key", keys.texts_key("tenant_a", "exp_a")),      # its own, but not its snapshot
    (CATALOGED, "snapshot_key", keys.snapshot_key("tenant_b", "exp_b", "0123456789abcdef")),  # a run's, elsewhere
    (CATALOGED, "snapshot_key", "exports/tenant_a/exp_a/work/snapshot-../../exp_b/work/snapshot.jsonl"),
    (CATALOGED, "archive_key", OTHER_ZIP),
    (CATALOGED, "archive_key", keys.snapshot_key("tenant_a", "exp_a")),   # into its own work/ folder
    (CATALOGED, "archive_key", "exports/tenant_a/exp_a/../exp_b/x.zip"),
    (UPLOAD, "archive_key", OTHER_ZIP),
    (PART, "records_key", keys.records_key("tenant_b", "exp_b", 2)),
    (PART, "records_key", keys.records_key("tenant_a", "exp_a", 1)),      # another part's records
    (PART, "records_key", keys.records_key("tenant_b", "exp_b", 2, "u")),  # an upload's, elsewhere
    (PART, "records_key", keys.records_key("tenant_a", "exp_a", 1, "u")),  # an upload's, another part's
    (PART, "records_key", "exports/tenant_a/exp_a/work/parts-../../exp_b/work/parts/00002.json"),
    (ASSEMBLED, "archive_key", OTHER_ZIP),
    (COMPLETED, "archive_key", OTHER_ZIP),
    (COMPLETED, "archive_key", "elsewhere.zip"),
    (EXPIRED, "deleted_key", OTHER_ZIP),
], ids=lambda x: x if isinstance(x, str) else None)
def test_an_event_naming_another_exports_object_is_forged(event: ev.Event, field: str, value: str) -> None:
    with pytest.raises(ev.ForgedEvent) as info:
        ev.decode("exports", f"exports.tenant_a.exp_a.{event.name()}", _body(event, **{field: value}))
    assert info.value.reason == "forged" and value in str(info.value)
