"""What running gateways serve after ``grove-export erase-tenant`` (what README, *Erase*, tells the
operator): a read model the command was given is cleared in place and the running gateway stops
showing the export at once (its status folds the purged log: 404); a read model it could not reach
(``--no-read-model``, an emptyDir) keeps serving the row — the requester's address in it — until
that gateway runs on a read model rebuilt from the log. ``replay`` swaps a new file in, which a
running gateway does not see: restart it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.gateway.keys import READ_MODEL

ROOT = Path(__file__).resolve().parents[3]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)


async def _seen(client, headers, export_id: str) -> tuple[int, list[str]]:
    status = (await client.get(f"/api/export/status/{export_id}", headers=headers)).status
    history = await (await client.get("/api/export/history", headers=headers)).json()
    return status, [e["exportId"] for e in history["exports"]]


async def test_a_running_gateway_serves_an_erased_export_until_its_read_model_is_cleared_or_rebuilt(
        gateway, start_gateway, settings, settings_for, pipeline, headers_for, tmp_path):
    reachable = await start_gateway(1)
    elsewhere = await start_gateway(2)  # e.g. a replica whose read model is on an emptyDir
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    await pipeline.complete("tenant_a", export_id)
    await pipeline.settle(gateway, reachable, elsewhere)
    for client in (reachable, elsewhere):
        assert await _seen(client, headers_for(), export_id) == (200, [export_id])

    env = {"GROVE_NATS_URL": settings.nats_url, "GROVE_STORE_ROOT": str(settings.store_root),
           "GROVE_READ_MODEL_DB": str(settings.read_model_db), "GROVE_MAIL__OUTBOX_DIR": str(tmp_path / "outbox")}
    out = cli(env, "erase-tenant", "tenant_a", "--read-model", str(settings_for(1).read_model_db),
              "--by", "ada", "--reason", "gdpr")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "removed 1 read-model rows" in out.stdout, out.stdout

    # cleared in place: the running replica no longer has the row, and the log has no events to fold
    assert await _seen(reachable, headers_for(), export_id) == (404, [])
    # not given to the command: still served, with the requester's address in its table
    assert await _seen(elsewhere, headers_for(), export_id) == (200, [export_id])
    assert [r for r in await elsewhere.app[READ_MODEL].dump() if "tenant_a" in r]

    # `replay` rebuilds the file from the log — the running replica still reads the file it opened
    replayed = cli({**env, "GROVE_READ_MODEL_DB": str(settings_for(2).read_model_db)}, "replay")
    assert replayed.returncode == 0, replayed.stderr
    assert await _seen(elsewhere, headers_for(), export_id) == (200, [export_id])
    # … until it is restarted on it; a replica started on a fresh read model never had it
    await elsewhere.close()
    restarted = await start_gateway(2)
    fresh = await start_gateway(3)
    # another tenant's export after the erasure: once a replica shows it, it has folded the whole log
    other = (await (await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))).json())["exportId"]
    await pipeline.settle(restarted, fresh)
    for client in (restarted, fresh):
        assert await _seen(client, headers_for("tenant_b"), other) == (200, [other])
        assert await _seen(client, headers_for(), export_id) == (404, [])
