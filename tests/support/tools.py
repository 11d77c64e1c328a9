"""Command-line tools tests run: archive readers (unzip, bsdtar, 7z) and setpriv; skip when missing unless
GROVE_REQUIRE_ALL=1."""

import os

from tests.unit.archive.tools import require_tool

__all__ = ["require_tool", "without_dac_override"]


def without_dac_override() -> list[str]:
    """The prefix that runs a command as if it were not root where a folder's mode counts (nothing when it
    is not): setpriv drops the capabilities that let root write a read-only folder (CAP_DAC_OVERRIDE) or
    own every file. The test skips, as for a missing archive reader, when setpriv is not installed."""
    if os.geteuid() != 0:
        return []
    return [require_tool("setpriv", "util-linux"), "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
