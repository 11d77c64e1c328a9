"""The look that decides a deletion (the catalog's refused ExportCataloged, the assembler's vanished
upload) reads the export at the stream's leader: on an R3 stream, from a client connected to any node,
it folds the whole history (``STREAM.MSG.GET``, which only the leader answers; a direct get may be
answered by a follower still behind)."""

from __future__ import annotations

from pathlib import Path

import nats

from shared.core import events as ev
from shared.eventlog.jetstream import EventLog
from tests.cluster.procs import Cluster, connect_bus, wait_for_jetstream
from tests.support.env import build, settings_for


async def test_the_leaders_read_of_an_r3_stream_holds_the_whole_history_from_every_node(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path / "nats").start()
    try:
        await wait_for_jetstream(cluster.urls)
        settings = build(settings_for(tmp_path, cluster.urls[0], stream_replicas=3))
        bus = await connect_bus(settings, cluster.urls)
        try:
            assert (await bus.js.stream_info(settings.stream_name)).config.num_replicas == 3
            request = ev.ExportRequested(export_id=ev.new_export_id(), tenant_id="t1", user_id="u",
                                         user_email="a@b.c", username="autumn")
            seq = await bus.log.append(request, 0)
            seq = await bus.log.append(ev.CatalogStarted(export_id=request.export_id, tenant_id="t1"), seq)
            seq = await bus.log.append(ev.CancelRequested(export_id=request.export_id, tenant_id="t1",
                                                          requested_by="u"), seq)
        finally:
            await bus.nc.close()
        for url in cluster.urls:  # a client of each node: the leader's answer reaches it through the cluster
            nc = await nats.connect(url, max_reconnect_attempts=0, connect_timeout=3)
            try:
                log = EventLog(nc.jetstream(timeout=5), settings.stream_name, settings.subject_prefix, "test")
                leader = await log.load("t1", request.export_id, at_leader=True)
                assert (leader.last_seq, leader.state.events, leader.state.stopping) == (seq, 3, True), url
                none = await log.load("t1", "exp_none", at_leader=True)
                assert (none.last_seq, none.state.exists) == (0, False)
            finally:
                await nc.close()
    finally:
        cluster.stop()
