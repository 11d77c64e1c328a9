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
