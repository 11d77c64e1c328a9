"""Scaling past one machine: a 3-node NATS cluster (R3 stream and KV), two assembler replicas.

The cluster runs the production layout (shared/bus/permissions.py): the stream and the buckets in
the ``STORE`` account with the admin, each service as its own user in an account of its own (``SVC_<user>``), reaching them only
through the generated imports — across nodes, through a leader's loss.

A few-hundred-MB export is running when the stream's leader node and the assembler replica doing
the work are SIGKILLed. The export completes, its archive equals ``grove-export assemble`` of its
snapshot byte for byte, and the killed node, restarted, catches up (its own monitoring endpoint
shows the stream's last sequence).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from pathlib import Path

import aiohttp
import nats.js.errors
import pytest

from services.devtools.stack.natsserver import free_port
from services.gateway.auth import make_token
from shared.bus.connect import Bus
from shared.bus.permissions import ADMIN, render_accounts
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core.keys import heartbeat_key
from shared.core.lifecycle import ExportState
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.chaos.conftest import Tally
from tests.chaos.harness import Outcome, check
from tests.cluster.procs import Cluster, Procs, connect_bus, count_lines, wait_for_jetstream
from tests.cluster.secured import PASSWORDS
from tests.support.env import build, settings_for, to_env
from tests.support.pipeline import request_export
from tests.support.wait import until

MiB = 1024 * 1024
IMAGES = 24
IMAGE_BYTES = 10 * MiB  # 240 MiB of incompressible media


def as_user(service: str) -> dict[str, str]:
    return {"GROVE_NATS_USER": service, "GROVE_NATS_PASSWORD": PASSWORDS[service]}


async def load_state(bus: Bus, tenant: str, export_id: str) -> ExportState | None:
    with contextlib.suppress(Exception):  # a leader election in progress: ask again
        return (await bus.log.load(tenant, export_id)).state
    return None


async def watch_workers(bus: Bus, seen: list[tuple[float, str, str, str]]) -> asyncio.Task[None]:
    """Record (time, key, step, worker) of every heartbeat: which process held which export.

    The watch is subscribed before this returns; a task then drains it until cancelled."""
    watcher = await bus.heartbeats.watch(">")

    async def drain() -> None:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue
            with contextlib.suppress(ValueError):
                beat = json.loads(entry.value)
                seen.append((time.monotonic(), entry.key, beat.get("step", ""), beat.get("worker", "")))

    return asyncio.create_task(drain())


@pytest.mark.slow
async def test_an_export_survives_losing_the_stream_leader_and_an_assembler(tmp_path: Path) -> None:
    values = settings_for(tmp_path, "", stream_replicas=3, min_part_size=4 * MiB,
                          ack_wait_s=5.0, progress_interval_s=1.0, heartbeat_ttl_s=60.0)
    conf = tmp_path / "accounts.conf"
    conf.write_text(render_accounts(PASSWORDS, prefix=values["subject_prefix"], kv_prefix=values["kv_prefix"],
                                    stream=values["stream_name"]))
    cluster = Cluster(tmp_path / "nats", config_file=conf).start()
    procs: Procs | None = None
    bus: Bus | None = None
    try:
        admin = {"user": ADMIN, "password": PASSWORDS[ADMIN]}
        await wait_for_jetstream(cluster.urls, **admin)
        values["nats_url"] = ",".join(cluster.urls)
        s: Settings = build(values)
        bus = await connect_bus(s, cluster.urls, **admin)
        info = await bus.js.stream_info(s.stream_name)
        assert info.config.num_replicas == 3 and info.cluster and len(info.cluster.replicas or []) == 2
        assert (await bus.heartbeats.status()).values == 0
        kv_info = await bus.js.stream_info(f"KV_{s.kv_prefix}_heartbeats")
        assert kv_info.config.num_replicas == 3

        store = await open_store(s, create_buckets=True)
        seeded = await seed_tenant(content_source(s), store, images_bucket=s.buckets.images,
                                   amber_bucket=s.buckets.amber, images=IMAGES, image_size=(64, 48), posts=6)
        rng = random.Random(11)
        for key in seeded.image_keys:  # big "photos": the catalog HEADs real sizes, so no DB change needed
            mime = "image/png" if key.endswith(".png") else "image/jpeg"
            await store.put(s.buckets.images, key, rng.randbytes(IMAGE_BYTES), mime)

        port = free_port()
        base = {**to_env(values), "GROVE_PORT": str(port), "GROVE_HOST": "127.0.0.1"}
        procs = Procs(tmp_path / "logs", base)
        for svc in ("catalog", "finalizer", "notifier", "gateway"):
            procs.run(svc, svc, as_user(svc))
        faults = {}
        for i in (1, 2):
            faults[f"assembler-{i}"] = tmp_path / "faults" / f"assembler-{i}"
            faults[f"assembler-{i}"].mkdir(parents=True)
            procs.run(f"assembler-{i}", "assembler", {"GROVE_FAULTS_DIR": str(faults[f"assembler-{i}"]),
                                                      "GROVE_FAULTS_SLOW": "assemble.upload:0.15",
                                                      **as_user("assembler")})
        await asyncio.sleep(1.0)
        procs.assert_alive()
        pid_of = {tag: c.proc.pid for tag, c in procs.children.items() if c.proc}

        seen: list[tuple[float, str, str, str]] = []
        watcher = await watch_workers(bus, seen)
        t0 = time.monotonic()
        export_id = await request_export(bus, seeded.tenant_id)

        async def parts_logged(n: int) -> ExportState | None:
            procs.assert_alive()
            st = await load_state(bus, seeded.tenant_id, export_id)
            return st if st and len(st.parts) >= n else None

        mid = await until(lambda: parts_logged(10), 120, 0.2, "10 parts uploaded")
        total_parts = f"~{IMAGES * IMAGE_BYTES // (4 * MiB)}"

        # Who is assembling it now (its heartbeat names the worker: hostname-pid)?
        async def heartbeat() -> dict | None:  # the first beat comes one progress interval into the step
            with contextlib.suppress(nats.js.errors.KeyNotFoundError):
                entry = await bus.heartbeats.get(heartbeat_key("assemble", seeded.tenant_id, export_id))
                return json.loads(entry.value or b"{}")
            return None

        beat = await until(heartbeat, 30, 0.1, "the assembler's heartbeat")
        worker_pid = int(beat["worker"].rsplit("-", 1)[1])
        victim = next(tag for tag, pid in pid_of.items() if pid == worker_pid and tag.startswith("assembler"))
        survivor = "assembler-2" if victim == "assembler-1" else "assembler-1"
        leader = (await bus.js.stream_info(s.stream_name)).cluster.leader  # type: ignore[union-attr]
        assert leader, "no stream leader"
        t_kill = time.monotonic()
        cluster.node(leader).stop(kill=True)
        procs.kill(victim)
        print(f"\n[cluster] killed NATS node {leader} (stream leader) and {victim} after "
              f"{len(mid.parts)}/{total_parts} parts, {t_kill - t0:.1f}s into the export")

        async def finished() -> ExportState | None:
            st = await load_state(bus, seeded.tenant_id, export_id)
            return st if st and st.status in ("complete", "failed", "cancelled") else None

        state = await until(finished, 240, 0.3, "the export to finish")
        duration, after_kills = time.monotonic() - t0, time.monotonic() - t_kill
        assert state.status == "complete", f"{state.status}: {state.failure}\n{procs.logs()}"
        new_leader = (await bus.js.stream_info(s.stream_name)).cluster.leader  # type: ignore[union-attr]
        assert new_leader and new_leader != leader

        events = [e async for _, e in bus.log.history(seeded.tenant_id, export_id)]
        uploaded = {tag: count_lines(d / "uploaded.count") for tag, d in faults.items()}
        uploaded_bytes = sum(int(x) for d in faults.values() if (d / "uploaded.count").exists()
                             for x in (d / "uploaded.count").read_text().split())
        outcome = Outcome(state, events, 2, max(0, uploaded_bytes - state.completed.size_bytes))  # type: ignore[union-attr]
        await check(s, store, outcome, tmp_path, Tally())  # byte-identical to `grove-export assemble`
        assert uploaded[survivor] > 0, "the surviving replica did not take over"

        # The gateway's read model followed through the fail-over.
        async with aiohttp.ClientSession() as http:
            token = make_token(s, seeded.tenant_id, "u1", "u1@example.org", "autumn")

            async def gateway_says_complete() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/export/status/{export_id}",
                                        headers={"Authorization": f"Bearer {token}"}) as r:
                        return r.status == 200 and (await r.json())["status"] == "complete"
                except aiohttp.ClientError:
                    return False

            await until(gateway_says_complete, 30, 0.3, "the gateway to show the export complete")

        # Restart the killed node: it catches up on its own (its monitoring endpoint, not the leader).
        t_restart = time.monotonic()
        cluster.node(leader).start()

        async def caught_up() -> tuple[int, int] | None:
            try:
                want = (await bus.js.stream_info(s.stream_name)).state.last_seq
                local = cluster.local_stream_state(leader, s.stream_name)
            except Exception:  # still starting
                return None
            return (want, local["last_seq"]) if local and local.get("last_seq") == want else None

        want, got = await until(caught_up, 60, 0.3, f"{leader} to catch up")
        catch_up = time.monotonic() - t_restart
        replicas = {r.name: (r.current, r.lag) for r in
                    ((await bus.js.stream_info(s.stream_name)).cluster.replicas or [])}  # type: ignore[union-attr]
        holders = sorted({(tag, step) for _, _, step, worker in seen for tag, pid in pid_of.items()
                          if worker.endswith(f"-{pid}")})
        parts = len(state.parts)
        names = collections.Counter(e.name() for e in events)
        failures = [e.reason for e in events if isinstance(e, ev.StepFailed)]
        print(f"[cluster] export {export_id}: {state.completed.size_bytes / MiB:.0f} MiB, "  # type: ignore[union-attr]
              f"{parts} parts of {state.upload.part_size // MiB} MiB, complete in {duration:.1f}s "  # type: ignore[union-attr]
              f"({after_kills:.1f}s after the kills); part uploads per replica: {uploaded} "
              f"(victim {victim}, survivor {survivor}), {outcome.reuploaded / MiB:.0f} MiB uploaded twice; "
              f"PartUploaded logged {names['PartUploaded']}x, StepFailed {failures}; heartbeat holders: {holders}; "
              f"new stream leader {new_leader}; {leader} restarted and at last_seq {got} == {want} "
              f"after {catch_up:.1f}s; replicas seen by the leader: {replicas}")
        watcher.cancel()
        assert ev.ExportCompleted.__name__ in {e.name() for e in events}
        await store.close()
    finally:
        if procs:
            procs.stop()
        if bus:
            with contextlib.suppress(Exception):
                await bus.close()
        cluster.stop()
