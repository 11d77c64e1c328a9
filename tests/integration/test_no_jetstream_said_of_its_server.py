""""JetStream is not enabled there" is said of the server the process last connected to, not of the
process for good. Seen: the flag was set when any connection's INFO said "no JetStream" and never
cleared, so a process that later connected to a server with JetStream (the gateway, a service, the test
process) read that server's every "no responders" as "JetStream is not enabled there"."""

from __future__ import annotations

import uuid
from pathlib import Path

import nats.errors
import nats.js.errors
import pytest

from services.devtools.stack.natsserver import NatsServer
from shared.bus.connect import open_nats, unreachable_reason
from tests.support.env import build, settings_for
from tests.support.nojetstream import no_jetstream_server

NOT_ENABLED = "JetStream is not enabled there"


async def test_no_responders_of_a_server_with_jetstream_after_one_without_is_not_blamed_on_jetstream(
        tmp_path: Path, nats_server: NatsServer) -> None:
    with no_jetstream_server() as url:
        # jetstream=False: open_nats would ask the API itself (shared/bus/ready.py) and raise this at once
        without = await open_nats(build(settings_for(tmp_path, url)), "test", persistent=False, jetstream=False)
        try:
            with pytest.raises(nats.js.errors.ServiceUnavailableError) as caught:  # nats-py's "no responders"
                await without.jetstream(timeout=2).account_info()
            assert NOT_ENABLED in unreachable_reason(caught.value)  # said of the server without JetStream
        finally:
            await without.close()

    nc = await open_nats(build(settings_for(tmp_path, nats_server.url)), "test", persistent=False)
    try:
        with pytest.raises(nats.errors.NoRespondersError) as unanswered:
            await nc.request(f"nobody.listens.{uuid.uuid4().hex}", b"", timeout=2)
    finally:
        await nc.close()
    reason = unreachable_reason(unanswered.value)
    assert NOT_ENABLED not in reason, reason
    assert reason == "no responders available for request", reason
