"""The gateway's composition root: ``init_app(settings)`` builds the aiohttp application.

Connections (NATS, object store, the SQLite read model and its projector) open and close in
``cleanup_ctx``; state lives under the typed keys of :mod:`services.gateway.keys`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from services.gateway.admission_kv import AdmissionStore, newest_from
from services.gateway.download_slots import DownloadSlots
from services.gateway.downloads import file_response, url_signer
from services.gateway.headers import add_security_headers, close_after_an_upgrade_request
from services.gateway.keys import ADMISSION, BUS, BUS_PROBE, DOWNLOADS, INSTANCE, READ_MODEL, READINESS, SETTINGS, STORE
from services.gateway.openapi import build_openapi
from services.gateway.problems import NotFound, problem_middleware
from services.gateway.projector import Projector
from services.gateway.readiness import StoreProbe
from services.gateway.readmodel import ReadModel
from services.gateway.routes import routes
from shared.bus.connect import connect, wait_for_nats
from shared.bus.probe import BusProbe
from shared.objectstore.factory import open_store
from shared.objectstore.port import ObjectStore
from shared.runtime import secrets
from shared.runtime.settings import Settings, SettingsProblem

STATIC = Path(__file__).parent / "static"
PAGE_CACHE_CONTROL = "no-cache"  # the page and its files: stored, but revalidated before each use
Ctx = Callable[[web.Application], AsyncIterator[None]]


async def _bus(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    await wait_for_nats(settings, "gateway")  # one line per try while NATS is down, not a traceback each
    bus = await connect(settings, "gateway", name=f"grove-gateway-{app[INSTANCE]}")
    app[BUS], app[BUS_PROBE] = bus, BusProbe()
    app[ADMISSION] = AdmissionStore(bus, settings, app[INSTANCE],
                                    newest=lambda tenant: newest_from(app[READ_MODEL], tenant))
    yield
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await bus.close()
    if not bus.nc.is_closed:
        await bus.nc.close()


def _store(given: ObjectStore | None) -> Ctx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        store = given or await open_store(settings, url_signer(settings))
        app[STORE], app[READINESS] = store, StoreProbe()
        yield
        if given is None:
            await store.close()

    return ctx


async def _read_model(app: web.Application) -> AsyncIterator[None]:
    path = app[SETTINGS].read_model_db
    try:
        model = await ReadModel.open(path)
    except sqlite3.Error as e:  # a folder, a place no file can be made, not an SQLite file: it was a traceback
        raise SettingsProblem(f"GROVE_READ_MODEL_DB: the gateway cannot open its read model {path} ({e})") from None
    app[READ_MODEL] = model
    projector = Projector(app[BUS], model)
    projector.start()
    yield
    await projector.stop()
    await model.close()


def init_app(settings: Settings, *, store: ObjectStore | None = None) -> web.Application:
    """The gateway application. ``store`` replaces the configured object store (tests).

    Raises :class:`shared.runtime.secrets.SecretError` when a signing secret is missing or unusable,
    both are one key, or a credential it uses is a placeholder: the gateway never starts with a key
    someone else could know.
    """
    secrets.require_settings(settings, signing=True)
    app = web.Application(middlewares=[problem_middleware], client_max_size=settings.max_body_bytes)
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(close_after_an_upgrade_request)
    app[SETTINGS] = settings
    app[INSTANCE] = uuid.uuid4().hex[:12]
    app[DOWNLOADS] = DownloadSlots(settings.downloads_per_tenant)
    app.cleanup_ctx.extend([_bus, _store(store), _read_model])
    app.add_routes(routes)
    document = json.dumps(build_openapi())

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    app.router.add_get("/api/openapi.json", openapi)
    if STATIC.is_dir():  # the /export page (another team's): index.html and its assets
        # The files there when the gateway starts, by name: an allow-list, never a path walked per
        # request. Served with the downloads' checks, so a bad Range or a stale If-Match is a problem.
        assets = {f.name: f for f in STATIC.iterdir() if f.is_file()}

        async def send(request: web.Request, path: Path | None) -> web.FileResponse:
            if path is None:
                raise NotFound("No such resource.")
            # Asked again on every use (a 304 while unchanged): with only an ETag and Last-Modified, a
            # browser or cache kept them fresh by heuristic for a tenth of their age, so after an
            # upgrade the old script ran against the new API for days.
            return file_response(request, path, await asyncio.to_thread(path.stat),
                                 headers={"Cache-Control": PAGE_CACHE_CONTROL})

        async def page(request: web.Request) -> web.FileResponse:
            return await send(request, assets.get("index.html"))

        async def asset(request: web.Request) -> web.FileResponse:
            return await send(request, assets.get(request.match_info["name"]))

        app.router.add_get("/export", page)
        app.router.add_get("/export/{name}", asset)
    return app
