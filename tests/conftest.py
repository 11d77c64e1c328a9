"""Fixtures on real infrastructure: a nats-server from the wheel, the filesystem store, SQLite or
PostgreSQL (a test asks for PostgreSQL with ``@pytest.mark.parametrize("content_backend",
["sqlite", "postgresql"], indirect=True)``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import Bus, connect
from shared.content.factory import content_source, sqlite_dsn
from shared.content.port import ContentSource
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.chaos.tally import TALLY
from tests.support.env import build, settings_for

pytest_plugins = ["tests.fixtures.moto", "tests.support.postgres"]


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Every test leaves os.environ as it found it. A test that runs the CLI in-process (``cli.main``)
    gets the stack's folder settings added to os.environ, as a shell's command would, and they leaked
    into every later test: a local stack started later inherited ``GROVE_STORE_ROOT=var/store``
    (relative) and its export never completed — only when the unit tests ran first."""
    saved = dict(os.environ)
    yield
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    d = tmp_path_factory.mktemp("nats")
    server = NatsServer(d / "store", log_file=d / "nats.log").start()
    yield server
    server.stop()


@pytest.fixture
def content_backend(request: pytest.FixtureRequest) -> str:
    """Which content source the test's settings name: ``sqlite`` unless parametrized."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def content_dsn(content_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if content_backend == "postgresql":
        return str(request.getfixturevalue("postgres_dsn"))
    return sqlite_dsn(tmp_path / "content.db")


@pytest.fixture
def values(tmp_path: Path, nats_server: NatsServer, content_dsn: str) -> dict[str, Any]:
    return settings_for(tmp_path, nats_server.url, content_dsn=content_dsn)


@pytest.fixture
def settings(values: dict[str, Any]) -> Settings:
    return build(values)


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    b = await connect(settings, "test", ensure=True)
    yield b
    await b.close()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    """The store the test's settings name: the filesystem, or S3 on moto (buckets created)."""
    s = await open_store(settings, create_buckets=True)
    yield s
    await s.close()


@pytest.fixture
async def content(settings: Settings) -> AsyncIterator[ContentSource]:
    db = content_source(settings)
    await db.init()
    yield db
    await db.close()


# -- CI budget: the whole run must stay well under 45 minutes on CI's 2 cores (issue 20) ----------
CI_BUDGET_MIN = 45.0
_session_started: list[float] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    import time

    _session_started.append(time.monotonic())


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand the chaos tally to the controller, which prints the sum."""
    sent = getattr(session.config, "workeroutput", None)
    if sent is not None:
        sent["chaos_tally"] = TALLY.counts()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: a worker's chaos tally added to the run's."""
    TALLY.add(getattr(node, "workeroutput", {}).get("chaos_tally", {}))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After ``--durations``: the chaos tally (when chaos scenarios ran) and how much of CI's budget
    this run used."""
    import time

    if TALLY.exports:
        terminalreporter.write_line(TALLY.line())
    if not _session_started:
        return
    minutes = (time.monotonic() - _session_started[0]) / 60
    terminalreporter.write_line(f"CI budget: this run took {minutes:.1f} min of {CI_BUDGET_MIN:.0f}")
