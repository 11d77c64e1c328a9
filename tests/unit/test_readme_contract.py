"""Docs that cannot drift: the README's event-contract example is a valid ExportRequested, and the
NATS users' tables (README.md, deploy/README.md) list what the step table allows."""

import re
from pathlib import Path

import pytest

from shared.bus.permissions import ADMIN, USERS
from shared.core import events as ev
from shared.core import steps

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


# -- the NATS users' tables: one row per service user, exactly as the step table says ---------------

DEPLOY_README = README.parent / "deploy" / "README.md"


def _users_table(text: str, after: str) -> dict[str, list[str]]:
    """The markdown table that starts with ``| user |`` after the heading or sentence ``after``:
    user → its cells."""
    lines = text[text.index(after):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| user |"))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def _names(cell: str) -> list[str]:
    """``catalog`, `catalog-retry``` or ``A, B (why)`` → the names, without notes in parentheses."""
    cell = re.sub(r"\([^)]*\)", "", cell).replace("`", "")
    return [n.strip() for n in cell.split(",") if n.strip() not in ("", "–", "-")]


def _kv_roles(cell: str) -> set[str]:
    return {w for w in re.findall(r"\w+", re.sub(r"\([^)]*\)", "", cell)) if w in steps.KV_ROLES}


@pytest.mark.parametrize("path, after", [(README, "**Locked down.**"),
                                         (DEPLOY_README, "## NATS users and permissions")])
def test_the_nats_user_tables_list_exactly_what_the_step_table_allows(path: Path, after: str) -> None:
    rows, name = _users_table(path.read_text(), after), path.relative_to(README.parent)
    assert set(rows) - {ADMIN} == {u.name for u in USERS}, f"{name}: users differ from shared/core/steps.py"
    for u in USERS:
        appends, durables, kv, also = rows[u.name][:4]
        assert _names(appends) == list(u.events), f"{name}: {u.name} appends {list(u.events)}"
        assert _names(durables) == list(u.durables), f"{name}: {u.name} binds {list(u.durables)}"
        assert _kv_roles(kv) == {*u.kv_write, *u.kv_read}, f"{name}: {u.name}'s KV buckets"
        woken = [w.rsplit(".", 1)[-1] for w in u.wakes_on]
        assert all(w == "*" or w in also for w in woken), f"{name}: {u.name} hears {woken}"
        assert ("stream info" in rows[u.name][3]) == u.stream_info, f"{name}: {u.name}'s stream info"
        assert ("STREAM.MSG.GET" in also) == u.reads_at_leader, f"{name}: {u.name}'s reads at the leader"
