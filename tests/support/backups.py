"""A folder shaped as `grove-export backup` writes one (snapshots of junk bytes, with their checksums):
for the checks restore makes before it connects."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The default settings' streams (GROVE_STREAM_NAME, GROVE_SUBJECT_PREFIX, GROVE_KV_PREFIX unset)
SUBJECTS = {"EXPORTS": "exports.>", "KV_grove_heartbeats": "$KV.grove_heartbeats.>",
            "KV_grove_admission": "$KV.grove_admission.>"}


def backup_folder(folder: Path, edit: Callable[[dict[str, Any]], Any] | None = None,
                  config: Callable[[str, dict[str, Any]], Any] | None = None) -> Path:
    """``edit`` changes the manifest, ``config`` each stream's config, before they are written."""
    folder.mkdir()
    streams = []
    for name, subject in SUBJECTS.items():
        data = name.encode() * 100
        (folder / f"{name}.tar.s2").write_bytes(data)
        meta = {"config": {"name": name, "subjects": [subject]}, "state": {"messages": 1}}
        if config:
            config(name, meta["config"])
        (folder / f"{name}.json").write_text(json.dumps(meta))
        streams.append({"stream": name, "messages": 1, "bytes": len(data), "file": f"{name}.tar.s2",
                        "sha256": hashlib.sha256(data).hexdigest()})
    manifest: dict[str, Any] = {"created": "2026-01-01T00:00:00+00:00", "chunk": 131072, "streams": streams}
    if edit:
        edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
