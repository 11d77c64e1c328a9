"""Composition root of the catalog service."""

from __future__ import annotations

from faststream import FastStream

from services.catalog.service import Catalog, should_run
from shared.content.factory import content_source
from shared.objectstore.factory import open_store
from shared.runtime.service import ServiceRuntime, build_app
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker


def create_app(settings: Settings) -> FastStream:
    async def bootstrap(rt: ServiceRuntime) -> None:
        store = await open_store(settings)
        rt.closers.append(store.close)
        assert rt.bus is not None
        content = content_source(settings)
        rt.closers.append(content.close)
        work = Catalog(settings, store, content)
        rt.workers["catalog"] = StepWorker("catalog", rt.bus, settings, work, should_run)

    app, _ = build_app("catalog", settings, bootstrap, "Reads the tenant's content once and freezes the export's snapshot.")
    return app
