"""An operator's retry holds the tenant's admission slot and then appends ExportRetried. Another
operator's unlock landing between the two frees the slot and records AdmissionUnlocked, which moves no
fold: the retry must still see its append refused, hold the slot again and re-decide — not append past
it (as a fold-only writer may, shared/eventlog/fence.py) and leave the retried export running with an
empty slot, beside which the gateway then admitted a second export."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from services.operator import actions
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.objectstore import ObjectStore
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_hostile_fix import _failed


async def _failed_and_rate_limited(bus: Bus, settings: Settings, tenant: str) -> tuple[AdmissionStore, str]:
    """A failed export whose tenant's slot names it, a complete export counted a moment ago: rate-limited,
    so an unlock may run."""
    admission = AdmissionStore(bus, settings, "test")
    export_id = await _failed(bus, tenant)
    now = await admission.server_now()
    _, revision, _ = await admission.read(f"tenant.{tenant}")
    assert await admission.write(f"tenant.{tenant}", adm.Slot(export_id, now, now, "exp_counted").to_json(), revision)
    return admission, export_id


async def _the_retried_export_holds_the_slot(admission: AdmissionStore, tenant: str, export_id: str) -> None:
    """The slot names the retried export, so a new request is a Conflict (before: Admit, a second
    export beside the retried one)."""
    data, _, _ = await admission.read(f"tenant.{tenant}")
    assert data and adm.Slot.from_json(data).active_export_id == export_id
    second = await admission.admit(tenant, ev.new_export_id(), None)
    assert isinstance(second, adm.Conflict), second


async def test_an_unlock_between_a_retrys_hold_and_its_append_does_not_leave_the_slot_empty(
        bus: Bus, store: ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = "tenant_retry_race"
    admission, export_id = await _failed_and_rate_limited(bus, settings, tenant)
    hold = actions._hold_slot
    holds: list[str] = []

    async def hold_then_unlock(*args: Any, **kwargs: Any) -> None:
        await hold(*args, **kwargs)
        holds.append("held")
        if len(holds) == 1:  # another operator's unlock lands after the retry held the slot
            said = await actions.unlock(bus, settings, tenant, actions.Who("bob", "rate limited"))
            assert "admission slot freed" in said

    monkeypatch.setattr(actions, "_hold_slot", hold_then_unlock)
    await actions.retry(bus, store, settings, tenant, export_id, actions.Who("ada", "try again"))

    # the unlock did land between the first hold and the append: the retry held the slot again, and once
    # more after its append
    assert holds == ["held", "held", "held"]
    names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
    assert names == ["ExportRequested", "ExportFailed", "AdmissionUnlocked", "ExportRetried"]
    await _the_retried_export_holds_the_slot(admission, tenant, export_id)


async def test_an_unlock_whose_record_lands_after_the_retrys_append_does_not_leave_the_slot_empty(
        bus: Bus, store: ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unlock frees the slot first and records AdmissionUnlocked after: the retry's append between
    the two meets no conflict. The retry holds the slot again once its append is in (the review
    helper's race: before, the slot stayed empty and a second export was admitted)."""
    tenant = "tenant_retry_race2"
    admission, export_id = await _failed_and_rate_limited(bus, settings, tenant)
    hold, record = actions._hold_slot, actions._record
    at_record, go_on = asyncio.Event(), asyncio.Event()

    async def slow_record(*args: Any, **kwargs: Any) -> int:  # the unlock freed the slot; its record waits
        at_record.set()
        await go_on.wait()
        return await record(*args, **kwargs)

    monkeypatch.setattr(actions, "_record", slow_record)
    unlocking: list[asyncio.Task[str]] = []

    async def hold_then_unlock(*args: Any, **kwargs: Any) -> None:
        await hold(*args, **kwargs)
        if not unlocking:
            unlocking.append(asyncio.create_task(actions.unlock(bus, settings, tenant, actions.Who("bob", "x"))))
            await asyncio.wait_for(at_record.wait(), 10)

    monkeypatch.setattr(actions, "_hold_slot", hold_then_unlock)
    said = await actions.retry(bus, store, settings, tenant, export_id, actions.Who("ada", "try again"))
    go_on.set()
    assert "admission slot freed" in await asyncio.wait_for(unlocking[0], 10)
    assert "attempt 2 started" in said and "could not be held" not in said
    names = [e.name() async for _, e in bus.log.history(tenant, export_id)]
    assert names == ["ExportRequested", "ExportFailed", "ExportRetried", "AdmissionUnlocked"]  # the race happened
    await _the_retried_export_holds_the_slot(admission, tenant, export_id)
