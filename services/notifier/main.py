"""Composition root of the notifier service."""

from __future__ import annotations

from faststream import FastStream

from services.notifier.mail import build_mailer
from services.notifier.service import Notifier, dead_end, should_run
from shared.runtime.service import ServiceRuntime, build_app
from shared.runtime.settings import Settings
from shared.runtime.worker import StepWorker


def create_app(settings: Settings) -> FastStream:
    mailer = build_mailer(settings.mail)  # a mail setting that cannot work stops the start, before connecting

    async def bootstrap(rt: ServiceRuntime) -> None:
        rt.closers.append(mailer.close)
        assert rt.bus is not None
        rt.workers["notify"] = StepWorker("notify", rt.bus, settings, Notifier(settings, mailer), should_run,
                                          dead_end=dead_end(settings))

    app, _ = build_app("notifier", settings, bootstrap, "Sends the export-ready (or failed) email; a courtesy, never a gate.")
    return app
