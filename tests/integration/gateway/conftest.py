"""Gateway fixtures: a real nats-server (JetStream) per test on a free port, gateway replicas as real
aiohttp servers with their own SQLite read models, a filesystem store in a temp folder, and a
``pipeline`` that appends the events the other services would (to drive exports to any state)."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.devtools.stack.natsserver import NatsServer
from services.gateway import init_app, make_token
from services.gateway.keys import READ_MODEL
from shared.bus.connect import Bus, connect
from shared.core import events as ev
from shared.core import keys
from shared.runtime.settings import Settings
from tests.support.env import TEST_SECRETS

ARCHIVE = b"PK\x05\x06" + bytes(18) + b"grove test archive " * 4000  # an empty ZIP plus padding


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


@pytest.fixture
def settings_for(tmp_path: Path, nats_server: NatsServer) -> Callable[..., Settings]:
    """Settings of replica ``n`` (its own read model), sharing the bus and the store."""

    def make(n: int = 0, **overrides: Any) -> Settings:
        values: dict[str, Any] = dict(nats_url=nats_server.url, store_root=tmp_path / "store",
                                      read_model_db=tmp_path / f"read-model-{n}.db",
                                      public_url="http://gateway.test", log_json=False,
                                      jwt_secret=TEST_SECRETS["jwt"], link_secret=TEST_SECRETS["link"])
        return Settings(**(values | overrides))

    return make


@pytest.fixture
def settings(settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(0)


Start = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def start_gateway(settings_for: Callable[..., Settings]) -> AsyncIterator[Start]:
    """``await start_gateway(n, **settings)`` → a client of a running replica."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def start(n: int = 0, **overrides: Any) -> TestClient[web.Request, web.Application]:
        if not clients:  # the admin set-up (`grove-export setup`): the gateway only binds
            with contextlib.suppress(Exception):  # a test of an unreachable bus expects the gateway to cope
                await (await connect(settings_for(n, **overrides), "test-setup", ensure=True, persistent=False)).close()
        client = TestClient(TestServer(init_app(settings_for(n, **overrides))))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def gateway(start_gateway: Start) -> TestClient[web.Request, web.Application]:
    return await start_gateway(0)


def auth(settings: Settings, tenant: str = "tenant_a", user: str = "u1", ttl_s: float = 600) -> dict[str, str]:
    token = make_token(settings, tenant, user, f"{user}@example.org", f"{user}-name", ttl_s=ttl_s)
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Pipeline:
    """Appends what catalog, assembler, finalizer, notifier and canceller would append."""

    bus: Bus
    settings: Settings
    archive: bytes = ARCHIVE

    async def settle(self, *clients: TestClient[web.Request, web.Application]) -> None:
        """Wait until every gateway's read model has applied the whole stream."""
        last = int((await self.bus.js.stream_info(self.settings.stream_name)).state.last_seq)
        for client in clients:
            assert await client.app[READ_MODEL].wait_for(last, 5.0), "read model did not catch up"

    async def append(self, event: ev.Event) -> int:
        last = await self.bus.log.last_seq(event.tenant_id, event.export_id)
        return await self.bus.log.append(event, last)

    def archive_key(self, tenant: str, export_id: str) -> str:
        return f"exports/{tenant}/{export_id}/grove-export-u1-name-2026-02-22.zip"

    def archive_path(self, tenant: str, export_id: str) -> Path:
        return self.settings.store_root / self.settings.buckets.exports / self.archive_key(tenant, export_id)

    async def assemble(self, tenant: str, export_id: str, parts: int = 2) -> None:
        """From ExportRequested to ArchiveAssembled (status uploading)."""
        ids = dict(tenant_id=tenant, export_id=export_id)
        key = self.archive_key(tenant, export_id)
        await self.append(ev.CatalogStarted(**ids))
        await self.append(ev.ExportCataloged(
            **ids, snapshot_key=keys.snapshot_key(tenant, export_id), snapshot_sha256="0" * 64,
            archive_key=key, member_count=10, total_bytes=len(ARCHIVE),
            item_counts={"posts": 5, "pages": 2, "images": 3}))
        await self.append(ev.UploadStarted(**ids, upload_id="up1", archive_key=key, part_size=len(ARCHIVE),
                                           fingerprint="test"))
        for n in range(1, parts + 1):
            await self.append(ev.PartUploaded(
                **ids, part_number=n, etag=f"e{n}", md5=f"m{n}", byte_start=0, byte_end=n,
                records_key=keys.records_key(tenant, export_id, n), records_count=1, members_done=5 * n, source_bytes_done=len(ARCHIVE) * n // parts))
        await self.append(ev.ArchiveAssembled(**ids, archive_key=key, upload_id="up1", size_bytes=len(ARCHIVE),
                                              part_count=parts, member_count=10, error_count=1))

    async def complete(self, tenant: str, export_id: str, *, expires_in: timedelta = timedelta(days=7),
                       notification: str | None = "sent") -> None:
        """Drive the export to ExportCompleted and put a real archive at its key."""
        ids = dict(tenant_id=tenant, export_id=export_id)
        await self.assemble(tenant, export_id)
        await self.append(ev.FinalizeStarted(**ids))
        path = self.archive_path(tenant, export_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(ARCHIVE)
        await self.append(ev.ExportCompleted(
            **ids, archive_key=self.archive_key(tenant, export_id), size_bytes=len(ARCHIVE),
            sha256=hashlib.sha256(ARCHIVE).hexdigest(), item_counts={"posts": 5, "pages": 2, "images": 3},
            error_count=1, expires_at=datetime.now(UTC) + expires_in))
        if notification == "sent":
            await self.append(ev.NotificationSent(**ids, channel="outbox"))
        elif notification == "failed":
            await self.append(ev.NotificationFailed(**ids, channel="smtp", reason="connection refused"))

    async def fail(self, tenant: str, export_id: str, reason: str = "the catalog could not read posts") -> None:
        ids = dict(tenant_id=tenant, export_id=export_id)
        await self.append(ev.CatalogStarted(**ids))
        await self.append(ev.ExportFailedAtCatalog(**ids, reason=reason))


@pytest.fixture
async def pipeline(settings: Settings, gateway: TestClient[web.Request, web.Application]) -> AsyncIterator[Pipeline]:
    """Needs a started gateway first: the gateway's connect() creates the stream and buckets."""
    bus = await connect(settings, "test-pipeline", name=f"test-{uuid.uuid4().hex[:6]}")
    yield Pipeline(bus, settings)
    await bus.close()


Headers = Callable[..., dict[str, str]]


@pytest.fixture
def headers_for(settings: Settings) -> Headers:
    """``headers_for("tenant_a", user="u1")`` → an Authorization header with a fresh token."""
    return lambda tenant="tenant_a", user="u1", ttl_s=600: auth(settings, tenant, user, ttl_s)


async def _problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", resp.content_type
    body: dict[str, Any] = await resp.json(content_type=None)
    assert body["code"] == code and body["status"] == status, body
    assert {"type", "title", "detail"} <= body.keys()
    return body


@pytest.fixture
def problem() -> Callable[..., Awaitable[dict[str, Any]]]:
    """``await problem(resp, 409, "GROVE-EXPORT-002")`` asserts a problem+json answer and returns it."""
    return _problem


@pytest.fixture
def conforms() -> Callable[[str, Any], None]:
    """``conforms("ExportStatus", body)`` validates a body against the served OpenAPI component."""
    from jsonschema import Draft202012Validator

    from services.gateway.openapi import build_openapi

    document = build_openapi()

    def check(component: str, body: Any) -> None:
        schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)

    return check
