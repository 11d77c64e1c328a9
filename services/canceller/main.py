"""Composition root of the canceller: its own service with its own durable (``canceller``) and
NATS user, so a cancel completes with every assembler down (``grove-export run canceller``).

The assemblers still stop a cancelled export's task at once (a plain CancelRequested
subscription as a wake-up); this service aborts the upload and records ExportCancelled.
"""

from __future__ import annotations

from faststream import FastStream

from services.canceller.service import Canceller, should_run
from shared.objectstore.factory import open_store
from shared.runtime.service import ServiceRuntime, build_app
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker


def create_app(settings: Settings) -> FastStream:
    async def bootstrap(rt: ServiceRuntime) -> None:
        store = await open_store(settings)
        rt.closers.append(store.close)
        assert rt.bus is not None
        rt.workers["cancel"] = StepWorker("cancel", rt.bus, settings, Canceller(settings, store), should_run)

    app, _ = build_app("canceller", settings, bootstrap, "Aborts a cancelled export's upload and records ExportCancelled.")
    return app
