"""The OpenAPI 3.1 document, built from the pydantic models in :mod:`services.gateway.schemas`."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from services.gateway import schemas as s
from shared import __version__
from shared.core.events import ID_PATTERN

JSON, PROBLEM = "application/json", "application/problem+json"
_PUBLIC: list[dict[str, list[str]]] = []  # no authentication


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(model: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(model.__name__)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    meaning = {400: "Bad request (GROVE-EXPORT-004)", 401: "Not authenticated (GROVE-EXPORT-001)",
               404: "Not found (GROVE-EXPORT-005)", 405: "Method not allowed",
               409: "Conflict: export in progress (002) or not cancellable (006)",
               410: "Expired (GROVE-EXPORT-009)", 413: "Body too large (GROVE-EXPORT-007)",
               422: "Idempotency-Key reused with another body (GROVE-EXPORT-004)",
               412: "If-Match or If-Unmodified-Since no longer holds (GROVE-EXPORT-011)",
               415: "A body not sent as application/json, or in a Content-Encoding the gateway does not decode "
                    "(GROVE-EXPORT-004)",
               416: "Range not satisfiable (GROVE-EXPORT-010)", 429: "Rate limited (GROVE-EXPORT-003)",
               501: "A Transfer-Encoding other than chunked (GROVE-EXPORT-004)",
               503: "Unavailable (GROVE-EXPORT-008)"}
    out: dict[str, Any] = {}
    for status in statuses:
        out[str(status)] = {"description": meaning[status], "content": {PROBLEM: {"schema": _ref("ProblemBody")}}}
    out.get("416", {})["headers"] = {"Content-Range": {"description": "bytes */SIZE: the archive's size.",
                                                       "schema": {"type": "string"}}}
    out.get("401", {})["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    out.get("429", {})["headers"] = {"Retry-After": {"description": "Seconds until a new export is allowed.",
                                                     "schema": {"type": "integer", "minimum": 1}}}
    return out


_EXPORT_ID = {"name": "exportId", "in": "path", "required": True,
              "schema": {"type": "string", "pattern": ID_PATTERN}}
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Repeat a POST safely for 24 h: the same key and body from the same user (the token's "
                                "sub) return the same export; another user's key is its own.",
                "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"}}


def _paths() -> dict[str, Any]:
    return {
        "/api/export": {"post": {
            "operationId": "createExport", "summary": "Start an export of the caller's blog.",
            "parameters": [_IDEMPOTENCY],
            "requestBody": {"required": False, "content": {JSON: {"schema": _ref("ExportRequest")}}},
            "responses": {"201": _ok(s.ExportCreated, "Started (or the same export for a repeated key)."),
                          **_problems(400, 401, 409, 413, 415, 422, 429, 501, 503)}}},
        "/api/export/status/{exportId}": {"get": {
            "operationId": "getExportStatus", "summary": "Poll an export's progress.",
            "parameters": [_EXPORT_ID],
            "responses": {"200": _ok(s.ExportStatus, "The export."), **_problems(401, 404, 503)}}},
        "/api/export/cancel/{exportId}": {"post": {
            "operationId": "cancelExport", "summary": "Cancel a running export.",
            "parameters": [_EXPORT_ID],
            "responses": {"200": _ok(s.Cancelled, "Cancellation recorded."), **_problems(401, 404, 409, 503)}}},
        "/api/export/history": {"get": {
            "operationId": "listExports", "summary": "The tenant's 10 most recent exports.",
            "responses": {"200": _ok(s.History, "Newest first."), **_problems(401, 503)}}},
        "/api/export/download/{key}": {"get": {
            "operationId": "downloadExport", "summary": "Download an archive (filesystem store links).",
            "security": _PUBLIC, "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
                {"name": "exp", "in": "query", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"}},
                {"name": "sig", "in": "query", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
            "responses": {
                "200": {"description": "The ZIP (Range requests are answered with 206).",
                        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                "206": {"description": "Part of the ZIP.",
                        "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
                **_problems(404, 410, 412, 416, 503),
                "429": {"description": "The archive's tenant already has GROVE_DOWNLOADS_PER_TENANT downloads under "
                                       "way (GROVE-EXPORT-012).",
                        "content": {PROBLEM: {"schema": _ref("ProblemBody")}},
                        "headers": {"Retry-After": {"description": "Seconds to wait before trying again.",
                                                    "schema": {"type": "integer", "minimum": 1}}}}}}},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document.", "security": _PUBLIC,
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}}}},
        "/healthz": {"get": {"operationId": "healthz", "summary": "The process is up.", "security": _PUBLIC,
                             "responses": {"200": _ok(s.Health, "Up.")}}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "The bus and the store answer.",
                            "security": _PUBLIC,
                            "responses": {"200": _ok(s.Health, "Ready."), **_problems(503)}}},
    }


def build_openapi() -> dict[str, Any]:
    models = [(s.ExportRequest, "validation")] + [
        (m, "serialization") for m in (s.ExportCreated, s.ExportStatus, s.History, s.HistoryItem,
                                       s.Cancelled, s.Health, s.ProblemBody)]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}",  # type: ignore[arg-type]
                                by_alias=True)
    for model, _mode in models:  # a field an answer leaves out when empty is not required (schemas.Body)
        schema = top["$defs"][model.__name__]
        left_out = {model.model_fields[n].alias or n for n in getattr(model, "omit_when_none", ())}
        if "required" in schema:
            schema["required"] = [r for r in schema["required"] if r not in left_out]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Grove Export API", "version": __version__,
                 "description": "Start, follow, cancel and download exports of a Grove blog. Errors are "
                                "application/problem+json with a GROVE-EXPORT-NNN code."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {"schemas": top["$defs"], "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
