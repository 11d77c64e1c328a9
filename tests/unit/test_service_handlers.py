"""The subscription handlers every step service shares take no dependency-injected fields: fast_depends
resolves a ``Context`` field (``msg: NatsMessage``) with a sync function, so each message made a hop
through anyio's thread pool, in every service."""

from __future__ import annotations

import inspect

import pytest

from shared.core import steps
from shared.runtime.service import build_app
from shared.runtime.settings import Settings


async def _bootstrap(runtime: object) -> None:
    return None


@pytest.mark.parametrize("name", steps.step_services())
def test_subscription_handlers_take_only_the_body(name: str) -> None:
    app, _ = build_app(name, Settings(), _bootstrap)
    handlers = [item.handler._original_call for sub in app.broker.subscribers for item in sub.calls]
    assert handlers
    for handler in handlers:
        assert list(inspect.signature(handler).parameters) == ["body"]
