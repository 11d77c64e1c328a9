"""The OpenAPI document describes exactly the routes the app serves, with problem+json errors."""

from __future__ import annotations

import re

from services.gateway import app as app_module
from services.gateway.app import init_app
from services.gateway.openapi import build_openapi
from shared.runtime.settings import Settings
from tests.support.env import TEST_SECRETS

SETTINGS = Settings(jwt_secret=TEST_SECRETS["jwt"], link_secret=TEST_SECRETS["link"])


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_route_of_the_app_is_documented_and_nothing_else():
    """The API is documented; the export page (/export and its static files) is HTML, not API."""
    app = init_app(SETTINGS)
    served = {(r.method, _shape(r.resource.canonical)) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None and not r.resource.canonical.startswith("/export")}
    documented = {(m.upper(), _shape(p)) for p, ops in build_openapi()["paths"].items() for m in ops}
    assert served == documented


def test_errors_are_problem_json_and_protected_operations_need_a_bearer_token():
    doc = build_openapi()
    assert doc["openapi"] == "3.1.0" and doc["security"] == [{"bearerAuth": []}]
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (path, status)
            public = path in ("/healthz", "/readyz", "/api/openapi.json") or path.startswith("/api/export/download")
            assert (op.get("security") == []) == public, path
    assert doc["components"]["schemas"]["ExportRequest"]["additionalProperties"] is False
    assert "Retry-After" in doc["paths"]["/api/export"]["post"]["responses"]["429"]["headers"]


def test_the_export_page_is_served_when_its_folder_exists(tmp_path, monkeypatch):
    def canonical_paths() -> set[str]:
        return {r.canonical for r in init_app(SETTINGS).router.resources()}

    (tmp_path / "index.html").write_text("<h1>Export</h1>")
    monkeypatch.setattr(app_module, "STATIC", tmp_path)
    assert "/export" in canonical_paths()
    monkeypatch.setattr(app_module, "STATIC", tmp_path / "missing")
    assert "/export" not in canonical_paths()


def test_a_field_every_answer_carries_is_required_in_its_schema():
    """What the gateway always sends is required in the served schema, or a client generated from the
    document makes it optional and a conformance check passes an answer of ``{}``; only the fields an
    answer leaves out when empty (``omit_when_none``) are not."""
    from services.gateway import schemas as s

    doc = build_openapi()["components"]["schemas"]
    for model in (s.ExportCreated, s.ExportStatus, s.History, s.HistoryItem, s.Cancelled, s.Health):
        always = {f.alias or n for n, f in model.model_fields.items() if n not in model.omit_when_none}
        assert set(doc[model.__name__].get("required", [])) == always, model.__name__
    assert set(s.Cancelled().dump()) == set(doc["Cancelled"]["required"])  # the answer carries each of them
    assert "downloadUrl" not in doc["ExportStatus"]["required"]  # left out until complete
