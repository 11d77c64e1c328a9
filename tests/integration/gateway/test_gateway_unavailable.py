"""When the bus is down the gateway says so (008) instead of hanging; reads of the model still work."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from services.gateway.keys import BUS, READ_MODEL
from tests.support.wait import until as until_found

TURN_S = 6.0  # NATS frozen or resumed: /readyz says so within this
ANSWER_S = 3.0  # and every answer comes within this, whatever NATS does


async def until(condition, timeout: float) -> None:
    """Poll ``condition`` with a deadline."""
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_lost_bus_makes_readiness_and_writes_503_and_recovers(gateway, nats_server, headers_for, problem):
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    nats_server.stop()
    await until(lambda: not gateway.app[BUS].nc.is_connected, 10)
    await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    await problem(await gateway.post("/api/export", json={}, headers=headers_for("tenant_b")), 503,
                  "GROVE-EXPORT-008")
    await problem(await gateway.post(f"/api/export/cancel/{export_id}", headers=headers_for()), 503,
                  "GROVE-EXPORT-008")
    cached = await gateway.get(f"/api/export/status/{export_id}", headers=headers_for())
    assert cached.status == 200  # served from the read model
    assert (await gateway.get("/healthz")).status == 200

    nats_server.start()
    await until(lambda: gateway.app[BUS].nc.is_connected, 20)
    assert (await gateway.get("/readyz")).status == 200
    again = await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))
    assert again.status == 201, await again.text()
    bus = gateway.app[BUS]
    last = int((await bus.js.stream_info(bus.log.stream)).state.last_seq)
    assert await gateway.app[READ_MODEL].wait_for(last, 15.0), "the projector did not resume after the restart"


async def test_an_event_log_that_refuses_appends_is_a_503_not_an_internal_error(gateway, headers_for, problem):
    """Seen: when JetStream kept refusing the request's append with a 503 (its storage full:
    'insufficient resources', or a stream at its byte limit; a leader election that does not end), the
    gateway retried it for some 6 s and then answered 500 GROVE-EXPORT-000, 'Something went wrong on our
    side': the event log raised its generic error for a 503 once out of retries, where a bus that does
    not answer is LogUnavailable (503, GROVE-EXPORT-008; a step naks and tries later, not an attempt).
    Here the stream is made to refuse new messages (its byte limit reached, discard new)."""
    from dataclasses import replace

    from nats.js.api import DiscardPolicy

    bus = gateway.app[BUS]
    info = await bus.js.stream_info(bus.log.stream)
    await bus.js.update_stream(replace(info.config, discard=DiscardPolicy.NEW,
                                       max_bytes=int(info.state.bytes or 0) + 64))
    async with asyncio.timeout(20):
        await problem(await gateway.post("/api/export", json={}, headers=headers_for("tenant_full")), 503,
                      "GROVE-EXPORT-008")


async def test_a_log_whose_stream_no_server_answers_for_is_a_503_not_an_internal_error(gateway, headers_for,
                                                                                        problem):
    """Seen: with the bus up but no server answering for the stream (its replicas down; here it is
    gone), a status or a cancel that reads the log got 500 GROVE-EXPORT-000: the log's reads are
    batched direct gets, sent with a reply subject of their own, and the server's "no responders"
    answer (a 503 status on that subject) came out as the reader's generic error, where a bus that does
    not answer is LogUnavailable (503, GROVE-EXPORT-008; a step naks and tries later, not an attempt)."""
    bus = gateway.app[BUS]
    await bus.js.delete_stream(bus.log.stream)
    unknown = "exp_0123456789abcdef01234567"  # in no read model: folded from the log
    await problem(await gateway.get(f"/api/export/status/{unknown}", headers=headers_for()), 503, "GROVE-EXPORT-008")
    await problem(await gateway.post(f"/api/export/cancel/{unknown}", headers=headers_for()), 503, "GROVE-EXPORT-008")


async def test_a_direct_get_the_server_answers_with_another_error_is_a_503_not_an_internal_error(
        gateway, headers_for, problem, monkeypatch, caplog):
    """Seen: only the "no responders" answer (503) of a direct get was the log being unavailable; any other
    error status the server answers a read of the log with (here its "408 Bad Request", to a request it
    will not serve) made a status or a cancel that reads the log a 500 GROVE-EXPORT-000, with a
    traceback in the log. The log could not be read for this request: 503 GROVE-EXPORT-008, and the log
    says the server's status, without a traceback."""
    from shared.eventlog import directget

    exchange = directget._exchange

    async def refused(js, stream, request, timeout):  # the real server, asked what it refuses: a get by
        # sequence and by start time both, and a multi-last get that also asks by sequence
        also = {"seq": 1, "next_by_subj": request["multi_last"][0]} if "multi_last" in request else {
            "start_time": "2020-01-01T00:00:00Z"}
        return await exchange(js, stream, {**request, **also}, timeout)

    monkeypatch.setattr(directget, "_exchange", refused)
    unknown = "exp_0123456789abcdef01234567"  # in no read model: folded from the log
    with caplog.at_level("WARNING"):
        await problem(await gateway.get(f"/api/export/status/{unknown}", headers=headers_for()), 503,
                      "GROVE-EXPORT-008")
        await problem(await gateway.post(f"/api/export/cancel/{unknown}", headers=headers_for()), 503,
                      "GROVE-EXPORT-008")
    said = [r for r in caplog.records if r.name == "services.gateway.problems"]
    assert [r.getMessage().split(":")[0] for r in said] == [f"unavailable on GET /api/export/status/{unknown}",
                                                            f"unavailable on POST /api/export/cancel/{unknown}"]
    assert all("408 Bad Request" in r.getMessage() and not r.exc_info for r in said)  # the status, no traceback


async def test_a_frozen_bus_makes_readiness_503_within_seconds_and_ready_again_when_it_resumes(gateway, nats_server,
                                                                                                problem):
    """Seen: a nats-server that stopped answering without closing the connection (frozen; a partition that
    drops packets) left /readyz at 200 for about 4 minutes — the client stays "connected" until its own
    pings go stale (nats-py: every 120 s, 2 outstanding) — and the load balancer kept sending the gateway
    requests that each waited and failed. /readyz now asks NATS for a round trip (at most once a
    second, 2 s at most): 503 within seconds of the freeze, 200 within seconds of the server resuming,
    and never an answer that waits on the frozen server."""
    async def readyz() -> tuple[float, Any]:
        started = time.monotonic()
        answer = await gateway.get("/readyz")
        took = time.monotonic() - started
        assert took <= ANSWER_S, f"/readyz took {took:.1f} s with NATS frozen"
        return took, answer

    assert (await readyz())[1].status == 200
    pid = nats_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        frozen = time.monotonic()

        async def not_ready() -> Any:
            answer = (await readyz())[1]
            return answer if answer.status == 503 else None

        answer = await until_found(not_ready, TURN_S, 0.1, "/readyz 503 with NATS frozen")
        assert time.monotonic() - frozen <= TURN_S
        body = await problem(answer, 503, "GROVE-EXPORT-008")
        assert body["detail"] == "The event bus did not answer."
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()

    async def ready() -> bool:
        return (await readyz())[1].status == 200

    await until_found(ready, TURN_S, 0.1, "/readyz 200 once NATS resumed")
    assert time.monotonic() - resumed <= TURN_S


async def test_readiness_pings_the_bus_at_most_once_a_second_however_many_ask(gateway, monkeypatch):
    """/readyz needs no token: 50 calls at once share one PING, and its answer stands for a second."""
    from shared.runtime import probe as shared_probe

    nc, pings = gateway.app[BUS].nc, []
    send_ping = nc._send_ping

    async def counted(future=None):
        pings.append(time.monotonic())
        await send_ping(future)

    monkeypatch.setattr(nc, "_send_ping", counted)
    monkeypatch.setattr(shared_probe, "FRESH_S", 60.0)  # a loaded machine may take over a second for the 50
    answers = await asyncio.gather(*(gateway.get("/readyz") for _ in range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert len(pings) == 1  # one round trip for the 50
    assert (await gateway.get("/readyz")).status == 200 and len(pings) == 1  # within the second: its answer
    monkeypatch.setattr(shared_probe, "FRESH_S", 0.0)  # the second is over
    assert (await gateway.get("/readyz")).status == 200 and len(pings) == 2


async def test_a_frozen_bus_makes_writes_503_within_seconds_not_after_the_bus_timeout(gateway, nats_server,
                                                                                     headers_for, problem):
    """Seen: with NATS frozen (connected, not answering) a POST /api/export waited out the bus's 10 s
    request timeout for its 503, and so did every request behind it. Writes now ask the readiness probe
    first (a PING within 2 s, shared): once it has found the bus frozen, each answers within ANSWER_S (the
    probe's last "answered" stands for a second, so a write in that second still waits the timeout), and
    the first write after the server resumes is taken."""
    export_id = (await (await gateway.post("/api/export", json={}, headers=headers_for())).json())["exportId"]
    pid = nats_server.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        async def found_frozen() -> bool:
            return (await gateway.get("/readyz")).status == 503

        await until_found(found_frozen, TURN_S, 0.1, "/readyz 503 with NATS frozen")
        for method, path, tenant in (("POST", "/api/export", "tenant_b"), ("POST", "/api/export", "tenant_c"),
                                     ("POST", f"/api/export/cancel/{export_id}", None)):
            started = time.monotonic()
            answer = await gateway.request(method, path, json={},
                                           headers=headers_for(tenant) if tenant else headers_for())
            took = time.monotonic() - started
            await problem(answer, 503, "GROVE-EXPORT-008")
            assert took <= ANSWER_S, f"{method} {path} took {took:.1f} s with NATS frozen"
    finally:
        os.kill(pid, signal.SIGCONT)

    async def taken() -> Any:
        answer = await gateway.post("/api/export", json={}, headers=headers_for("tenant_b"))
        return answer if answer.status == 201 else None

    await until_found(taken, TURN_S, 0.1, "POST /api/export taken once NATS resumed")
