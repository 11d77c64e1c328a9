"""The filesystem store's put on a full disk leaves no temp file: the write is whole or not at all,
and nothing of it stays behind. Seen: `grove-export import` into a tenant with the disk full failed
in one line, and left ``<tenant>/media/.<name>.<hex>.tmp`` holding the first bytes of the person's
image in the images bucket — no listing shows it, and erase-tenant only looks for such files under
``exports/<tenant>/``. The disk is filled here by a file size limit (RLIMIT_FSIZE), which the write
meets as EFBIG, as it meets ENOSPC on a full disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, resource, sys
from pathlib import Path
from shared.objectstore.fs import FilesystemStore

async def main(root):
    (root / "grove-images").mkdir(parents=True)
    store = FilesystemStore(root)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        await store.put("grove-images", "tenant_1/media/photo.jpg", b"x" * 100_000)
    except OSError as e:
        print(type(e).__name__, e.errno)
    else:
        print("stored")

asyncio.run(main(Path(sys.argv[1])))
"""


def test_a_put_cut_short_by_a_full_disk_leaves_no_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.split()[0] != "stored", out.stdout + out.stderr
    left = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    assert left == [], left
