"""A bad setting is refused in one line that names its environment variable and what is wrong."""

from __future__ import annotations

import os

import pytest

from shared.runtime.settings import Settings, explain


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - pydantic's or pydantic-settings' error
        Settings()
    return explain(caught.value)


def test_the_line_names_the_variable_the_problem_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: `invalid settings: 1 validation error for Settings`, and nothing else."""
    assert refusal(monkeypatch, GROVE_STORE="nope") == "GROVE_STORE: Input should be 'fs' or 's3' (got 'nope')"
    both = refusal(monkeypatch, GROVE_PORT="abc", GROVE_MAIL__BACKEND="x")
    assert both.split("; ") == [
        "GROVE_PORT: Input should be a valid integer, unable to parse string as an integer (got 'abc')",
        "GROVE_MAIL__BACKEND: Input should be 'outbox', 'smtp' or 'http' (got 'x')"]
    assert refusal(monkeypatch, GROVE_S3="{") == \
        "GROVE_S3: not a JSON object (set its fields one by one, e.g. GROVE_S3__FIELD)"


def test_a_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    line = refusal(monkeypatch, GROVE_CONTENT_DSN="mysql://grove:hunter2@db/grove")
    assert line.startswith("GROVE_CONTENT_DSN: content DSN must be") and "hunter2" not in line, line
