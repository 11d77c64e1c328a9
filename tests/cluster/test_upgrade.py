"""The README's upgrade paths, on a server started with an old layout: one account for everything.

Old layout: broad ``$JS.API.>`` permissions and a shared ``_INBOX.>`` (``old_layout_auth.conf``,
frozen from the code of that time), and each service created the stream, buckets and its durables
itself; the stream and the buckets live in the one (global) account. An export is requested the old
way. The new layout keeps them in an account of their own (``STORE``) and the service users in
``SVC_<user>`` accounts (shared/bus/permissions.py), so the data moves:

* a cluster (the README's steps): ``grove-export setup`` as admin while old services could still run;
  stop the services; ``grove-export backup``; new servers with the generated accounts block;
  ``grove-export restore`` as admin; start the new services. The export in flight completes, and a
  new one does too;
* one server: stopped, its ``jetstream/$G`` folder becomes ``jetstream/STORE`` (what ``serve`` does
  to its own folder) — the log, the buckets and every durable's position come back as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType
from pydantic import SecretStr

from services.devtools.stack.natsserver import NatsServer, env_without_proxies, free_port
from services.devtools.stack.supervisor import move_to_store_account
from shared.bus.connect import Bus, connect
from shared.bus.permissions import ADMIN, password_env, render_accounts
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import EventLog
from shared.objectstore.factory import open_store
from tests.cluster.procs import LAUNCH, Cluster, Procs, connect_bus, log_text, wait_for_jetstream
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
        # new code against the old config: one line saying so, not "no answer in time"
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "run", "catalog"], capture_output=True, text=True,
                                      timeout=60, env={**env, "GROVE_NATS_USER": "catalog",
                                                       "GROVE_NATS_PASSWORD": PASSWORDS["catalog"]})
        assert out.returncode == 1 and "predates the STORE and SVC_<service> accounts" in out.stderr, out.stderr[-2000:]
        # -- 2. (services stopped) a backup, as admin
        backup_env = {**env, "GROVE_NATS_URL": server.url}
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "backup", str(tmp_path / "backup")], env=backup_env,
                                      capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        server.stop()
        # -- 3. the new layout on a server of its own; restored as admin, then setup
        conf.write_text(pinned + render_accounts(prefix=s.subject_prefix, kv_prefix=s.kv_prefix, stream=s.stream_name))
        server = NatsServer(tmp_path / "nats-new", port=port, config_file=conf, log_file=tmp_path / "nats-new.log").start()
        for command in (["restore", str(tmp_path / "backup")], ["setup", "--nats-only"]):
            out = await asyncio.to_thread(subprocess.run, [*LAUNCH, *command], env=backup_env,
                                          capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, (command, out.stdout + out.stderr)
        assert not list((tmp_path / "nats-new" / "jetstream").glob("$G*")), "restored outside the STORE account"
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


async def test_a_single_servers_folder_moves_to_the_store_account(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """One server (``serve``'s own, a single-node install): stopped, ``jetstream/$G`` moved to
    ``jetstream/STORE`` (``move_to_store_account``, what ``serve`` runs before its server starts), and
    started with the accounts block. A service user then reads the same log, the same durable
    positions and the same bucket values (without the move, the heartbeat is not found)."""
    port = free_port()
    values = settings_for(tmp_path, f"nats://127.0.0.1:{port}")
    s = build(values)
    conf = tmp_path / "nats.conf"
    conf.write_text(OLD.read_text().replace("@@PREFIX@@", s.subject_prefix).replace("@@KV@@", s.kv_prefix))
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)
    store_dir = tmp_path / "nats"
    server = NatsServer(store_dir, port=port, config_file=conf, log_file=tmp_path / "nats.log").start()
    try:
        admin = await connect_bus(s, [server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
        try:
            before = await _write_what_must_be_kept(admin, s.stream_name, "t_m")
        finally:
            await admin.close()
        server.stop()
        assert move_to_store_account(store_dir) and not move_to_store_account(store_dir)
        conf.write_text(render_accounts(prefix=s.subject_prefix, kv_prefix=s.kv_prefix, stream=s.stream_name))
        server = NatsServer(store_dir, port=port, config_file=conf, log_file=tmp_path / "nats.log").start()
        admin = await connect_bus(s, [server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
        catalog = await connect(s.model_copy(update={"nats_user": "catalog", "nats_password": SecretStr(
            PASSWORDS["catalog"])}), "catalog")
        try:
            assert await _kept(admin, s.stream_name, "catalog.t_m.exp_0") == before
            assert [e.export_id async for _, e in catalog.log.history("t_m", "exp_2")] == ["exp_2"]
            assert (await catalog.heartbeats.get("catalog.t_m.exp_0")).value == b"beat"
        finally:
            await catalog.close()
            await admin.close()
    finally:
        server.stop()


async def _write_what_must_be_kept(bus: Bus, stream: str, tenant: str) -> tuple[object, ...]:
    """As admin on the old layout: three exports requested, the catalog durable one message on (acked),
    a heartbeat at ``catalog.<tenant>.exp_0``; returns :func:`_kept` of it."""
    for i in range(3):
        await bus.log.append(ev.ExportRequested(export_id=f"exp_{i}", tenant_id=tenant, user_id="u",
                                                user_email="k@example.org", username="k"), 0)
    pull = await bus.js.pull_subscribe_bind("catalog", stream)
    [first] = await pull.fetch(1, timeout=10)
    await first.ack_sync()
    await bus.heartbeats.put(f"catalog.{tenant}.exp_0", b"beat")
    return await _kept(bus, stream, f"catalog.{tenant}.exp_0")


async def _kept(bus: Bus, stream: str, key: str) -> tuple[object, ...]:
    """What the move must keep, read as the given user: the log's state, the catalog durable's position
    and the heartbeat at ``key``."""
    state = (await bus.js.stream_info(stream)).state
    durable = await bus.js.consumer_info(stream, "catalog")
    beat = (await bus.heartbeats.get(key)).value
    return (state.messages, state.first_seq, state.last_seq, durable.delivered.stream_seq, durable.ack_floor.stream_seq,
            durable.num_pending, beat)


def _stopped_from_outside(cluster: Cluster) -> list[str]:
    """The nodes of ``cluster`` that ended after trapping SIGTERM: asked before the test stops them (it
    sends none before), so sent by another process than this test's code."""
    return [n.name for n in cluster.nodes if n.proc is not None and n.proc.poll() is not None
            and 'Trapped "terminated" signal' in log_text(n.log_file)]


@contextlib.contextmanager
def _unless_stopped_from_outside(cluster: Cluster) -> Iterator[None]:
    """A failure is the test's, unless a node of ``cluster`` ended on a SIGTERM this test never sends:
    then the test is xfailed, naming the nodes and the failure. Seen in two whole runs (2026-12-05):
    two nodes of the new cluster trapped SIGTERM 7 µs apart mid-restore; the sender is not found
    (perf's signal:signal_generate and fork events over this session's runs, including one whole run,
    showed no SIGTERM to a nats-server from another process than the one that started it, but the
    failure did not recur under it). It was a non-strict xfail of the whole test, which hid any failure
    of the upgrade path; now only that one is excused, and every other assertion fails the test."""
    try:
        yield
    except AssertionError as e:
        if outside := _stopped_from_outside(cluster):
            pytest.xfail(f"nodes {', '.join(outside)} of {cluster.root.name} ended on a SIGTERM the test never "
                         f"sent; the failure: {str(e)[:300]}")
        raise


@pytest.mark.slow
async def test_a_three_node_cluster_moves_by_backup_and_restore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's cluster path across clusters of three: an R3 log and buckets in the one account of
    the old block, ``grove-export backup`` as admin, a new cluster with the generated accounts block on
    empty storage, ``grove-export restore`` and ``setup`` as admin — the log, the buckets (R3 again) and
    the catalog durable's position are as they were, read by admin in STORE, and a service user reads
    the export through its account's imports."""
    values = settings_for(tmp_path, "", stream_replicas=3)
    s0 = build({**values, "nats_url": "nats://unused:1"})
    for name, pw in PASSWORDS.items():
        monkeypatch.setenv(password_env(name), pw)
    old_conf, new_conf = tmp_path / "old.conf", tmp_path / "new.conf"
    old_conf.write_text(OLD.read_text().replace("@@PREFIX@@", s0.subject_prefix).replace("@@KV@@", s0.kv_prefix))
    new_conf.write_text(render_accounts(PASSWORDS, prefix=s0.subject_prefix, kv_prefix=s0.kv_prefix,
                                        stream=s0.stream_name))
    admin: dict[str, Any] = {"user": ADMIN, "password": PASSWORDS[ADMIN]}

    async def as_admin(command: list[str], urls: list[str]) -> None:
        env = {**env_without_proxies(), **to_env({**values, "nats_url": ",".join(urls)}), "GROVE_NATS_USER": ADMIN,
               "GROVE_NATS_PASSWORD": PASSWORDS[ADMIN]}
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, *command], env=env, capture_output=True, text=True,
                                      timeout=120)
        assert out.returncode == 0, (command, out.stdout + out.stderr)

    old = Cluster(tmp_path / "old", config_file=old_conf).start()
    try:
        with _unless_stopped_from_outside(old):
            await wait_for_jetstream(old.urls, **admin)
            s = build({**values, "nats_url": ",".join(old.urls)})
            bus = await connect_bus(s, old.urls, "test", **admin)
            try:
                before = await _write_what_must_be_kept(bus, s.stream_name, "t_c")
            finally:
                await bus.close()
            await as_admin(["backup", str(tmp_path / "backup")], old.urls)
    finally:
        old.stop()
    new = Cluster(tmp_path / "new", config_file=new_conf).start()
    try:
        with _unless_stopped_from_outside(new):
            await _restored_as_before(new, values, as_admin, admin, before)
    finally:
        new.stop()


async def _restored_as_before(new: Cluster, values: dict[str, Any], as_admin: Callable[[list[str], list[str]],
                              Awaitable[None]], admin: dict[str, Any], before: tuple[object, ...]) -> None:
    await wait_for_jetstream(new.urls, **admin)
    for command in (["restore", str(new.root.parent / "backup")], ["setup", "--nats-only"]):
        await as_admin(command, new.urls)
    s = build({**values, "nats_url": ",".join(new.urls)})
    bus = await connect_bus(s, new.urls, "test", **admin)
    catalog = await connect(s.model_copy(update={"nats_user": "catalog", "nats_password": SecretStr(
        PASSWORDS["catalog"])}), "catalog")
    try:
        async def as_before() -> bool:  # a restored R3 durable's pending count, and a replica a direct
            try:  # get may ask, are settled a moment later
                return await _kept(bus, s.stream_name, "catalog.t_c.exp_0") == before
            except nats.js.errors.NotFoundError:
                return False

        await until(as_before, 15, 0.2, f"the restored state {before}")
        for stream in (s.stream_name, f"KV_{s.kv_prefix}_heartbeats", f"KV_{s.kv_prefix}_admission"):
            info = await bus.js.stream_info(stream)
            assert info.config.num_replicas == 3 and len(info.cluster.replicas or []) == 2, stream  # type: ignore[union-attr]
        assert [e.export_id async for _, e in catalog.log.history("t_c", "exp_2")] == ["exp_2"]
    finally:
        await catalog.close()
        await bus.close()
    for node in new.nodes:  # all of it in STORE: nothing restored into another account
        assert not list((node.store_dir / "jetstream").glob("$G*")), node.name
