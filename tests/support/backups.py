"""A folder shaped as `grove-export backup` writes one (snapshots holding no message and no consumer,
with their checksums): for the checks restore makes before it connects. And snapshots as nats-server
writes them (S2-framed; its archive format or a tar), with what a test puts in them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.operator.restorable import setup_configs
from shared.runtime.settings import Settings

NATSARC = b"NATSARC1"


def s2_framed(data: bytes) -> bytes:
    """``data`` as an S2 stream of uncompressed chunks (their CRCs left zero: only read here)."""
    out = b"\xff\x06\x00\x00S2sTwO"
    for i in range(0, len(data), 65536):
        piece = data[i:i + 65536]
        out += b"\x01" + (len(piece) + 4).to_bytes(3, "little") + b"\x00" * 4 + piece
    return out


def _uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
    return out + bytes([n])


def archive_entry(name: str, data: bytes, seq: int = 0) -> bytes:
    """One entry of nats-server's NATSARC1 archive (server/archive): name length, timestamp, sequence,
    header size, payload size, name, payload."""
    return (_uvarint(len(name.encode())) + _uvarint(0) + _uvarint(seq) + _uvarint(0) + _uvarint(len(data))
            + name.encode() + data)


def archive_snapshot(consumers: dict[str, dict[str, Any]] | None = None) -> bytes:
    """A NATSARC1 snapshot as nats-server 2.15 writes it: state.json, the consumers, the end."""
    consumers = consumers or {}
    body = NATSARC + archive_entry("state.json", json.dumps({"messages": 0, "consumer_count": len(consumers)}).encode())
    for name, config in consumers.items():
        body += archive_entry(f"consumers/{name}", json.dumps({"config": config, "state": {}}).encode())
    return s2_framed(body + archive_entry("", b""))

# The default settings' streams (GROVE_STREAM_NAME, GROVE_SUBJECT_PREFIX, GROVE_KV_PREFIX unset)
SUBJECTS = {"EXPORTS": "exports.>", "KV_grove_heartbeats": "$KV.grove_heartbeats.>",
            "KV_grove_admission": "$KV.grove_admission.>"}


def backup_folder(folder: Path, edit: Callable[[dict[str, Any]], Any] | None = None,
                  config: Callable[[str, dict[str, Any]], Any] | None = None) -> Path:
    """``edit`` changes the manifest, ``config`` each stream's config, before they are written."""
    folder.mkdir()
    made = setup_configs(Settings(stream_name="EXPORTS", subject_prefix="exports", kv_prefix="grove"))
    streams = []
    for name, subject in SUBJECTS.items():
        data = archive_snapshot()
        (folder / f"{name}.tar.s2").write_bytes(data)
        meta = {"config": {**made[name], "subjects": [subject]}, "state": {"messages": 1}}
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
