"""The README's event-contract example is a valid ExportRequested (docs that cannot drift)."""

import re
from pathlib import Path

from shared.core import events as ev

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_of_export_requested_parses_with_every_field() -> None:
    text = README.read_text()
    section = text[text.index("## The event contract"):]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "no JSON example in the event-contract section"
    event = ev.parse_event("ExportRequested", block.group(1))
    documented = set(re.findall(r'"(\w+)":', block.group(1)))
    assert documented == set(ev.ExportRequested.model_fields), "README example misses or adds fields"
    assert isinstance(event, ev.ExportRequested) and ev.is_valid_id(event.export_id)
