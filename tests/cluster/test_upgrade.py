"""The README's upgrade path, on a server started with the old layout (before the step table).

Old layout: broad ``$JS.API.>`` permissions and a shared ``_INBOX.>`` (``old_layout_auth.conf``,
frozen from the code of that time), and each service created the stream, buckets and its durables
itself. An export is requested and its catalog step is done the old way. Then the README's steps:
``grove-export setup`` as admin while old services could still run; stop the services; swap in the
generated authorization block and reload the server (SIGHUP); start the new services. The export
in flight completes, and a new one does too.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType

from services.devtools.stack.natsserver import NatsServer, env_without_proxies, free_port
from shared.bus.permissions import ADMIN, password_env, render_authorization
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.objectstore.factory import open_store
from tests.cluster.procs import LAUNCH, Procs, connect_bus
from tests.cluster.secured import PASSWORDS
from tests.support.env import build, settings_for, to_env
from tests.support.pipeline import wait_status
from tests.support.wait import until

OLD = Path(__file__).with_name("old_layout_auth.conf")


async def test_the_readme_upgrade_path_from_the_old_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    values = settings_for(tmp_path, f"nats://127.0.0.1:{port}")
    s = build(values)
    conf = tmp_path / "nats.conf"
    pinned = 'server_name: "grove"\n'  # as NatsServer's -n: a reload must not change it
    conf.write_text(pinned + OLD.read_text().replace("@@PREFIX@@", s.subject_prefix).replace("@@KV@@", s.kv_prefix))
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)
    server = NatsServer(tmp_path / "nats", port=port, config_file=conf, log_file=tmp_path / "nats.log").start()
    procs = Procs(tmp_path / "logs", to_env(values))
    store = await open_store(s, create_buckets=True)
    try:
        # -- the old layout: the catalog user (any service user could) created everything itself
        old = await nats.connect(server.url, user="catalog", password=PASSWORDS["catalog"])
        js = old.jetstream()
        await EventLog(js, s.stream_name, s.subject_prefix).ensure_stream(1)
        await js.create_key_value(KeyValueConfig(bucket=f"{s.kv_prefix}_heartbeats", ttl=s.heartbeat_ttl_s,
                                                 storage=StorageType.FILE, history=1))
        await js.create_key_value(KeyValueConfig(bucket=f"{s.kv_prefix}_admission", storage=StorageType.FILE,
                                                 history=1))
        for c in steps.all_consumers():  # the old faststream config; `canceller` then lived in the assembler
            await js.add_consumer(s.stream_name, ConsumerConfig(
                durable_name=c.durable, filter_subject=f"{s.subject_prefix}.*.*.{c.trigger}",
                ack_policy=AckPolicy.EXPLICIT, ack_wait=s.ack_wait_s, max_deliver=-1,
                deliver_policy=DeliverPolicy.ALL, max_ack_pending=1000))
        await old.close()
        db = content_source(s)
        a = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=2)
        b = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=2)
        gw = await nats.connect(server.url, user="gateway", password=PASSWORDS["gateway"])
        in_flight = ev.new_export_id()
        await EventLog(gw.jetstream(), s.stream_name, s.subject_prefix, "gateway").append(
            ev.ExportRequested(export_id=in_flight, tenant_id=a.tenant_id, user_id="u", user_email="a@example.org",
                               username="a"), 0)
        await gw.close()

        # -- 1. setup as admin, with the old permissions still in force
        env = {**env_without_proxies(), **to_env(values), "GROVE_NATS_USER": ADMIN,
               "GROVE_NATS_PASSWORD": PASSWORDS[ADMIN]}
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "setup", "--nats-only"], env=env,
                                      capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "durable canceller" in out.stdout
        # -- 2. (services stopped) 3. the generated block, reloaded in place
        conf.write_text(pinned + render_authorization(prefix=s.subject_prefix, kv_prefix=s.kv_prefix, stream=s.stream_name))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        errors: list[str] = []

        async def on_error(e: Exception) -> None:
            errors.append(str(e))

        async def refused_old_client() -> bool:  # an old client (shared _INBOX.) is refused once reloaded
            nc = await nats.connect(server.url, user="catalog", password=PASSWORDS["catalog"], error_cb=on_error)
            try:
                await nc.jetstream().consumer_info(s.stream_name, "catalog", timeout=1)
                return False
            except nats.errors.TimeoutError:
                return True
            finally:
                await nc.close()

        await until(refused_old_client, 15, 0.2, "the reloaded permissions")
        assert any("violation for subscription" in e.lower() for e in errors), errors
        # -- 4. the new services, each as its own user
        for svc in ("catalog", "assembler", "finalizer", "notifier", "canceller"):
            procs.run(svc, svc, {"GROVE_NATS_USER": svc, "GROVE_NATS_PASSWORD": PASSWORDS[svc]})
        admin = await connect_bus(s, [server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
        try:
            state = await wait_status(admin, a.tenant_id, in_flight, timeout=90)
            assert state.status == "complete", procs.logs()
            fresh = ev.new_export_id()
            await admin.log.append(ev.ExportRequested(export_id=fresh, tenant_id=b.tenant_id, user_id="u",
                                                      user_email="b@example.org", username="b"), 0)
            assert (await wait_status(admin, b.tenant_id, fresh, timeout=90)).status == "complete", procs.logs()
        finally:
            await admin.close()
        procs.assert_alive()
        violations = [ln for tag in procs.children for ln in procs.tail(tag, 10**7).splitlines()
                      if "permissions violation" in ln.lower()]
        assert not violations, violations[:5]
    finally:
        procs.stop()
        await store.close()
        server.stop()
