"""Admission decides from the export's fold, never from the subject of its last message.

Before, admission took the status of the tenant's active export from the type token of its last
stored message whenever that type "decides" a status — without decoding the body. Any message on
the export's subjects that every other reader drops or ignores then decided for it:

* garbage, or a second (valid) ``ExportRequested``, published on a finished export's
  ``…ExportRequested`` subject (the gateway's user may publish there; an outside publisher retrying
  without the expected-sequence header does) read as ``pending``: every new export of the tenant
  was a 409 for good, until an operator's unlock;
* garbage on a running export's ``…ExportFailedAtAssemble`` subject (which the assembler's user may publish) read
  as ``failed``: a second export was admitted beside the running one, and the hour was free.
"""

from __future__ import annotations

import json

import pytest

from shared.core import events as ev


async def published(pipeline, tenant: str, export_id: str, type_name: str, body: bytes) -> None:
    subject = f"{pipeline.settings.subject_prefix}.{tenant}.{export_id}.{type_name}"
    await pipeline.bus.js.publish(subject, body)  # no expected-sequence header: the server cannot require one


@pytest.mark.parametrize("repeat", ["garbage", "a second request"])
async def test_a_message_after_a_finished_export_does_not_lock_the_tenant_out(gateway, pipeline, headers_for, repeat):
    first = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    await pipeline.fail("tenant_a", first)  # a failed export leaves the hour free
    body = b"{not json" if repeat == "garbage" else ev.ExportRequested(
        tenant_id="tenant_a", export_id=first, user_id="u1", user_email="u1@example.org", username="u").to_json()
    await published(pipeline, "tenant_a", first, "ExportRequested", body)
    assert (await pipeline.bus.log.load("tenant_a", first)).state.status == "failed"  # what every reader folds

    again = await gateway.post("/api/export", json={}, headers=headers_for())
    assert again.status == 201, await again.text()


async def test_a_dropped_message_on_a_running_exports_subjects_does_not_admit_a_second_export(
        gateway, pipeline, headers_for, problem):
    first = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    await pipeline.assemble("tenant_a", first)
    await published(pipeline, "tenant_a", first, "ExportFailedAtAssemble",
                    json.dumps({"tenant_id": "tenant_a", "export_id": first}).encode())  # no step, no reason
    assert (await pipeline.bus.log.load("tenant_a", first)).state.status == "uploading"

    again = await gateway.post("/api/export", json={}, headers=headers_for())
    body = await problem(again, 409, "GROVE-EXPORT-002")
    assert body["activeExportId"] == first
