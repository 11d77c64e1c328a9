"""A service started while its NATS cluster has no JetStream leader waits for it, then works: no exit.

Seen: a three-node cluster restarting (a reboot, a rollout of the NATS StatefulSet) with only its first
node up accepts connections, but its JetStream API answers nothing until a majority has elected a
leader. A service started then (`grove-export run catalog`, as its own NATS user) met its first bind's
10 s timeout and exited 1 ("failed: no answer in time"): under Kubernetes a CrashLoopBackOff whose back-off
grows to 5 minutes, so the service stayed down for minutes after the cluster was fine. Driven here with
the production layout (the generated accounts; the service as its own user, who may not ask the
account's info): one node up, the catalog started, then the other two; the same process catalogs an
export.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import aiohttp

from services.devtools.stack.natsserver import free_port
from shared.bus.connect import Bus
from shared.bus.permissions import ADMIN, render_accounts
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.objectstore.factory import open_store
from tests.cluster.procs import Cluster, Procs, connect_bus, log_text, wait_for_jetstream
from tests.cluster.secured import PASSWORDS
from tests.support.env import build, settings_for, to_env
from tests.support.pipeline import request_export
from tests.support.wait import until

WAITING = "does not answer yet (a cluster still electing its leader"


async def test_a_service_started_before_its_cluster_has_a_leader_waits_then_works(tmp_path: Path) -> None:
    values = settings_for(tmp_path, "", stream_replicas=3)
    conf = tmp_path / "accounts.conf"
    conf.write_text(render_accounts(PASSWORDS, prefix=values["subject_prefix"], kv_prefix=values["kv_prefix"],
                                    stream=values["stream_name"]))
    cluster = Cluster(tmp_path / "nats", config_file=conf).start()
    admin = {"user": ADMIN, "password": PASSWORDS[ADMIN]}
    procs: Procs | None = None
    bus: Bus | None = None
    try:
        await wait_for_jetstream(cluster.urls, **admin)
        values["nats_url"] = ",".join(cluster.urls)
        s = build(values)
        await (await connect_bus(s, cluster.urls, **admin)).close()  # the admin set-up, at R3
        store = await open_store(s, create_buckets=True)
        content = content_source(s)
        await content.init()
        tenant = (await seed_tenant(content, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber,
                                    images=1)).tenant_id
        await content.close()
        await store.close()
        for node in cluster.nodes:  # the whole cluster restarts; its first node comes back alone
            node.stop()
        cluster.nodes[0].start()

        procs = Procs(tmp_path / "logs", to_env(values))
        metrics = free_port()
        child = procs.run("catalog", "catalog", {"GROVE_NATS_USER": "catalog", "GROVE_METRICS_PORT": str(metrics),
                                                 "GROVE_NATS_PASSWORD": PASSWORDS["catalog"]})
        assert child.proc is not None
        pid = child.proc.pid

        async def waiting() -> bool:
            assert child.proc is not None and child.proc.poll() is None, f"catalog exited:\n{procs.tail('catalog')}"
            return WAITING in log_text(child.log_path)

        await until(waiting, 60, 0.2, "the catalog to say it waits for JetStream")
        said = time.monotonic()

        async def outlived_its_old_timeout() -> bool:  # its bind's 10 s, on which it exited
            assert child.proc is not None and child.proc.poll() is None, f"catalog exited:\n{procs.tail('catalog')}"
            return time.monotonic() - said > 15

        await until(outlived_its_old_timeout, 30, 0.2, "the catalog to outlive its bind's old 10 s timeout")
        text = log_text(child.log_path)
        assert "Traceback" not in text and text.count(WAITING) == 1, text
        # alive, as a liveness probe asks (a pod whose /healthz does not answer is restarted), and not ready
        assert await _status(metrics, "/healthz") == 200 and await _status(metrics, "/readyz") == 503

        for node in cluster.nodes[1:]:
            node.start()
        await wait_for_jetstream(cluster.urls, 60, **admin)

        async def connected() -> Bus | None:
            with contextlib.suppress(Exception):  # the stream's and buckets' own leaders are still being elected
                return await connect_bus(s, cluster.urls, **admin)
            return None

        bus = await until(connected, 60, 0.5, "the admin's bus")

        async def requested() -> str | None:
            assert bus is not None
            with contextlib.suppress(Exception):
                return await request_export(bus, tenant)
            return None

        export_id = await until(requested, 60, 0.5, "an export requested")

        async def cataloged() -> bool:
            assert bus is not None and child.proc is not None
            assert child.proc.poll() is None, f"catalog exited:\n{procs.tail('catalog')}"
            with contextlib.suppress(Exception):
                return (await bus.log.load(tenant, export_id)).state.cataloged is not None
            return False

        await until(cataloged, 90, 0.3, "the export cataloged by the catalog that waited")
        assert child.proc.pid == pid and child.proc.poll() is None  # the same process: never restarted
        assert "Traceback" not in log_text(child.log_path), procs.tail("catalog")
        assert await _status(metrics, "/readyz") == 200
    finally:
        if bus is not None:
            with contextlib.suppress(Exception):
                await bus.close()
        if procs is not None:
            procs.stop()
        cluster.stop()


async def _status(port: int, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}",
                                                               timeout=aiohttp.ClientTimeout(total=5)) as r:
        return r.status
