"""The headers the README tells a publisher on the event contract to send, sent as written.

Export ids are unique only within a tenant (a gateway of one's own chooses them; the bus takes any
``[A-Za-z0-9_-]{1,64}``), while JetStream drops a repeated ``Nats-Msg-Id`` across the whole stream for
its duplicate window (an hour). A message id that named only the export made a second tenant's request
with the same export id, published within that hour, a "duplicate": the server stored nothing and
answered with the first tenant's sequence, and the publisher, doing exactly what the README says,
believed its export had started."""

from __future__ import annotations

import re
from pathlib import Path

from shared.bus.connect import Bus
from shared.core import events as ev

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_headers(prefix: str, event: ev.Event) -> dict[str, str]:
    """The ``**Headers**`` block of the README's event contract, its placeholders filled in."""
    text = README.read_text()
    section = text[text.index("## The event contract"):]
    block = re.search(r"\*\*Headers\*\*.*?```\n(.*?)```", section, re.S)
    assert block, "no headers block in the event-contract section"
    headers = {}
    for line in block.group(1).strip().splitlines():
        name, _, value = line.partition(": ")
        for field in ("tenant_id", "export_id", "event_id"):
            value = value.replace(f"<{field}>", getattr(event, field))
        headers[name] = value.replace("exports.", f"{prefix}.", 1) if value.startswith("exports.") else value
    assert not any("<" in v for v in headers.values()), headers
    return headers


async def test_two_tenants_requests_with_one_export_id_both_start(bus: Bus) -> None:
    prefix, stored = bus.log.prefix, []
    for tenant in ("tenant_a", "tenant_b"):
        event = ev.ExportRequested(export_id="exp_1", tenant_id=tenant, user_id="u", user_email="a@example.org",
                                   username="ann", producer="their-gateway")
        ack = await bus.js.publish(f"{prefix}.{tenant}.exp_1.ExportRequested", event.to_json(),
                                   headers=documented_headers(prefix, event))
        assert not ack.duplicate, f"{tenant}'s request was taken for another's (seq {ack.seq})"
        stored.append(ack.seq)
    assert stored[0] != stored[1]
    for tenant in ("tenant_a", "tenant_b"):
        state = (await bus.log.load(tenant, "exp_1")).state
        assert state.request is not None and state.request.tenant_id == tenant
