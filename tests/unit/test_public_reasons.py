"""A failed step tells the person which part failed, without internals: the content database's
failure was "An internal error occurred." (its message names a path or a host)."""

from __future__ import annotations

from shared.content.port import ContentUnavailable
from shared.core.reasons import public_reason
from shared.runtime.worker import StepError


def test_the_content_database_failing_is_named_without_its_path() -> None:
    error = ContentUnavailable("the content database /srv/grove/var/content.db cannot be read: disk I/O error")
    reason = public_reason(error, StepError)
    assert reason == "The content database could not be read."
