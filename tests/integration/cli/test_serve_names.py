"""`grove-export serve` with the stream, subject prefix or KV prefix set in its environment: its
nats-server's users get their permissions on those names, the ones its services then use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.devtools.stack.natsserver import free_port
from services.devtools.stack.supervisor import Stack, local_env


def test_the_local_nats_permissions_follow_the_names_set_in_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: GROVE_STREAM_NAME=MYSTREAM GROVE_KV_PREFIX=mykv GROVE_SUBJECT_PREFIX=myprefix grove-export serve:
    setup (as admin) made MYSTREAM, the services used it, and nats.conf allowed them only EXPORTS,
    grove_* and exports.* — every service logged "permissions violation" and no export ever ran."""
    monkeypatch.setenv("GROVE_STREAM_NAME", "MYSTREAM")
    monkeypatch.setenv("GROVE_KV_PREFIX", "mykv")
    monkeypatch.setenv("GROVE_SUBJECT_PREFIX", "myprefix")
    data, port = tmp_path / "data", free_port()
    stack = Stack(data, port=port, env=local_env(data, port), services=())
    try:
        stack.start()
        conf = (data / "nats.conf").read_text()
        found = json.loads((data / "stack.json").read_text())["env"]
    finally:
        stack.stop()
    assert '"myprefix.*.*.ExportRequested"' in conf and "$JS.API.CONSUMER.MSG.NEXT.MYSTREAM.catalog" in conf
    assert "KV_mykv_heartbeats" in conf
    assert '"exports.' not in conf and ".EXPORTS." not in conf and "KV_grove_" not in conf
    # operator commands in a new shell (no such variables there) find the stack's stream through stack.json
    assert (found["GROVE_STREAM_NAME"], found["GROVE_KV_PREFIX"], found["GROVE_SUBJECT_PREFIX"]) == (
        "MYSTREAM", "mykv", "myprefix")
