"""Typed keys of what the gateway app holds (set up by :func:`services.gateway.app.init_app`)."""

from __future__ import annotations

from aiohttp import web

from services.gateway.admission_kv import AdmissionStore
from services.gateway.download_slots import DownloadSlots
from services.gateway.readiness import StoreProbe
from services.gateway.readmodel import ReadModel
from shared.bus.connect import Bus
from shared.bus.probe import BusProbe
from shared.objectstore.port import ObjectStore
from shared.runtime.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
BUS = web.AppKey("bus", Bus)
BUS_PROBE = web.AppKey("bus_probe", BusProbe)
STORE = web.AppKey("store", ObjectStore)
READ_MODEL = web.AppKey("read_model", ReadModel)
ADMISSION = web.AppKey("admission", AdmissionStore)
INSTANCE = web.AppKey("instance", str)
READINESS = web.AppKey("readiness", StoreProbe)
DOWNLOADS = web.AppKey("downloads", DownloadSlots)
