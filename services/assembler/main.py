"""Composition root of the assembler service.

Every replica also listens on a plain NATS subscription for CancelRequested and stops that
export's task at once — but a core message only wakes it: it re-reads the export's log and stops
the task only when the log holds the cancel (a core message can come from anywhere that may
publish on the subject, and is never stored; services/assembler/wakeups.py: one read at a time per
export). The canceller (its own service,
services/canceller/main.py) aborts the upload and records ExportCancelled.
"""

from __future__ import annotations

from faststream import FastStream

from services.assembler.service import Assembler, should_run
from services.assembler.wakeups import CancelWakeups
from shared.eventlog.jetstream import Loaded
from shared.objectstore.factory import open_store
from shared.runtime.service import ServiceRuntime, build_app
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker, running_key


def create_app(settings: Settings) -> FastStream:
    async def bootstrap(rt: ServiceRuntime) -> None:
        store = await open_store(settings)
        rt.closers.append(store.close)
        assert rt.bus is not None
        bus = rt.bus
        async def abort_upload(loaded: Loaded) -> None:
            if loaded.state.upload is not None:
                up = loaded.state.upload
                await store.abort_multipart(settings.buckets.exports, up.archive_key, up.upload_id)

        assembler = StepWorker("assemble", rt.bus, settings, Assembler(settings, store), should_run, abort_upload)
        rt.workers["assemble"] = assembler

        stop_now = CancelWakeups(settings.subject_prefix,
                                 lambda t, e: running_key(t, e) in assembler.running,
                                 bus.log.load, assembler.cancel_export)
        rt.closers.append(stop_now.close)  # closers run last first: the subscription ends before
        sub = await rt.bus.nc.subscribe(f"{settings.subject_prefix}.*.*.CancelRequested", cb=stop_now.wake)
        rt.closers.append(sub.unsubscribe)

    app, _ = build_app("assembler", settings, bootstrap, "Streams every member through stream-zip into a logged multipart upload.")
    return app
