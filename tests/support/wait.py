"""Wait for outcomes by polling with a deadline, never bare sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 60.0, interval: float = 0.1,
                what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def awaiting(task: asyncio.Task[object]) -> str:
    """Where ``task`` waits: its coroutines' frames, outermost first (what py-spy would not show)."""
    frames = []
    coro: object = task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(frames) or repr(task)


async def cancelled(task: asyncio.Task[object], within: float = 10.0, what: str = "the task") -> None:
    """Cancel ``task`` and wait ``within`` seconds at most for it to end: else AssertionError saying
    where it waits. A task that outlives its cancel would otherwise hang the event loop's teardown
    after the test (``asyncio.wait(..., timeout=)`` alone gives up without a word)."""
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=within)
    if not done:
        raise AssertionError(f"{what} did not end within {within} s of its cancel; it waits in {awaiting(task)}")
