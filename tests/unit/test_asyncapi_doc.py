"""The checked-in AsyncAPI document is the one the code generates (run `make docs` after changing events)."""

from services.devtools.docs import OUT, render
from shared.core import events as ev


def test_the_checked_in_asyncapi_document_equals_the_generated_one() -> None:
    assert OUT.read_text() == render(), "docs/asyncapi.json is stale: run `make docs`"


def test_every_event_is_a_channel_with_its_fields() -> None:
    import json

    doc = json.loads(render())
    assert set(doc["channels"]) == set(ev.EVENT_TYPES)
    schemas = doc["components"]["schemas"]
    assert "user_email" in schemas["ExportRequested"]["properties"]
    assert "part_number" in schemas["PartUploaded"]["properties"]
