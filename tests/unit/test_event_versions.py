"""Events that can evolve: parse reads the body's version and upcasts old bodies, one version at a
time, into today's model; bodies from a newer producer and unknown types never crash a reader."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
from pydantic import Field

from shared.core import events as ev


class Renamed(ev.Event):
    """A test type at version 3: v1 had ``mail``, v2 renamed it ``email``, v3 added ``verified``."""

    schema_version: ClassVar[int] = 3
    email: str
    verified: bool = Field(description="v3: whether the address was checked")


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ev.EVENT_TYPES, "Renamed", Renamed)

    def v1_v2(body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        body["email"] = body.pop("mail")
        return body

    def v2_v3(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "verified": False}  # v2 writers never checked

    monkeypatch.setitem(ev.UPCASTERS, ("Renamed", 1), v1_v2)
    monkeypatch.setitem(ev.UPCASTERS, ("Renamed", 2), v2_v3)


BASE = {"export_id": "exp_1", "tenant_id": "t1"}


def test_a_version_1_body_is_upcast_into_todays_model(registered: None) -> None:
    old = json.dumps({**BASE, "version": 1, "mail": "a@b.c"}).encode()
    event = ev.parse_event("Renamed", old)
    assert isinstance(event, Renamed)
    assert (event.email, event.verified, event.version) == ("a@b.c", False, 3)


def test_each_version_runs_only_the_upcasters_after_it(registered: None) -> None:
    v2 = ev.parse_event("Renamed", {**BASE, "version": 2, "email": "x@y.z"})
    assert (v2.email, v2.verified) == ("x@y.z", False)  # type: ignore[attr-defined]
    v3 = ev.parse_event("Renamed", {**BASE, "version": 3, "email": "x@y.z", "verified": True})
    assert v3.verified  # type: ignore[attr-defined]


def test_a_body_without_a_version_is_version_1(registered: None) -> None:
    assert ev.parse_event("Renamed", {**BASE, "mail": "a@b.c"}).email == "a@b.c"  # type: ignore[attr-defined]


def test_new_events_are_written_at_their_types_version(registered: None) -> None:
    assert Renamed(**BASE, email="a@b.c", verified=True).version == 3
    assert json.loads(ev.CatalogStarted(**BASE).to_json())["version"] == 1


def test_a_missing_upcaster_is_a_clear_error(registered: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(ev.UPCASTERS, ("Renamed", 2))
    with pytest.raises(ValueError, match="no upcaster for Renamed version 2"):
        ev.parse_event("Renamed", {**BASE, "version": 1, "mail": "a@b.c"})


def test_a_body_from_a_newer_producer_parses_with_the_fields_we_know() -> None:
    newer = {**BASE, "version": 7, "requested_by": "u1", "reason_code": "gdpr"}
    event = ev.parse_event("CancelRequested", newer)
    assert isinstance(event, ev.CancelRequested) and event.requested_by == "u1"


def test_an_unknown_type_is_its_own_error_that_readers_skip() -> None:
    with pytest.raises(ev.UnknownEvent):
        ev.parse_event("SomethingFromTheFuture", b"{}")


@pytest.mark.parametrize("name", sorted(ev.EVENT_TYPES))
def test_every_type_has_an_upcaster_for_each_older_version(name: str) -> None:
    cls = ev.EVENT_TYPES[name]
    assert all((name, v) in ev.UPCASTERS for v in range(1, cls.schema_version))


@pytest.mark.parametrize("version", [None, [], {}, "two", "1e9", True, 1.5])
def test_a_version_that_is_no_whole_number_is_a_bad_event(registered: None, version: object) -> None:
    # What every reader calls: a bad event is dropped and counted, never a TypeError out of the fold.
    body = json.dumps({**BASE, "type": "Renamed", "version": version, "mail": "a@b.c"}).encode()
    with pytest.raises(ev.BadEvent):
        ev.decode("exports", "exports.t1.exp_1.Renamed", body)
