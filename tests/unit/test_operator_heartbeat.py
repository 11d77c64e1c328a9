"""``show`` reads each step's heartbeat key of an export as the janitor and the workers do
(shared/bus/beats.py); what a key holds is not always a worker's beat (any user can have the server
store its answer there: shared/bus/answers.py). Such a value is no beat, never a traceback; a beat
carrying deaths says how many runs before it died."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from nats.js.errors import NotFoundError

from services.operator import inspect
from services.operator.cli import _print_show
from shared.runtime.settings import Settings

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
SETTINGS = Settings()


class Js:
    """A direct get of the bucket's last message under a key, as nats-py returns it."""

    def __init__(self, values: dict[str, bytes], headers: dict[str, dict[str, str]] | None = None) -> None:
        self.values, self.headers = values, headers or {}

    async def get_last_msg(self, stream: str, subject: str, direct: bool = False) -> object:
        key = subject.split(".", 2)[2]
        if key not in self.values:
            raise NotFoundError
        return SimpleNamespace(data=self.values[key], headers=self.headers.get(key, {}))


def _bus(values: dict[str, bytes], headers: dict[str, dict[str, str]] | None = None) -> Any:
    return SimpleNamespace(js=Js(values, headers))


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'"text"', b'{"at": "soon"}', b'{"at": [1]}',
                                   b'{"at": "nan"}', b'{"at": 1e999}',
                                   b'{"stream": "KV_grove_heartbeats", "seq": 5}',  # a PubAck the server stored
                                   b'{"step": "assemble", "at": 1}', b'{"step": 1, "worker": "w", "at": 1}'])
async def test_a_value_no_worker_wrote_is_no_beat(value: bytes) -> None:
    assert await inspect.heartbeat(_bus({"assemble.t1.exp_1": value}), SETTINGS, "t1", "exp_1", NOW) is None


async def test_a_workers_beat_is_shown_beside_one_that_is_not() -> None:
    beat = {"step": "assemble", "worker": "h-1", "at": NOW.timestamp() - 2}
    bus = _bus({"assemble.t1.exp_1": json.dumps(beat).encode(), "finalize.t1.exp_1": b"garbage"})
    shown = await inspect.heartbeat(bus, SETTINGS, "t1", "exp_1", NOW)
    assert shown == {**beat, "ageSeconds": 2.0}


async def test_a_beat_the_server_stored_as_an_answer_is_not_shown() -> None:
    beat = {"step": "assemble", "worker": "h-1", "at": NOW.timestamp() - 2}
    answer = {"Nats-Stream": "x", "Nats-Subject": "y", "Nats-Sequence": "1", "Nats-Time-Stamp": "t",
              "Grove-Stored-Answer": "1"}
    bus = _bus({"assemble.t1.exp_1": json.dumps(beat).encode()}, {"assemble.t1.exp_1": answer})
    assert await inspect.heartbeat(bus, SETTINGS, "t1", "exp_1", NOW) is None


def test_show_says_how_many_runs_before_the_beat_died(capsys: pytest.CaptureFixture[str]) -> None:
    hb = {"step": "catalog", "worker": "h-2", "at": 1.0, "ageSeconds": 0.4, "deaths": 3}
    view = {"exportId": "exp_1", "tenantId": "t1", "status": "cataloging", "progress": 0, "step": "catalog",
            "attempt": 1, "cancelRequested": False, "createdAt": "-", "request": {}, "stepAttempts": {},
            "failure": None, "snapshot": None, "archive": None, "upload": None, "heartbeat": hb,
                "notification": None}
    _print_show(view, SimpleNamespace(events=[]))  # type: ignore[arg-type]
    assert "heartbeat  catalog on h-2, 0.4s ago; 3 earlier runs died in a row" in capsys.readouterr().out


async def test_a_beats_fields_that_json_cannot_hold_are_left_out_of_show_json() -> None:
    """A beat is a worker's JSON, but any user can put one: ``NaN`` or ``Infinity`` in a field beside
    the worker's own (json.loads takes them) made ``show --json`` print ``NaN``, which no JSON reader
    (jq, JSON.parse) accepts."""
    value = b'{"step": "assemble", "worker": "h-1", "at": %f, "since": NaN, "deaths": Infinity, "x": [NaN]}' % (
        NOW.timestamp() - 2)
    shown = await inspect.heartbeat(_bus({"assemble.t1.exp_1": value}), SETTINGS, "t1", "exp_1", NOW)
    assert shown is not None and (shown["step"], shown["worker"], shown["ageSeconds"]) == ("assemble", "h-1", 2.0)
    json.dumps(shown, allow_nan=False)  # raised ValueError: the document held NaN
    deep = b'{"step": "assemble", "worker": "h-1", "at": 1.0, "x": %s}' % (b"[" * 900 + b"]" * 900)
    shown = await inspect.heartbeat(_bus({"assemble.t1.exp_1": deep}), SETTINGS, "t1", "exp_1", NOW)
    assert shown is not None and "x" not in shown


async def test_a_value_nested_too_deep_to_read_is_no_beat() -> None:
    """json.loads raises RecursionError (not ValueError) on arrays nested a thousand deep; a key
    holding one made ``show`` end in a traceback (and every reader of heartbeats with it)."""
    value = b'{"step": "assemble", "worker": "h-1", "at": 1.0, "x": %s}' % (b"[" * 5000 + b"]" * 5000)
    assert await inspect.heartbeat(_bus({"assemble.t1.exp_1": value}), SETTINGS, "t1", "exp_1", NOW) is None
