"""An event is what its subject says: the body must name the same tenant, export and type."""

from __future__ import annotations

import json

import pytest

from shared.core import events as ev


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
