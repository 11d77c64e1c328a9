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


@pytest.mark.parametrize(("env", "why"), [
    ({"GROVE_CONCURRENCY": "-1"}, "GROVE_CONCURRENCY: Input should be greater than or equal to 1 (got '-1')"),
    ({"GROVE_TENANT_CONCURRENCY": "0"}, "GROVE_TENANT_CONCURRENCY: Input should be greater than or equal to 1"),
    ({"GROVE_ACK_WAIT_S": "0"}, "GROVE_ACK_WAIT_S: Input should be greater than 0 (got '0')"),
    ({"GROVE_RATE_WINDOW_S": "-5"}, "GROVE_RATE_WINDOW_S: Input should be greater than or equal to 0 (got '-5')"),
    ({"GROVE_PORT": "99999"}, "GROVE_PORT: Input should be less than or equal to 65535 (got '99999')"),
    ({"GROVE_PORT": "0"}, "GROVE_PORT: Input should be greater than or equal to 1"),
    ({"GROVE_METRICS_PORT": "70000"}, "GROVE_METRICS_PORT: Input should be less than or equal to 65535"),
    ({"GROVE_STEP_ATTEMPTS": "0"}, "GROVE_STEP_ATTEMPTS: Input should be greater than or equal to 1"),
    ({"GROVE_HEARTBEAT_TTL_S": "0"}, "GROVE_HEARTBEAT_TTL_S: Input should be greater than 0"),
    ({"GROVE_STALL_AFTER_S": "-1"}, "GROVE_STALL_AFTER_S: Input should be greater than or equal to 0"),
    ({"GROVE_STREAM_REPLICAS": "7"}, "GROVE_STREAM_REPLICAS: Input should be less than or equal to 5"),
    ({"GROVE_MAIL__ATTEMPTS": "0"}, "GROVE_MAIL__ATTEMPTS: Input should be greater than or equal to 1"),
    ({"GROVE_MAIL__SMTP_PORT": "0"}, "GROVE_MAIL__SMTP_PORT: Input should be greater than or equal to 1"),
    ({"GROVE_S3__MAX_ATTEMPTS": "0"}, "GROVE_S3__MAX_ATTEMPTS: Input should be greater than or equal to 1"),
])
def test_a_meaningless_number_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], why: str) -> None:
    """Seen: GROVE_CONCURRENCY=-1 ran as 1, GROVE_PORT=99999 failed only when the gateway bound it."""
    assert refusal(monkeypatch, **env).startswith(why)


def test_zero_is_kept_where_it_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key in ("GROVE_STALL_AFTER_S", "GROVE_METRICS_PORT", "GROVE_RATE_WINDOW_S", "GROVE_DEMO_THROTTLE_S",
                "GROVE_ORPHAN_UPLOAD_AGE_S", "GROVE_RETRY_BASE_DELAY_S"):
        monkeypatch.setenv(key, "0")
    s = Settings()
    assert (s.stall_after_s, s.metrics_port, s.rate_window_s) == (0, 0, 0)
