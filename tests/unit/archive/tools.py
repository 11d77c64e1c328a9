"""Third-party archive readers as test oracles: Info-ZIP unzip, libarchive bsdtar, 7-Zip.

A missing tool skips the test, unless GROVE_REQUIRE_ALL=1 (CI), where it fails: a green run must not
silently mean "never checked with unzip". Install: `apt-get install -y unzip libarchive-tools
p7zip-full`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

# tool -> (binary, argv prefix that tests an archive, Debian package)
READERS = {
    "unzip": ("unzip", ["unzip", "-tqq"], "unzip"),
    "bsdtar": ("bsdtar", ["bsdtar", "-xOf"], "libarchive-tools"),  # extracts to stdout: checks CRCs
    "7z": ("7z", ["7z", "t", "-bd", "-bso0", "-bsp0"], "p7zip-full"),
}


def require_tool(binary: str, package: str | None = None) -> str:
    """Path of `binary`, or skip (fail under GROVE_REQUIRE_ALL=1) when it is not installed."""
    found = shutil.which(binary)
    if found:
        return found
    message = f"{binary} not installed" + (f" (apt-get install -y {package})" if package else "")
    if os.environ.get("GROVE_REQUIRE_ALL") == "1":
        pytest.fail(message + " and GROVE_REQUIRE_ALL=1")
    pytest.skip(message)


def check_with_reader(reader: str, archive: Path, timeout: float = 120) -> None:
    """Run one reader's integrity test on `archive`; fail the test on a non-zero exit or a warning."""
    binary, argv, package = READERS[reader]
    require_tool(binary, package)
    done = subprocess.run(
        [*argv, str(archive)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout,
    )
    if done.returncode != 0 or done.stderr.strip():
        pytest.fail(f"{reader} rejected {archive.name} (exit {done.returncode}):\n{done.stderr}")


def check_with_zipfile(archive: Path) -> list[zipfile.ZipInfo]:
    """Python's zipfile: opens, CRC-checks every member, returns the entries."""
    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        return opened.infolist()
