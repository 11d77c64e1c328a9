"""A flood for one tenant does not hold back another tenant's export.

A publisher that bypasses admission puts more of one tenant's requests on the bus than a step's
durable hands out before their acks (``GROVE_MAX_ACK_PENDING``, made small here). The catalog runs
one of that tenant's exports at a time (``tenant_concurrency`` 1); every other request of it must
leave the durable's window, or the window fills with them and a second tenant's request, published
after the flood, is not even delivered until the flood has drained. Real nats-server, the real step
services as processes; each catalog run is held ``SLOW`` seconds (``catalog.read``) so the flood
takes far longer than the deadline the second tenant's export gets.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from shared.bus.connect import Bus
from shared.content.port import ContentSource
from shared.content.seed import seed_tenant
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.support.pipeline import request_export, wait_status
from tests.support.stack import logs_of, start_stack
from tests.support.wait import until

WINDOW = 6  # the durables' max_ack_pending
FLOOD = 30  # one tenant's requests: five times the window
SLOW = 0.5  # seconds each catalog run is held: the flood alone takes >= 15 s of catalog
DEADLINE = 8.0  # the other tenant's export, from its request to ExportCataloged


@pytest.mark.timeout(300)
async def test_a_flood_for_one_tenant_does_not_hold_back_another_tenants_export(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    assert settings.max_ack_pending == WINDOW  # the fixture's bus made the durables with it
    flooder, other = [(await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                         amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0,
                                         files=0)).tenant_id for _ in range(2)]
    stack = start_stack(tmp_path / "stack", values, extra_env={"GROVE_FAULTS_SLOW": f"catalog.read:{SLOW}"})
    try:
        flood = [await request_export(bus, flooder, include_images=False, delivery="download")
                 for _ in range(FLOOD)]
        await wait_status(bus, flooder, flood[0], {"cataloging", "assembling", "uploading", "complete"}, timeout=30)
        asked = time.monotonic()
        mine = await request_export(bus, other, include_images=False, delivery="download")
        try:
            await wait_status(bus, other, mine, {"assembling", "uploading", "complete"}, timeout=DEADLINE)
        except AssertionError:
            done = sum([(await bus.log.load(flooder, e)).state.cataloged is not None for e in flood])
            raise AssertionError(f"the other tenant's export was not cataloged within {DEADLINE:g} s of its "
                                 f"request; {done} of the flood's {FLOOD} were") from None
        took = time.monotonic() - asked
        state = await wait_status(bus, other, mine, timeout=60)
        assert state.status == "complete", (state.failure, logs_of(stack))
        # ...and every one of the flood's exports is still run: none was lost by leaving the window
        states = await asyncio.gather(*(wait_status(bus, flooder, e, timeout=FLOOD * SLOW * 4 + 60) for e in flood))
    finally:
        stack.stop()
    assert [s.status for s in states] == ["complete"] * FLOOD, [(s.status, s.failure) for s in states]
    print(f"\nflood: the other tenant's export was cataloged {took:.1f} s after its request, behind "
          f"{FLOOD} of one tenant's (window {WINDOW})")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("replicas", [1, 2])
async def test_a_tenants_waiting_exports_are_run_after_the_process_holding_them_is_killed(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path, replicas: int) -> None:
    """The waiting list is in a process's memory and the waiting exports' messages are acked: a
    catalog killed (SIGKILL, restarted by the supervisor) while it runs them loses the list, and
    the message its task held — redelivered after AckWait, to it or to the other replica — reads
    the tenant's requests from the log. Every one completes."""
    flooder = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                 amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0,
                                 files=0)).tenant_id
    faults = tmp_path / "faults"
    faults.mkdir()
    stack = start_stack(tmp_path / "stack", values, replicas={"catalog": replicas}, extra_env={
        "GROVE_FAULTS": "catalog.started@4", "GROVE_FAULTS_DIR": str(faults),
        "GROVE_FAULTS_SLOW": "catalog.read:0.2"})
    try:
        flood = [await request_export(bus, flooder, include_images=False, delivery="download")
                 for _ in range(2 * WINDOW)]
        states = await asyncio.gather(*(wait_status(bus, flooder, e, timeout=120) for e in flood))
        killed = [f.name for f in faults.glob("*.fired")]
    finally:
        stack.stop()
    assert killed == ["catalog.started.fired"], "the catalog was not killed while it ran the waiting exports"
    assert [s.status for s in states] == ["complete"] * len(flood), ([(s.status, s.failure) for s in states],
                                                                     logs_of(stack))


@pytest.mark.timeout(300)
async def test_a_tenants_waiting_exports_are_run_after_the_process_holding_them_shuts_down(
        values: dict[str, Any], bus: Bus, store: ObjectStore, content: ContentSource, settings: Settings,
        tmp_path: Path) -> None:
    """SIGTERM while the catalog runs a tenant's waiting list: its task naks the message it holds
    (not an attempt), and the restarted process, to which that message is redelivered, reads the
    tenant's requests from the log. Every one completes."""
    flooder = (await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                 amber_bucket=settings.buckets.amber, posts=1, pages=0, images=0,
                                 files=0)).tenant_id
    faults = tmp_path / "faults"
    faults.mkdir()
    stack = start_stack(tmp_path / "stack", values, extra_env={
        "GROVE_FAULTS_DIR": str(faults), "GROVE_FAULTS_SLOW": "catalog.read:0.3"})
    try:
        flood = [await request_export(bus, flooder, include_images=False, delivery="download")
                 for _ in range(2 * WINDOW)]
        reached = faults / "catalog.read.reached.count"

        async def third_run() -> bool | None:
            return (reached.exists() and len(reached.read_text().split()) >= 3) or None

        await until(third_run, 60, 0.02, "the catalog's third run")
        stack.kill("catalog", signal.SIGTERM)
        states = await asyncio.gather(*(wait_status(bus, flooder, e, timeout=120) for e in flood))
        restarts = stack.child("catalog").restarts
    finally:
        stack.stop()
    assert restarts >= 1
    assert [s.status for s in states] == ["complete"] * len(flood), ([(s.status, s.failure) for s in states],
                                                                     logs_of(stack))


@pytest.fixture
def values(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "max_ack_pending": WINDOW, "concurrency": 4, "tenant_concurrency": 1}
