"""Composition root of the finalizer service."""

from __future__ import annotations

from faststream import FastStream

from services.finalizer.service import Finalizer, should_run
from shared.objectstore.factory import open_store
from shared.runtime.service import ServiceRuntime, build_app
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker


def create_app(settings: Settings) -> FastStream:
    async def bootstrap(rt: ServiceRuntime) -> None:
        store = await open_store(settings)
        rt.closers.append(store.close)
        assert rt.bus is not None
        rt.workers["finalize"] = StepWorker("finalize", rt.bus, settings, Finalizer(settings, store), should_run)

    app, _ = build_app("finalizer", settings, bootstrap, "Completes the multipart upload and records size, counts and SHA-256.")
    return app
