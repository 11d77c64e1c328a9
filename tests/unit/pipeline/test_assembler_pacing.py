"""Fairness inside one assembler replica: an export past ``pace_after_bytes`` gives way to the
others the replica is assembling. Export ids are unique per tenant only, so two tenants' exports
with the same id are two exports: each gives way to the other, and one finishing does not make the
replica forget the other."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from services.assembler import service
from services.assembler.service import Assembler
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    monkeypatch.setattr(service.time, "sleep", calls.append)
    return calls


def assembler(tmp_path: Path) -> Assembler:
    return Assembler(Settings(pace_after_bytes=10), FilesystemStore(tmp_path))


def test_alone_an_export_runs_at_full_speed(tmp_path: Path, slept: list[float]) -> None:
    a = assembler(tmp_path)
    a.active = {("tenant_a", "exp_1")}
    a.pace("tenant_a", "exp_1")(0.1, 100)
    assert slept == []


def test_two_tenants_exports_with_one_id_give_way_to_each_other(tmp_path: Path, slept: list[float]) -> None:
    a = assembler(tmp_path)
    a.active = {("tenant_a", "exp_1"), ("tenant_b", "exp_1")}
    a.pace("tenant_a", "exp_1")(0.1, 100)
    a.pace("tenant_b", "exp_1")(0.1, 5)  # not past pace_after_bytes yet: no pause
    assert slept == [0.1]


async def test_one_finishing_leaves_the_other_active(tmp_path: Path) -> None:
    a = assembler(tmp_path)

    async def assemble(ctx: object) -> None:
        if ctx.state.tenant_id == "tenant_a":  # type: ignore[attr-defined]
            assert a.active == {("tenant_a", "exp_1"), ("tenant_b", "exp_1")}

    a._assemble = assemble  # type: ignore[method-assign]
    a.active = {("tenant_b", "exp_1")}  # tenant B's export is running
    await a(SimpleNamespace(state=SimpleNamespace(tenant_id="tenant_a", export_id="exp_1")))  # type: ignore[arg-type]
    assert a.active == {("tenant_b", "exp_1")}
