"""A traced export through the running services (each its own process), its spans received by an
OTLP/HTTP endpoint of the test's own, all found by the export id, in the documented shape — with
the assembler SIGKILLed after two parts and its resumed attempt traced too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from services.devtools.stack.natsserver import NatsServer
from services.gateway.auth import make_token
from shared.bus.connect import connect
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.fixtures.moto import free_port
from tests.support.env import build, settings_for
from tests.support.pipeline import wait_status
from tests.support.stack import STEP_SERVICES, logs_of, start_stack
from tests.support.wait import until

CONSUMER, PRODUCER, SERVER = 5, 4, 2  # OTLP span kinds


@dataclass
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    attrs: dict[str, object]
    links: list[tuple[str, str]]


@pytest.fixture
async def collector() -> AsyncIterator[tuple[str, list[Span]]]:
    """An OTLP/HTTP traces endpoint (protobuf), keeping every span it is sent."""
    spans: list[Span] = []

    async def receive(request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest.FromString(await request.read())
        for rs in body.resource_spans:
            service = next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")
            for ss in rs.scope_spans:
                for s in ss.spans:
                    attrs = {a.key: (a.value.string_value or a.value.int_value) for a in s.attributes}
                    spans.append(Span(service, s.name, s.kind, s.trace_id.hex(), s.span_id.hex(),
                                      s.parent_span_id.hex(), attrs,
                                      [(lk.trace_id.hex(), lk.span_id.hex()) for lk in s.links]))
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1/traces", spans
    await runner.cleanup()


async def test_every_span_of_a_resumed_export_is_found_by_its_id_in_the_expected_shape(
        tmp_path: Path, nats_server: NatsServer, collector: tuple[str, list[Span]]) -> None:
    endpoint, spans = collector
    port = free_port()
    values = settings_for(tmp_path, nats_server.url, public_url=f"http://127.0.0.1:{port}", otel_endpoint=endpoint)
    settings = build(values)
    faults = tmp_path / "faults"
    faults.mkdir()
    stack = start_stack(tmp_path / "stack", values, services=(*STEP_SERVICES, "gateway"), port=port, extra_env={
        "OTEL_BSP_SCHEDULE_DELAY": "100", "GROVE_FAULTS": "assemble.part_logged@2",
        "GROVE_FAULTS_DIR": str(faults), "GROVE_FAULTS_SLOW": "assemble.upload:0.05"})
    store = await open_store(settings, create_buckets=True)
    content = content_source(settings)
    bus = await connect(settings, "test", ensure=True)
    try:
        seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                   amber_bucket=settings.buckets.amber, posts=6, images=12)
        token = make_token(settings, tenant=seeded.tenant_id, user="u1", email=seeded.email,
                           username=seeded.username)
        async with aiohttp.ClientSession() as http:
            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await until(ready, 30, what="the gateway")
            async with http.post(f"http://127.0.0.1:{port}/api/export", json={},
                                 headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 201, await r.text()
                export_id = (await r.json())["exportId"]
        state = await wait_status(bus, seeded.tenant_id, export_id, timeout=120)
        assert state.status == "complete", (state.failure, logs_of(stack))
        assert (faults / "assemble.part_logged.fired").exists() or list(faults.glob("*.fired")), "no kill happened"

        def mine() -> list[Span]:
            return [s for s in spans if s.attrs.get("grove.export_id") == export_id]

        async def notified() -> bool:
            return any(s.name == "notify process" for s in mine())

        await until(notified, 30, what="the notifier's span")
        assembler_log = Path(stack.child("assembler").log_path).read_text()
    finally:
        stack.stop()
        await bus.close()
        await content.close()
        await store.close()

    found = mine()
    print("\n" + "\n".join(f"{s.service:16} {s.name:28} kind={s.kind} trace={s.trace_id[:8]} parent={s.parent[:8]} links={[(t[:8], x[:8]) for t, x in s.links]}" for s in found))
    by_id = {s.span_id: s for s in found}
    by_name: dict[str, list[Span]] = {}
    for s in found:
        by_name.setdefault(s.name, []).append(s)

    # The request's trace: POST (server, root) → create ExportRequested (producer, its child).
    (post,) = by_name["POST /api/export"]
    assert post.kind == SERVER and post.parent == "" and post.service == "grove-gateway"
    (requested,) = by_name["create ExportRequested"]
    assert requested.kind == PRODUCER and requested.parent == post.span_id and requested.trace_id == post.trace_id

    # Each step attempt: a root CONSUMER span of a trace of its own, linked to its trigger's create span.
    triggers = {"catalog process": "create ExportRequested", "assemble process": "create ExportCataloged",
                "finalize process": "create ArchiveAssembled", "notify process": "create ExportCompleted"}
    for name, trigger in triggers.items():
        (created,) = by_name[trigger]
        for attempt in by_name[name]:
            assert attempt.kind == CONSUMER and attempt.parent == "", attempt
            assert attempt.links == [(created.trace_id, created.span_id)], (name, attempt.links)
            assert attempt.trace_id != created.trace_id
            assert attempt.attrs["messaging.system"] == "nats"
    # Every create span (but the gateway's) is the child of the step attempt that appended it: none is a
    # root (those of the killed attempt have a parent that never arrived: the orphans below).
    appended = [s for s in found if s.kind == PRODUCER and s is not requested]
    assert appended and all(s.parent for s in appended), [s.name for s in appended if not s.parent]
    for s in appended:
        if s.parent in by_id:
            assert by_id[s.parent].kind == CONSUMER, (s.name, by_id[s.parent].name)
    for trigger, step in (("create ExportCataloged", "catalog process"), ("create ArchiveAssembled", "assemble process"),
                          ("create ExportCompleted", "finalize process")):
        (created,) = by_name[trigger]
        assert created.parent in by_id and by_id[created.parent].name == step, (trigger, created.parent)

    # The assembler was killed after logging part 2: its attempt's span never ended (so was never
    # sent); the resumed attempt is a complete span whose part uploads start at part 3.
    (resumed,) = by_name["assemble process"]
    assert resumed.attrs["grove.attempt"] == 1  # a kill is not a failed attempt
    uploads = sorted(int(s.attrs["grove.part"]) for s in found
                     if s.name.startswith("upload part ") and s.parent == resumed.span_id)
    assert uploads and uploads[0] == 3, uploads
    # Log lines written inside the resumed attempt carry its trace id.
    lines = [json.loads(line) for line in assembler_log.splitlines() if line.startswith("{")]
    assert any(line.get("export_id") == export_id and line.get("trace_id") == resumed.trace_id for line in lines)
    # Spans of the killed attempt that did reach us are in a trace whose root never arrived.
    orphans = {s.trace_id for s in found if s.parent and s.parent not in by_id}
    assert all(s.service == "grove-assembler" for s in found if s.trace_id in orphans)
    assert len(orphans) <= 1


def test_tracing_off_imports_no_opentelemetry() -> None:
    """Off by default and no cost: appending, logging and a step attempt touch no OpenTelemetry."""
    code = (
        "import sys\n"
        "from shared.runtime import logs, tracing\n"
        "from shared.core import events as ev\n"
        "import shared.runtime.worker, shared.eventlog.jetstream, services.gateway.routes\n"
        "e = ev.CatalogStarted(export_id='e1', tenant_id='t1')\n"
        "assert tracing.message_headers(e, 'x') == {}\n"
        "with tracing.step_span('catalog', 'catalog', 's', {}, 't1', 'e1', 1) as s: assert s is None\n"
        "assert tracing.current_ids() is None\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
