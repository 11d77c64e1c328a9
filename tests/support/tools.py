"""Command-line archive readers (unzip, bsdtar, 7z): skip when missing unless GROVE_REQUIRE_ALL=1."""

from tests.unit.archive.tools import require_tool

__all__ = ["require_tool"]
