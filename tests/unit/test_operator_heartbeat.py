"""``show`` reads each step's heartbeat key of an export; what a key holds is not always a worker's beat
(any user can have the server store its answer there: shared/bus/answers.py). Such a value is no beat,
never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from nats.js.errors import KeyNotFoundError

from services.operator import inspect

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


class Beats:
    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values

    async def get(self, key: str) -> object:
        if key not in self.values:
            raise KeyNotFoundError
        return SimpleNamespace(value=self.values[key])


@pytest.mark.parametrize("value", [b"not json", b"[1, 2]", b'"text"', b'{"at": "soon"}', b'{"at": [1]}',
                                   b'{"at": "nan"}', b'{"at": 1e999}'])
async def test_a_value_no_worker_wrote_is_no_beat(value: bytes) -> None:
    bus = SimpleNamespace(heartbeats=Beats({"assemble.t1.exp_1": value}))
    assert await inspect.heartbeat(bus, "t1", "exp_1", NOW) is None  # type: ignore[arg-type]


async def test_a_workers_beat_is_shown_beside_one_that_is_not() -> None:
    beat = {"step": "assemble", "worker": "h-1", "at": NOW.timestamp() - 2}
    bus = SimpleNamespace(heartbeats=Beats({"assemble.t1.exp_1": json.dumps(beat).encode(),
                                            "finalize.t1.exp_1": b"garbage"}))
    shown = await inspect.heartbeat(bus, "t1", "exp_1", NOW)  # type: ignore[arg-type]
    assert shown == {**beat, "ageSeconds": 2.0}
