from __future__ import annotations

import pytest

from tests.unit.archive.tools import require_tool


def test_a_missing_reader_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROVE_REQUIRE_ALL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_tool("grove-no-such-reader", "some-package")


def test_a_missing_reader_fails_when_every_reader_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROVE_REQUIRE_ALL", "1")
    with pytest.raises(pytest.fail.Exception, match="GROVE_REQUIRE_ALL"):
        require_tool("grove-no-such-reader")


def test_an_installed_tool_is_found() -> None:
    assert require_tool("python3").endswith("python3")
