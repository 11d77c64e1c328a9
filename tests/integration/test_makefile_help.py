"""`make` with no target, in a fresh clone: what a person types first when they do not know the targets."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]


def test_make_alone_lists_the_targets_and_installs_nothing(tmp_path: Path) -> None:
    """Seen: `make` alone installed the virtualenv quietly, or, once installed, said only
    "make: '.venv/.installed' is up to date."."""
    require_tool("make", "make")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")  # a clone with nothing installed
    out = subprocess.run(["make"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    for target in ("make run", "make serve", "make test", "make chaos", "make lint", "make docs", "make bench"):
        assert f"{target}:" in out.stdout, (target, out.stdout)
    assert not (tmp_path / ".venv").exists()
