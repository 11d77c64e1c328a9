"""``show`` says what became of an export's snapshot: archived once the export completed, not when it
was cancelled or failed first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.operator import inspect
from services.operator.cli import _print_show, _view
from shared.core import events as ev
from shared.core.lifecycle import fold
from tests.unit.test_state_fold import ASSEMBLED, CATALOGED, COMPLETED, UPLOAD, E, requested

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
BEFORE = [requested(), ev.CatalogStarted(**E), CATALOGED, UPLOAD]


def _show(events: list[ev.Event], capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, object]]:
    folded = inspect.Folded(fold(events), tuple(enumerate(events, 1)))
    view = _view(folded, None, None, NOW)
    _print_show(view, folded)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("snapshot "))
    return line, view["snapshot"]  # type: ignore[return-value]


@pytest.mark.parametrize(("last", "status"), [(ev.CancelRequested(**E), "cancelled"),
                                              (ev.ExportFailed(**E, step="assemble", reason="boom"), "failed")])
def test_show_says_a_cancelled_or_failed_exports_snapshot_was_never_archived(
        last: ev.Event, status: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Seen: `show` on a cancelled export printed `snapshot …: 3 members, 1.0 KB, 0 errors`, as
    for one whose archive holds them; nothing was archived (the canceller removed the snapshot too)."""
    events = [*BEFORE, last] + ([ev.ExportCancelled(**E, aborted_upload=True)] if status == "cancelled" else [])
    line, snapshot = _show(events, capsys)
    assert line.endswith(f": 3 members, 1.0 KB, 0 errors planned; no archive was made ({status})"), line
    assert snapshot["archived"] is False


def test_show_gives_a_complete_exports_snapshot_as_archived(capsys: pytest.CaptureFixture[str]) -> None:
    line, snapshot = _show([*BEFORE, ASSEMBLED, ev.FinalizeStarted(**E), COMPLETED], capsys)
    assert line.endswith(": 3 members, 1.0 KB, 0 errors"), line
    assert snapshot["archived"] is True
    line, snapshot = _show(BEFORE, capsys)  # under way: it may yet be
    assert line.endswith(": 3 members, 1.0 KB, 0 errors") and snapshot["archived"] is None


def test_show_gives_the_archive_of_a_complete_export_with_its_own_error_count(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Seen: two images deleted from the store while their export was assembled: the archive has them in
    its errors.json (ExportCompleted error_count=2, the person's email and page say so), while `show`
    said only `snapshot …: 3 members, 1.0 KB, 0 errors` and `complete` — the catalog's plan. An operator
    asked "where are my images?" had to read the events' fields to find the archive's count."""
    assembled = ASSEMBLED.model_copy(update={"member_count": 2, "error_count": 2, "size_bytes": 2048})
    completed = COMPLETED.model_copy(update={"error_count": 2, "size_bytes": 2048})
    events = [*BEFORE, assembled, ev.FinalizeStarted(**E), completed]
    folded = inspect.Folded(fold(events), tuple(enumerate(events, 1)))
    view = _view(folded, None, None, NOW)
    _print_show(view, folded)
    out = capsys.readouterr().out.splitlines()
    assert "archive    2 members, 2.0 KB, 2 errors (in its errors.json), sha256 abc, expires 2030-01-01T00:00:00Z" in out, out
    assert view["archive"] == {"members": 2, "sizeBytes": 2048, "errors": 2, "sha256": "abc",
                               "expiresAt": "2030-01-01T00:00:00Z"}
    under_way = inspect.Folded(fold(BEFORE), tuple(enumerate(BEFORE, 1)))
    view = _view(under_way, None, None, NOW)
    _print_show(view, under_way)
    assert view["archive"] is None and not any(x.startswith("archive ") for x in capsys.readouterr().out.splitlines())
