"""Composition root of the assembler service.

Every replica also listens on a plain NATS subscription for CancelRequested and stops that
export's task at once; the canceller (its own service, services/canceller/main.py) aborts the
upload and records ExportCancelled.
"""

from __future__ import annotations

from faststream import FastStream
from nats.aio.msg import Msg

from services.assembler.service import Assembler, should_run
from shared.eventlog import Loaded
from shared.objectstore.factory import open_store
from shared.runtime import ServiceRuntime, Subscription, build_app
from shared.settings import Settings
from shared.worker import StepWorker, parse_subject


def create_app(settings: Settings) -> FastStream:
    async def bootstrap(rt: ServiceRuntime) -> None:
        store = await open_store(settings)
        rt.closers.append(store.close)
        assert rt.bus is not None
        async def abort_upload(loaded: Loaded) -> None:
            if loaded.state.upload is not None:
                up = loaded.state.upload
                await store.abort_multipart(settings.buckets.exports, up.archive_key, up.upload_id)

        assembler = StepWorker("assemble", rt.bus, settings, Assembler(settings, store), should_run, abort_upload)
        rt.workers["assemble"] = assembler

        async def stop_now(msg: Msg) -> None:
            _, export_id, _ = parse_subject(msg.subject)
            assembler.cancel_export(export_id)

        sub = await rt.bus.nc.subscribe(f"{settings.subject_prefix}.*.*.CancelRequested", cb=stop_now)
        rt.closers.append(sub.unsubscribe)

    app, _ = build_app("assembler", settings, [
        Subscription("ExportCataloged", "assembler", "assemble", "Stream the snapshot into the archive."),
        Subscription("ExportRetried", "assembler-retry", "assemble", "A retried export that goes on from assembly."),
    ], bootstrap, "Streams every member through stream-zip into a logged multipart upload.")
    return app
