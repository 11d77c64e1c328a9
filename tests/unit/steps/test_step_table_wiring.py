"""Every step service's subscriptions, and every list of services, are read from the step table."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from services import cli
from services.devtools.stack import supervisor
from shared.bus import permissions as auth
from shared.core import steps
from shared.runtime import cpus
from shared.runtime.settings import Settings
from tests.support import stack


@pytest.mark.parametrize("name", steps.step_services())
def test_a_step_service_subscribes_to_exactly_the_durables_of_the_table(name: str) -> None:
    app = importlib.import_module(f"services.{name}.main").create_app(Settings())
    durables = sorted(s.config.durable_name for s in app.broker.subscribers)
    assert durables == sorted(c.durable for c in steps.consumers_of(name))


def test_every_list_of_services_is_the_tables() -> None:
    names = {s.name for s in steps.SERVICES}
    assert set(cli.SERVICES) == set(supervisor.SERVICES) == {u.name for u in auth.USERS} == names
    assert set(cli.STEP_SERVICES) == set(stack.STEP_SERVICES) == {s.service for s in steps.STEPS}


def test_the_local_stack_runs_two_assemblers_on_two_cores_and_one_on_one() -> None:
    assert supervisor.default_replicas(1) == {}
    assert supervisor.default_replicas(2) == supervisor.default_replicas(16) == {"assembler": 2}
    assert set(supervisor.default_replicas(2)) <= set(steps.step_services())  # a service of the table
    assert supervisor.Stack(Path("unused")).replicas == supervisor.default_replicas()


def test_usable_cores_are_capped_by_the_cgroup_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(8)))  # an 8-core host
    cpu_max = tmp_path / "cpu.max"
    assert cpus.usable_cpus(tmp_path / "absent") == 8  # no cgroup v2 file: the affinity alone
    for line, expected in (("max 100000\n", 8), ("100000 100000\n", 1), ("150000 100000\n", 2),
                           ("50000 100000\n", 1), ("1600000 100000\n", 8), ("garbage\n", 8), ("", 8)):
        cpu_max.write_text(line)
        assert cpus.usable_cpus(cpu_max) == expected, line
    cpu_max.write_text("100000 100000\n")
    monkeypatch.setattr(cpus, "CPU_MAX", cpu_max)
    assert supervisor.default_replicas() == {}  # one core's quota: one assembler
