"""``grove-export erase-tenant`` on a 3-node cluster (R3 stream and KV): each node writes the erased
events over in its own copy of the stream's block files. Each node's Raft log of the stream
(``$SYS/_js_/S-R3F-*``) keeps the appended messages until nats-server compacts it after a snapshot:
seen still holding the address on two of three nodes 2½ minutes after the erasure (README, Personal
data), so it is not scanned here."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.objectstore.factory import open_store
from tests.cluster.procs import Cluster, connect_bus, wait_for_jetstream
from tests.integration.operator.test_operator_erase_hostile import _tenant, cli
from tests.support.env import build, settings_for


def _holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


async def test_every_replica_writes_the_erased_events_over_in_its_block_files(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "nats").start()
    try:
        await wait_for_jetstream(cluster.urls)
        values = settings_for(tmp_path, cluster.urls[0], stream_replicas=3)
        settings = build(values)
        bus = await connect_bus(settings, cluster.urls)
        store = await open_store(settings, create_buckets=True)
        try:
            await _tenant(bus, store, settings, "t1")
            await _tenant(bus, store, settings, "t10")
        finally:
            await store.close()
        streams = [n.store_dir / "jetstream" / "$G" / "streams" for n in cluster.nodes]

        def on_every_node() -> list[str]:
            return [s.parent.parent.parent.name for s in streams if _holding(s, b"t1@example.org")]

        for _ in range(50):  # each replica has stored them
            if len(on_every_node()) == 3:
                break
            await asyncio.sleep(0.1)
        assert len(on_every_node()) == 3
        out = cli(values, "erase-tenant", "t1", "--wait", "0", "--erase-running", "--no-read-model")
        assert out.returncode == 0, out.stdout + out.stderr
        for _ in range(50):  # the followers apply the delete a moment after the leader answered
            if not on_every_node():
                break
            await asyncio.sleep(0.1)
        assert [(s.parent.parent.parent.name, _holding(s, b"t1@example.org")) for s in streams
                if _holding(s, b"t1@example.org")] == []
        assert all(_holding(s, b"t10@example.org") for s in streams)
        await bus.close()
    finally:
        cluster.stop()
