"""Crash points for the crash-injection suite: inert unless ``GROVE_FAULTS`` is set.

``GROVE_FAULTS=assemble.part_logged@3`` SIGKILLs the process the 3rd time it passes that point.
Each fault fires once per ``GROVE_FAULTS_DIR`` (a marker file), so the restarted process runs on —
a real crash, then a real restart. ``name@always`` fires every time (a crash loop: each kill adds
a line to ``name.kills.count`` in ``GROVE_FAULTS_DIR``). ``GROVE_FAULTS_DIR`` also collects counters (bytes uploaded).
This reads the environment directly on purpose: it is test machinery, not configuration.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

_SPEC = os.environ.get("GROVE_FAULTS", "")
_DIR = os.environ.get("GROVE_FAULTS_DIR", "")
_WANT: dict[str, int] = {}
ALWAYS = 0
for item in filter(None, _SPEC.split(",")):
    name, _, nth = item.partition("@")
    _WANT[name] = ALWAYS if nth == "always" else int(nth or 1)
_SEEN: dict[str, int] = {}


def _seconds(variable: str, default: float) -> dict[str, float]:
    """``name:seconds,…`` from ``variable`` (``name`` alone: ``default``)."""
    return {name: float(seconds or default) for name, _, seconds in
            (item.partition(":") for item in filter(None, os.environ.get(variable, "").split(",")))}


_SLOW = _seconds("GROVE_FAULTS_SLOW", 0.1)
_HOLD = _seconds("GROVE_FAULTS_HOLD", 60)


async def slow(name: str) -> None:
    """Wait here when ``GROVE_FAULTS_SLOW=name:seconds`` asks for it (a slow store, for timing); each
    wait adds a line to ``name.reached.count`` in ``GROVE_FAULTS_DIR`` (a test freezes the process there).
    ``GROVE_FAULTS_HOLD=name:seconds`` holds it here until the test creates ``name.release`` in
    ``GROVE_FAULTS_DIR`` (at most that long): the process runs on meanwhile (it beats), its step waits."""
    if name in _SLOW:
        count(f"{name}.reached", 1)
        await asyncio.sleep(_SLOW[name])
    if name in _HOLD and _DIR:
        count(f"{name}.reached", 1)
        release, until = Path(_DIR) / f"{name}.release", time.monotonic() + _HOLD[name]
        for _ in iter(lambda: release.exists() or time.monotonic() >= until, True):  # polled: a file, no event
            await asyncio.sleep(0.02)


def point(name: str) -> None:
    """Die here (SIGKILL, no clean-up) if this crash point is armed and due."""
    if name not in _WANT:
        return
    if _WANT[name] == ALWAYS and _DIR:
        count(f"{name}.kills", 1)
        os.kill(os.getpid(), signal.SIGKILL)
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] < _WANT[name] or not _DIR:
        return
    marker = Path(_DIR) / f"{name}.fired"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def count(name: str, amount: int) -> None:
    """Add to a counter file (one line per call) when the suite is watching."""
    if _DIR:
        with open(Path(_DIR) / f"{name}.count", "a") as f:
            f.write(f"{amount}\n")


def enabled() -> bool:
    return bool(_DIR)
