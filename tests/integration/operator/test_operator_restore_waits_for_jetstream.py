"""``grove-export restore`` run as a NATS cluster forms waits for JetStream to answer, as ``setup`` does:
the wait is one rule of every one-shot command (``shared/bus/ready.py``), not setup's alone.

Seen: restore into a cluster brought up for it, run as soon as its nodes listened, failed — "no answer
in time", or "NoRespondersError: … nothing was restored: run restore again once that is fixed" — while
the cluster was still electing the JetStream leader its API needs. Driven deliberately: one node of a
three-node cluster (JetStream on, no leader), restore started against it, the other two started once
restore says it waits; and a cluster that never forms, which is one line after the wait, nothing
restored."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from services.devtools.stack.natsserver import NatsServer, free_port
from services.operator.backup import existing
from shared.bus.connect import Bus, kv_names, open_nats
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.support.env import build, to_env

WAITING = "does not answer yet"


def cluster(tmp_path: Path) -> list[NatsServer]:
    ports, routes = [free_port() for _ in range(3)], [free_port() for _ in range(3)]
    return [NatsServer(tmp_path / f"n{i}", port=ports[i], name=f"n{i}", cluster=("grove", routes[i], routes),
                       log_file=tmp_path / f"n{i}.log") for i in range(3)]


def restore(values: dict[str, Any], backup: Path) -> subprocess.Popen[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
    return subprocess.Popen([sys.executable, "-m", "services.cli", "restore", str(backup)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def backed_up(values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> tuple[list[str], Path]:
    """The deployment's streams (the log, then the buckets'), one request in the log, and `grove-export
    backup`'s own backup of them in ``tmp_path/backup``."""
    await bus.log.append(ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="tenant_w", user_id="u1",
                                            user_email="w@example.org", username="winter"), 0)
    backup = tmp_path / "backup"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}, **to_env(values)}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "services.cli", "backup", str(backup)],
                                   env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [settings.stream_name, *(f"KV_{b}" for b in kv_names(settings))], backup


async def test_restore_waits_for_a_forming_cluster_and_restores_into_it(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    names, backup = await backed_up(values, bus, settings, tmp_path)
    nodes = cluster(tmp_path)
    nodes[0].start()  # JetStream on, no leader: the other two are not up
    into = {**values, "nats_url": ",".join(n.url for n in nodes), "stream_replicas": 3}
    proc = restore(into, backup)
    try:
        assert proc.stderr is not None
        waiting = await asyncio.to_thread(proc.stderr.readline)  # restore has asked, and JetStream did not answer
        assert WAITING in waiting and "waiting up to 60 s" in waiting, waiting
        for node in nodes[1:]:
            node.start()
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, waiting + err
        assert out.splitlines() == [f"{names[0]}: restored, 1 messages", f"{names[1]}: restored, 0 messages",
                                    f"{names[2]}: restored, 0 messages"], out + err
        assert WAITING not in err, err  # said once

        nc = await open_nats(build(into), "test", persistent=False)
        try:
            js = nc.jetstream(timeout=10)
            restored = {n: await js.stream_info(n) for n in names}
        finally:
            await nc.close()
        assert {n: i.state.messages for n, i in restored.items()} == {names[0]: 1, names[1]: 0, names[2]: 0}
        assert {i.config.num_replicas for i in restored.values()} == {3}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for node in nodes:
            node.stop()


async def test_restore_into_a_cluster_that_never_forms_is_one_line_after_the_wait(
        values: dict[str, Any], bus: Bus, settings: Settings, tmp_path: Path) -> None:
    names, backup = await backed_up(values, bus, settings, tmp_path)
    nodes = cluster(tmp_path)
    nodes[0].start()
    into = {**values, "nats_url": nodes[0].url, "stream_replicas": 3, "nats_jetstream_wait_s": 3}
    try:
        started = time.monotonic()
        proc = restore(into, backup)
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        took = time.monotonic() - started
        assert (proc.returncode, out) == (1, ""), (proc.returncode, out, err)
        lines = err.splitlines()
        assert len(lines) == 2 and "Traceback" not in err, err
        assert WAITING in lines[0] and "waiting up to 3 s" in lines[0], lines[0]
        assert lines[1].startswith(f"grove-export: NATS at {nodes[0].url} (from GROVE_NATS_URL) failed: its JetStream "
                                   "did not answer within 3 s: JetStream is not ready there (a cluster without a "
                                   "JetStream leader"), lines[1]
        assert "nothing was done" in lines[1], lines[1]
        assert 3 <= took < 15, f"restore gave up after {took:.1f} s, not about 3 s"

        for node in nodes[1:]:  # the cluster forms now: the restore left nothing in it
            node.start()
        nc = await open_nats(build({**into, "nats_jetstream_wait_s": 60}), "test", persistent=False)
        try:
            assert await existing(nc, names) == []
        finally:
            await nc.close()
    finally:
        for node in nodes:
            node.stop()
