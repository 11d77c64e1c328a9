"""Trust nothing on the bus: each attack of issue 16, tried with a service user's real credentials on a
real nats-server locked down with the generated accounts and permissions.

Each attack is judged by what users see: the server refuses the call (a permissions violation; the
request gets no answer), nothing changed on the server (the admin's view), and — in the last test,
with every service running as its own user — the victim's status and history are unchanged and a
legitimate export started alongside completes.

The layout (``shared/bus/permissions.py``): the stream, the buckets and ``admin`` live in the NATS
account ``STORE``; each service user alone in ``SVC_<user>`` (written "SVC" below), which has no JetStream
and reaches STORE only through service imports generated from its allow-lists — it calls JetStream under
``$JS.STORE.API``; appends, KV puts and acks keep their names. No permission checks a reply subject,
and the server answers a JetStream request inside the requester's account. On the one account of
before, a service user could aim a direct get's copy of a body it stored (or a PubAck) at any subject:
the stream or bucket listening there stored it, and the JetStream API ran it as a call of the account.
In SVC nothing stores or runs such an answer, and a pull's delivery (which carries a reply subject of
its own) aimed at one of the account's imports reaches only a call that user may make anyway. The tests of those attacks prove that as the service
user (``_aimed_stores_nothing``), then plant the same message as admin (``_plant``), as a log written
before the split may hold it, and prove every reader still drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig, RePublish, StreamConfig
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from services.devtools.stack.natsserver import NatsServer, free_port
from services.gateway.auth import make_token
from shared.bus.connect import Bus, connect
from shared.bus.permissions import ADMIN, JS_API, SERVICE_API, USERS
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core import events as ev
from shared.core import steps
from shared.eventlog.jetstream import Conflict
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.cluster.procs import LAUNCH, Procs, connect_bus
from tests.cluster.secured import PASSWORDS, Secured, connect_as
from tests.support.env import to_env
from tests.support.wait import until

SERVICE_USERS = [u.name for u in USERS]


async def _refused(nc: nats.NATS, errors: list[str], subject: str, payload: bytes = b"") -> None:
    """The request gets no answer and the server reports a publish violation for ``subject``."""
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await nc.request(subject, payload, timeout=0.5)

    async def reported() -> bool:  # that subject, quoted: not one it begins (CONSUMER.CREATE.<stream>.<durable>)
        return any("violation for publish" in e.lower() and f'"{subject.lower()}"' in e.lower() for e in errors)

    await until(reported, 5, 0.05, f"a publish violation for {subject}")


async def _sub_refused(nc: nats.NATS, errors: list[str], subject: str) -> None:
    await nc.subscribe(subject)
    await nc.flush()

    async def reported() -> bool:
        return any("violation for subscription" in e.lower() and subject.lower() in e.lower() for e in errors)

    await until(reported, 5, 0.05, f"a subscription violation for {subject}")


@pytest.fixture
async def admin(secured: Secured) -> AsyncIterator[Bus]:
    """The admin set-up (stream, buckets, durables), as ``grove-export setup`` does it."""
    bus = await connect_bus(secured.settings, [secured.server.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])
    yield bus
    await bus.close()


async def _topology(admin: Bus, stream: str) -> tuple[dict, list[str], list[str]]:
    info = await admin.js.stream_info(stream)
    consumers = sorted(c.name for c in await admin.js.consumers_info(stream))
    streams = sorted(await admin.js.streams_info(), key=lambda s: s.config.name)
    return info.config.as_dict(), consumers, [s.config.name for s in streams]


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_every_service_user_is_refused_every_jetstream_admin_call(secured: Secured, admin: Bus,
                                                                        user: str) -> None:
    """Every admin call is refused under the user's own JetStream API (``$JS.STORE.API``, which STORE
    imports only the calls its allow-list names) and under the account's own of before (``$JS.API``,
    which SVC has no JetStream to answer): a publish violation for each, and nothing changed."""
    s = secured.settings
    stream, kv = s.stream_name, f"KV_{s.kv_prefix}_heartbeats"
    before = await _topology(admin, stream)
    errors: list[str] = []
    nc = await connect_as(secured.server.url, user, errors)
    side = StreamConfig(name="SIDE", subjects=["side.>"],
                        republish=RePublish(src=">", dest=f"{s.subject_prefix}.t.e.CancelRequested"))
    other = next(c.durable for c in steps.all_consumers() if c.durable not in
                 {c.durable for c in steps.consumers_of(user)})
    hijack = ConsumerConfig(durable_name=other, filter_subject=f"{s.subject_prefix}.>")
    try:
        admin_calls = [  # under each API prefix below
            (".INFO", b""),
            (".STREAM.CREATE.SIDE", json.dumps(side.as_dict()).encode()),  # the RePublish side channel
            (f".STREAM.UPDATE.{stream}", json.dumps(side.as_dict()).encode()),
            (f".STREAM.DELETE.{stream}", b""),
            (f".STREAM.PURGE.{stream}", b""),
            (f".STREAM.MSG.DELETE.{stream}", b'{"seq": 1}'),
            # the log's leader read is the catalog's and assembler's (a delete-deciding look), under their own API
            *([] if steps.service(user).reads_at_leader else [(f".STREAM.MSG.GET.{stream}", b'{"seq": 1}')]),
            (".STREAM.NAMES", b""),
            (f".CONSUMER.CREATE.{stream}.{other}", json.dumps(
                {"stream_name": stream, "config": hijack.as_dict()}).encode()),  # re-create with another filter
            (f".CONSUMER.DURABLE.CREATE.{stream}.{other}", json.dumps(
                {"stream_name": stream, "config": hijack.as_dict()}).encode()),
            (f".CONSUMER.CREATE.{stream}", json.dumps(
                {"stream_name": stream, "config": {"deliver_policy": "all"}}).encode()),  # an ephemeral reader
            (f".CONSUMER.PAUSE.{stream}.{other}", b'{"pause_until": "2099-01-01T00:00:00Z"}'),
            (f".CONSUMER.DELETE.{stream}.{other}", b""),
            (f".CONSUMER.UNPIN.{stream}.{other}", b'{"group": "g"}'),
            (f".CONSUMER.RESET.{stream}.{other}", b"{}"),
            (f".CONSUMER.INFO.{stream}.{other}", b""),
            (f".CONSUMER.MSG.NEXT.{stream}.{other}", b'{"batch": 1}'),  # pull another's deliveries
            (f".CONSUMER.LIST.{stream}", b""),
            (f".STREAM.CREATE.KV_{s.kv_prefix}_evil", b"{}"),
            (f".STREAM.DELETE.{kv}", b""),
            (f".STREAM.PURGE.{kv}", b""),
            (".ACCOUNT.PURGE", b""),
            (".SERVER.REMOVE", b""),
            (f".STREAM.SNAPSHOT.{stream}", b"{}"),
        ]
        calls = [(api + call, payload) for api in (JS_API, SERVICE_API) for call, payload in admin_calls]
        if steps.service(user).reads_at_leader:  # the log's leader read (a delete-deciding look): only its own API
            calls.append((f"{JS_API}.STREAM.MSG.GET.{stream}", b'{"seq": 1}'))
        await asyncio.gather(*(_refused(nc, errors, subject, payload) for subject, payload in calls))
        # Acks of another service's deliveries are refused too (and answer nothing anyway).
        await nc.publish(f"$JS.ACK.{stream}.{other}.1.1.1.1.0", b"+TERM")
        await nc.flush()

        async def ack_refused() -> bool:
            return any(f"$js.ack.{stream}.{other}".lower() in e.lower() for e in errors)

        await until(ack_refused, 5, 0.05, "an ack-subject publish violation")
        # Another user's inbox, the shared _INBOX and the whole log as core messages are not ours to watch.
        for subject in (f"_INBOX_{other.split('-')[0]}.>", "_INBOX.>", f"{s.subject_prefix}.>", "$JS.ACK.>"):
            if user == "gateway" and subject.startswith(s.subject_prefix):
                continue  # the gateway hears every new event (a wake-up for its projector); it reads them anyway
            await _sub_refused(nc, errors, subject)
    finally:
        await nc.close()
    assert await _topology(admin, stream) == before, "a refused call changed the server"
    assert sorted(c.durable for c in steps.all_consumers()) == before[1]


async def test_a_rollup_on_its_own_key_cannot_wipe_a_bucket(secured: Secured, admin: Bus) -> None:
    """``Nats-Rollup: all`` on a key a user may write purged the whole bucket (KV streams allowed rollup
    headers): the notifier's own heartbeat key wiped every other step's heartbeat (the janitor then
    fails those exports as abandoned), the gateway's any admission slot."""
    s = secured.settings
    hb = f"{s.kv_prefix}_heartbeats"
    keys = {f"{step.step}.t_v.e_v": b"alive" for step in steps.STEPS}
    for key, value in keys.items():
        await admin.heartbeats.put(key, value)
    await admin.admission.put("tenant.t_v", b"slot")
    for user, subject in [*((u.name, f"$KV.{hb}.{u.steps[0]}.t_x.e_x") for u in USERS if "heartbeats" in u.kv_write),
                          ("gateway", f"$KV.{s.kv_prefix}_admission.tenant.t_x")]:
        nc = await connect_as(secured.server.url, user)
        try:
            with pytest.raises(nats.js.errors.APIError):
                await nc.jetstream().publish(subject, b"x", headers={"Nats-Rollup": "all"}, timeout=2)
            for rollup in ("sub", "all"):  # nor a rollup header on a key's delete
                with pytest.raises(nats.js.errors.APIError):
                    await nc.jetstream().publish(subject, b"", timeout=2,
                                                 headers={"KV-Operation": "PURGE", "Nats-Rollup": rollup})
        finally:
            await nc.close()
    for key, value in keys.items():
        assert (await admin.heartbeats.get(key)).value == value, key
    assert (await admin.admission.get("tenant.t_v")).value == b"slot"


async def _as_service(secured: Secured, user: str) -> Bus:
    """A bus as the services open theirs (shared.bus.connect: its client marks stored answers)."""
    settings = secured.settings.model_copy(update={"nats_user": user, "nats_password": SecretStr(PASSWORDS[user])})
    return await connect(settings, user)


def _own(s: Settings, user: str = "notifier") -> str:
    """A subject of the user's own (the notifier's: NotificationSent, which it may append to any export)."""
    return f"{s.subject_prefix}.t_x.e_x.{steps.appends_of(user)[0]}"


async def _lasts(admin: Bus) -> dict[str, int]:
    return {i.config.name: i.state.last_seq for i in await admin.js.streams_info()}


async def _stored_since(admin: Bus, lasts: dict[str, int]) -> list[tuple[str, str]]:
    """(stream, subject) of every message the log and the buckets stored past ``lasts``."""
    stored = []
    for name, last in lasts.items():
        for seq in range(last + 1, (await admin.js.stream_info(name)).state.last_seq + 1):
            try:
                stored.append((name, (await admin.js.get_msg(name, seq)).subject))
            except NotFoundError:  # a bucket keeps one value a key
                continue
    return stored


async def _aim(nc: nats.NATS, s: Settings, own: str, replies: Sequence[str], body: bytes = b"{}",
               headers: dict[str, str] | None = None, *, puback: bool = False) -> None:
    """As ``nc``'s service user: store ``body`` on ``own`` (a subject it may append to), then aim the
    server's answer at each of ``replies`` — a direct get's copy of it, asked under the user's own
    JetStream API (``$JS.STORE.API``) and the one of before (``$JS.API``: refused), or (``puback``) a
    publish's PubAck. Returns once the server has served it all: the same get with a real reply is
    answered before and after the aimed ones (the server serves a connection's gets in order, each
    inline), and a later append on ``own`` is acked (the log takes what came before it first)."""
    js = nc.jetstream()
    carrier = await js.publish(own, body, headers=headers, timeout=2)
    get = json.dumps({"seq": carrier.seq}).encode()

    async def served() -> None:
        msg = await nc.request(f"{SERVICE_API}.DIRECT.GET.{s.stream_name}", get, timeout=2)
        assert (msg.data, (msg.headers or {}).get("Nats-Sequence")) == (body, str(carrier.seq)), msg

    await served()
    for reply in replies:
        if puback:
            await nc.publish(own, body, headers=headers, reply=reply)
        else:
            for api in dict.fromkeys((SERVICE_API, JS_API)):
                await nc.publish(f"{api}.DIRECT.GET.{s.stream_name}", get, reply=reply)
    await served()
    await js.publish(own, b"{}", timeout=2)


async def _aimed_stores_nothing(secured: Secured, admin: Bus, *replies: str, body: bytes = b"{}",
                                headers: dict[str, str] | None = None, puback: bool = False,
                                user: str = "notifier") -> None:
    """The attack as it was, done by the notifier (:func:`_aim`): on the one account of before, the
    stream or bucket listening on each of ``replies`` stored the server's answer there. The answer now
    lands in SVC: the log and the buckets stored nothing but the notifier's own appends — checked once
    the server served it all, and for a moment after (each bucket takes what comes in its own time)."""
    s = secured.settings
    own = _own(s, user)
    lasts = await _lasts(admin)
    nc = await connect_as(secured.server.url, user)
    try:
        await _aim(nc, s, own, replies, body, headers, puback=puback)
    finally:
        await nc.close()
    for _ in range(5):
        stray = [stored for stored in await _stored_since(admin, lasts) if stored[1] != own]
        assert not stray, f"the server stored its answer aimed at {replies}: {stray}"
        await asyncio.sleep(0.1)


async def _plant(admin: Bus, s: Settings, *replies: str, body: bytes = b"{}", headers: dict[str, str] | None = None,
                 puback: bool = False, wait: bool = True) -> None:
    """What that attack stored, as a log written before the split holds it: admin, in STORE beside the
    stream and the buckets, stores ``body`` on the notifier's subject and aims its own direct get's
    copy of it (or, ``puback``, its publish's PubAck) at each of ``replies``; the stream or bucket
    listening there stores it as it stored the notifier's (the copy with the server's own headers).
    ``wait``: until each is stored."""
    own = _own(s)
    lasts = await _lasts(admin) if wait else {}
    if puback:
        for reply in replies:
            await admin.nc.publish(own, body, headers=headers, reply=reply)
    else:
        get = json.dumps({"seq": (await admin.js.publish(own, body, headers=headers)).seq}).encode()
        for reply in replies:
            await admin.nc.publish(f"{JS_API}.DIRECT.GET.{s.stream_name}", get, reply=reply)
    await admin.nc.flush()
    if wait:
        async def stored() -> bool:
            return set(replies) <= {subject for _, subject in await _stored_since(admin, lasts)}

        await until(stored, 5, 0.05, f"the server's answer stored on {replies}")


async def test_a_direct_gets_copy_aimed_at_an_exports_subject_is_no_event(secured: Secured, admin: Bus) -> None:
    """No permission checks a reply subject (nats-server publishes a JetStream answer wherever the
    request says, inside the requester's account): on the one account of before, the notifier had the
    server store a body it chose — an operator-only ExportRetried agreeing with its subject — in any
    export's log. Aimed from SVC it is stored nowhere. One stored before the split (planted by admin)
    is dropped by every reader (shared/bus/answers.py): history and fold are the request alone."""
    s = secured.settings
    p = s.subject_prefix
    await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                              user_email="v@example.org", username="v"), 0)
    retried = ev.ExportRetried(export_id="exp_v", tenant_id="t_v", operator="mallory", from_step="catalog")
    await _aimed_stores_nothing(secured, admin, f"{p}.t_v.exp_v.ExportRetried", body=retried.to_json())
    await _plant(admin, s, f"{p}.t_v.exp_v.ExportRetried", body=retried.to_json())
    reader = await _as_service(secured, "gateway")
    try:
        assert [e.name() async for _, e in reader.log.history("t_v", "exp_v")] == ["ExportRequested"]
        loaded = await reader.log.load("t_v", "exp_v")
        assert loaded.state.status == "pending" and loaded.state.events == 1
        assert loaded.last_seq == (await admin.js.stream_info(s.stream_name)).state.last_seq  # the fence sees it
    finally:
        await reader.close()


async def test_a_direct_gets_copy_aimed_at_a_tenants_admission_slot_locks_nobody_out(
        secured: Secured, admin: Bus) -> None:
    """The same aimed at ``$KV.<kv>_admission.tenant.<t>``: a slot no gateway wrote, holding an export
    that does not exist as reserved just now — which kept the tenant's every request a 409 until the
    reservation timed out, and could be sent again for ever. Aimed from SVC it is stored nowhere; one
    stored before the split the gateway takes as a free key and admits the tenant's export (its write
    replaces the copy)."""
    from services.gateway import admission as adm
    from services.gateway.admission_kv import AdmissionStore

    s = secured.settings
    bucket = f"{s.kv_prefix}_admission"
    now = datetime.now(UTC)
    forged = json.dumps(adm.Slot("exp_ghost", now, now, "exp_ghost").to_json()).encode()
    await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.tenant.t_v", body=forged)
    await _plant(admin, s, f"$KV.{bucket}.tenant.t_v", body=forged)
    gateway = await _as_service(secured, "gateway")
    try:
        outcome = await AdmissionStore(gateway, s, "gw1").admit("t_v", "exp_new", None)
        assert isinstance(outcome, adm.Admit), outcome
    finally:
        await gateway.close()


async def _the_running_export_keeps_its_slot(s: Settings, gateway: Bus, tmp_path: Path, tenant: str,
                                             running: str) -> None:
    """With a value no gateway wrote stored at ``tenant``'s slot, a second export is refused beside
    ``running`` — taken from the log through the read model — and the slot is written back: a store
    without the log (the operator's), which takes a foreign value as free, sees the running export too."""
    from services.gateway import admission as adm
    from services.gateway.admission_kv import AdmissionStore, newest_from
    from services.gateway.projector import replay
    from services.gateway.readmodel import ReadModel

    await replay(tmp_path / "read-model.db", gateway)
    model = await ReadModel.open(tmp_path / "read-model.db")
    try:
        store = AdmissionStore(gateway, s, "gw1", newest=lambda t: newest_from(model, t))
        assert await store.admit(tenant, "exp_second", None) == adm.Conflict(running)
    finally:
        await model.close()
    assert await AdmissionStore(gateway, s, "gw1").admit(tenant, "exp_second", None) == adm.Conflict(running)


async def test_a_puback_aimed_at_a_tenants_admission_slot_frees_no_running_export(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """A publish's PubAck aimed at ``tenant.<t>``: a JSON object no gateway wrote, which the gateway
    took as a free slot — the tenant's running export forgotten, a second one admitted beside it and
    the rate limit with it, as often as the notifier liked (found by the attack run). Aimed from SVC
    it is stored nowhere. One stored before the split: the gateway takes such a slot from the log,
    the read model's newest export, whose folded status decides."""
    from services.gateway import admission as adm
    from services.gateway.admission_kv import AdmissionStore

    s = secured.settings
    bucket = f"{s.kv_prefix}_admission"
    gateway = await _as_service(secured, "gateway")
    try:
        assert isinstance(await AdmissionStore(gateway, s, "gw1").admit("t_q", "exp_q1", None), adm.Admit)
        await admin.log.append(ev.ExportRequested(export_id="exp_q1", tenant_id="t_q", user_id="u",
                                                  user_email="q@example.org", username="q"), 0)
        await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.tenant.t_q", puback=True)
        await _plant(admin, s, f"$KV.{bucket}.tenant.t_q", puback=True)
        await _the_running_export_keeps_its_slot(s, gateway, tmp_path, "t_q", "exp_q1")
    finally:
        await gateway.close()


@pytest.mark.parametrize(("body", "headers"), [(b"", None), (b"{}", {"KV-Operation": "DEL"}),
                                              (b"{}", {"KV-Operation": "PURGE"})])
async def test_a_direct_gets_copy_of_a_delete_aimed_at_a_tenants_admission_slot_frees_no_running_export(
        secured: Secured, admin: Bus, tmp_path: Path, body: bytes, headers: dict[str, str] | None) -> None:
    """A direct get's copy of a message the notifier stored on its own subject with an empty body, or
    with a `KV-Operation: DEL` (or PURGE) header, aimed at ``tenant.<t>``: the gateway read the key's
    last message as the bucket's delete marker before asking whether the server stored it as an
    answer, so the slot was free — the tenant's running export forgotten and a second one admitted
    beside it, the rate limit with it, as often as the notifier liked (the PubAck's door, closed
    before, through another one; found by the review). Aimed from SVC it is stored nowhere. One stored
    before the split is never a delete: it is a value no gateway wrote, and the slot is taken from
    the log."""
    from services.gateway import admission as adm
    from services.gateway.admission_kv import AdmissionStore

    s = secured.settings
    bucket = f"{s.kv_prefix}_admission"
    gateway = await _as_service(secured, "gateway")
    try:
        assert isinstance(await AdmissionStore(gateway, s, "gw1").admit("t_d", "exp_d1", None), adm.Admit)
        await admin.log.append(ev.ExportRequested(export_id="exp_d1", tenant_id="t_d", user_id="u",
                                                  user_email="d@example.org", username="d"), 0)
        await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.tenant.t_d", body=body, headers=headers)
        await _plant(admin, s, f"$KV.{bucket}.tenant.t_d", body=body, headers=headers)
        await _the_running_export_keeps_its_slot(s, gateway, tmp_path, "t_d", "exp_d1")
    finally:
        await gateway.close()


async def test_a_direct_gets_copy_aimed_at_a_heartbeat_keeps_nothing_alive(secured: Secured, admin: Bus) -> None:
    """The same aimed at a step's heartbeat key: a beat no worker put, which kept an export whose
    worker is gone "alive" for the janitor. Aimed from SVC it is stored nowhere; one stored before the
    split the janitor counts for nothing."""
    from services.janitor.alive import heartbeat
    from shared.core.keys import heartbeat_key

    s = secured.settings
    bucket = f"{s.kv_prefix}_heartbeats"
    key = heartbeat_key("assembler", "t_v", "exp_v")
    ghost = b'{"step": "assembler", "worker": "ghost", "at": 1.5}'
    await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.{key}", body=ghost)
    await _plant(admin, s, f"$KV.{bucket}.{key}", body=ghost)
    janitor = await _as_service(secured, "janitor")
    try:
        assert await heartbeat(janitor, s, "t_v", "exp_v", "assembler") is False
        await admin.heartbeats.put(key, b'{"step": "assembler", "worker": "w1", "at": 1.5}')  # a beat a worker puts
        assert await heartbeat(janitor, s, "t_v", "exp_v", "assembler") is True
    finally:
        await janitor.close()


async def test_a_puback_aimed_at_a_heartbeat_keeps_nothing_alive(secured: Secured, admin: Bus) -> None:
    """A publish with a reply subject gets the server's PubAck there: the notifier published on its
    own subject with a heartbeat key as the reply, and the bucket stored the PubAck — without the
    server's headers, so it is no marked copy. Aimed from SVC it is stored nowhere. One stored before
    the split is no beat either (no step, no worker): the janitor counts it for nothing."""
    from services.janitor.alive import heartbeat
    from shared.core.keys import heartbeat_key

    s = secured.settings
    bucket = f"{s.kv_prefix}_heartbeats"
    key = heartbeat_key("assemble", "t_w", "exp_w")
    await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.{key}", puback=True)
    await _plant(admin, s, f"$KV.{bucket}.{key}", puback=True)
    janitor = await _as_service(secured, "janitor")
    try:
        assert await heartbeat(janitor, s, "t_w", "exp_w", "assemble") is False
    finally:
        await janitor.close()


async def test_what_no_reader_takes_is_no_activity_for_the_janitor(secured: Secured, admin: Bus) -> None:
    """The janitor fails an export whose step went silent for a whole TTL, timed by the export's last
    message. Garbage the notifier may publish on any export (its NotificationSent subject), or a copy
    the server stored as its answer there, was "activity": sent now and then, either kept a dead
    export alive for ever. The copy, aimed from SVC, is stored nowhere now; one stored before the
    split is still no activity. The time is that of the last message a reader takes."""
    from services.janitor.alive import last_moved

    s = secured.settings
    p = s.subject_prefix
    seq = await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                                    user_email="v@example.org", username="v"), 0)
    seq = await admin.log.append(ev.CatalogStarted(export_id="exp_v", tenant_id="t_v"), seq)
    started = (await admin.js.get_msg(s.stream_name, seq=seq, direct=True)).time
    notifier = await connect_as(secured.server.url, "notifier")
    try:
        await notifier.jetstream().publish(f"{p}.t_v.exp_v.NotificationSent", b"not an event")
    finally:
        await notifier.close()
    copy = ev.CatalogStarted(export_id="exp_v", tenant_id="t_v").to_json()
    await _aimed_stores_nothing(secured, admin, f"{p}.t_v.exp_v.CatalogStarted", body=copy)
    await _plant(admin, s, f"{p}.t_v.exp_v.CatalogStarted", body=copy)
    info = await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.t_v.exp_v.>")
    assert info.state.subjects == {f"{p}.t_v.exp_v.ExportRequested": 1, f"{p}.t_v.exp_v.CatalogStarted": 2,
                                   f"{p}.t_v.exp_v.NotificationSent": 1}  # both landed after the real one
    janitor = await _as_service(secured, "janitor")
    try:
        assert await last_moved(janitor, s, "t_v", "exp_v") == started
    finally:
        await janitor.close()


async def test_a_puback_aimed_at_an_unknown_event_type_is_no_activity_for_the_janitor(
        secured: Secured, admin: Bus) -> None:
    """The janitor counts a message of an event type this version does not know as activity (a newer
    version's event, during an upgrade). A PubAck is no event, but on the one account of before the
    notifier could have the server store one on any export's subjects: it published on its own
    subject with the reply subject ``<prefix>.<tenant>.<export>.<AnyName>``. Sent now and then, it
    kept a dead export "alive" for ever, and with it its tenant's admission slot (every new export a
    409). Aimed from SVC it is stored nowhere; one stored before the split is no activity, nor is a
    delivery of another export's real event stored there. Only a body that reads as this export's
    event (its envelope agreeing with the subject) counts."""
    from datetime import timedelta

    from services.janitor.alive import last_moved
    from services.janitor.run import Janitor

    s = secured.settings
    p = s.subject_prefix
    seq = await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                                    user_email="v@example.org", username="v"), 0)
    seq = await admin.log.append(ev.CatalogStarted(export_id="exp_v", tenant_id="t_v"), seq)
    started = (await admin.js.get_msg(s.stream_name, seq=seq, direct=True)).time
    await _aimed_stores_nothing(secured, admin, f"{p}.t_v.exp_v.FromTheFuture", puback=True)
    await _plant(admin, s, f"{p}.t_v.exp_v.FromTheFuture", puback=True)
    janitor = await _as_service(secured, "janitor")
    store = await open_store(s)
    try:
        run = Janitor(s, janitor, store, dry_run=True)
        assert await last_moved(janitor, s, "t_v", "exp_v") == started
        later = started + timedelta(seconds=s.heartbeat_ttl_s + 60)
        assert (await run.run(now=later)).failed == 1  # dead: the janitor fails it (dry run: says so)
        # a newer version's event of this very export still counts
        newer = json.dumps({"export_id": "exp_v", "tenant_id": "t_v", "type": "FromTheFuture"}).encode()
        await admin.js.publish(f"{p}.t_v.exp_v.FromTheFuture", newer)
        assert await last_moved(janitor, s, "t_v", "exp_v") != started
    finally:
        await store.close()
        await janitor.close()


async def test_a_subject_that_is_not_utf8_leaves_every_reader_reading(secured: Secured, admin: Bus) -> None:
    """A subject is any bytes but spaces to nats-server, so the notifier's allow-list
    (``<prefix>.*.*.NotificationSent``) lets it publish on ``<prefix>.\\xff.x.NotificationSent``. The
    gateway hears every export's subjects as wake-ups (``<prefix>.*.*.*``), and nats-py decoded the
    subject as strict UTF-8: the UnicodeDecodeError ended the gateway connection's read loop for good —
    still "connected", it read nothing more, so every tenant's export was a 503 after the bus's 10 s
    timeout, and the projector stopped, until the connection's pings went stale minutes later. One
    publish, sent again then, kept it so. Now the message is one more subject no reader takes, and
    the connection reads on: the wake-up after it arrives and the log reads at once."""
    s = secured.settings
    p = s.subject_prefix
    gateway = await _as_service(secured, "gateway")
    heard: list[str] = []

    async def wake(msg: Any) -> None:
        heard.append(msg.subject)

    async def woken() -> bool:
        return f"{p}.t_v.exp_v.ExportRequested" in heard

    try:
        await gateway.nc.subscribe(f"{p}.*.*.*", cb=wake)  # what the projector listens to
        await gateway.nc.flush()
        reader, writer = await asyncio.open_connection("127.0.0.1", secured.server.port)
        try:
            await reader.readline()  # INFO
            login = json.dumps({"verbose": False, "user": "notifier", "pass": PASSWORDS["notifier"]}).encode()
            writer.write(b"CONNECT " + login + b"\r\nPUB " + p.encode() + b".\xff.x.NotificationSent 2\r\n{}\r\nPING\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                assert await reader.readline() == b"PONG\r\n"  # accepted: no permissions violation
        finally:
            writer.close()
        await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                                  user_email="v@example.org", username="v"), 0)
        async with asyncio.timeout(5):
            await until(woken, 5, 0.05, "the wake-up after it")
            assert (await gateway.log.load("t_v", "exp_v")).state.status == "pending"
        assert heard[0] == f"{p}.\ufffd.x.NotificationSent"  # read, as a subject no reader takes
    finally:
        await gateway.close()


@pytest.mark.parametrize("head", [b"NATS/1.0 \xff\r\n\r\n", b"NATS/1.0 503 \xff\xfe\r\n\r\n",
                                  b"NATS/1.0 100 Idle\r\nX: \xff\r\n\r\n"])
async def test_a_status_line_a_publisher_wrote_leaves_every_reader_reading(
        secured: Secured, admin: Bus, head: bytes) -> None:
    """HPUB takes any header block, and a subscriber gets it as sent: the notifier may publish its
    own subject with a status line of its making. nats-py decoded the status and its description as
    strict UTF-8, and a byte that is not ended the read loop of the connection that heard it (the
    gateway's, which hears every export's subjects) as a subject that is not UTF-8 did. It reads on."""
    s = secured.settings
    p = s.subject_prefix
    gateway = await _as_service(secured, "gateway")
    heard: list[str] = []

    async def wake(msg: Any) -> None:
        heard.append(msg.subject)

    async def woken() -> bool:
        return f"{p}.t_v.exp_v.ExportRequested" in heard

    try:
        await gateway.nc.subscribe(f"{p}.*.*.*", cb=wake)
        await gateway.nc.flush()
        reader, writer = await asyncio.open_connection("127.0.0.1", secured.server.port)
        try:
            await reader.readline()  # INFO
            login = json.dumps({"verbose": False, "headers": True, "user": "notifier",
                                "pass": PASSWORDS["notifier"]}).encode()
            subject = f"{p}.t_x.e_x.NotificationSent".encode()
            writer.write(b"CONNECT " + login + b"\r\nHPUB " + subject + b" %d %d\r\n" % (len(head), len(head) + 2)
                         + head + b"{}\r\nPING\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                assert await reader.readline() == b"PONG\r\n"
        finally:
            writer.close()
        await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                                  user_email="v@example.org", username="v"), 0)
        async with asyncio.timeout(5):
            await until(woken, 5, 0.05, "the wake-up after it")
            assert (await gateway.log.load("t_v", "exp_v")).state.status == "pending"
        assert heard[0] == f"{p}.t_x.e_x.NotificationSent"
    finally:
        await gateway.close()


async def test_a_squatted_message_id_is_a_conflict_never_a_silent_success(secured: Secured, admin: Bus) -> None:
    """The squatter publishes first, on a subject it may use, with the id the victim's append will carry."""
    s = secured.settings
    notifier = await connect_as(secured.server.url, "notifier")
    try:
        req = ev.ExportRequested(export_id="exp_victim", tenant_id="tenant_v", user_id="u", user_email="v@example.org",
                                 username="v")
        seq = await admin.log.append(req, 0)
        started = ev.CatalogStarted(export_id="exp_victim", tenant_id="tenant_v")
        victim_id = f"exp_victim:CatalogStarted:{started.event_id}@{seq}"
        squat = ev.NotificationSent(export_id="exp_other", tenant_id="tenant_v", channel="outbox")
        ack = await notifier.jetstream().publish(f"{s.subject_prefix}.tenant_v.exp_other.NotificationSent",
                                                 squat.to_json(), headers={"Nats-Msg-Id": victim_id})
        assert not ack.duplicate
        with pytest.raises(Conflict):
            await admin.log.append(started, seq, msg_id="exp_victim:CatalogStarted")
        assert [e.name() async for _, e in admin.log.history("tenant_v", "exp_victim")] == ["ExportRequested"]
        # A retry of the victim's own append (same bytes, same id) is still absorbed as a duplicate.
        retried = ev.CatalogStarted(export_id="exp_victim", tenant_id="tenant_v")
        first = await admin.log.append(retried, seq)
        headers = {"Nats-Msg-Id": f"exp_victim:CatalogStarted:{retried.event_id}@{seq}"}
        again = await admin.js.publish(f"{s.subject_prefix}.tenant_v.exp_victim.CatalogStarted",
                                       retried.model_copy(update={"producer": "test"}).to_json(), headers=headers)
        assert again.duplicate and again.seq == first
    finally:
        await notifier.close()


async def test_message_ids_cannot_be_guessed_from_the_log(secured: Secured, admin: Bus) -> None:
    """Two appends of the same kind of event at the same position carry different message ids."""
    a = ev.CatalogStarted(export_id="exp_1", tenant_id="t")
    b = ev.CatalogStarted(export_id="exp_1", tenant_id="t")
    assert a.event_id != b.event_id and len(a.event_id) >= 32


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_forgeries_and_squats_stop_nothing_while_every_service_runs_as_its_own_user(
        secured: Secured, admin: Bus, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    from services.devtools.stack.natsserver import env_without_proxies, free_port

    values, s = secured.values, secured.settings
    port = free_port()
    base = {**to_env(values), "GROVE_PORT": str(port), "GROVE_HOST": "127.0.0.1",
            "GROVE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    procs = Procs(tmp_path / "logs", base)
    store = await open_store(s, create_buckets=True)
    attackers: dict[str, nats.NATS] = {}
    try:
        for svc in ("gateway", "catalog", "assembler", "finalizer", "notifier", "canceller"):
            procs.run(svc, svc, {"GROVE_NATS_USER": svc, "GROVE_NATS_PASSWORD": PASSWORDS[svc]})
        db = content_source(s)
        a = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=2)
        b = await seed_tenant(db, store, images_bucket=s.buckets.images, amber_bucket=s.buckets.amber, images=2)

        async def ready() -> bool:
            procs.assert_alive()
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(ready, 30, 0.2, "gateway /readyz")

        def auth(tenant: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {make_token(s, tenant, 'u1', 'u1@example.org', 'autumn')}"}

        async def start(tenant: str) -> str:
            async with http.post(f"http://127.0.0.1:{port}/api/export", json={"mode": "blog"},
                                 headers=auth(tenant)) as r:
                assert r.status == 201, await r.text()
                return (await r.json())["exportId"]

        async def status(tenant: str, export_id: str) -> tuple[int, dict]:
            async with http.get(f"http://127.0.0.1:{port}/api/export/status/{export_id}", headers=auth(tenant)) as r:
                return r.status, await r.json()

        async def history(tenant: str) -> list[str]:
            async with http.get(f"http://127.0.0.1:{port}/api/export/history", headers=auth(tenant)) as r:
                assert r.status == 200
                body = await r.json()
                return [item["exportId"] for item in body["exports"]]

        async def complete(tenant: str, export_id: str) -> dict | None:
            code, view = await status(tenant, export_id)
            assert code == 200, view
            assert view["status"] not in ("failed", "cancelled"), view
            return view if view["status"] == "complete" else None

        victim = await start(a.tenant_id)
        await until(lambda: complete(a.tenant_id, victim), 90, 0.3, "the victim's export to complete")

        async def notified() -> bool:
            return (await admin.log.load(a.tenant_id, victim)).state.notification is not None

        await until(notified, 30, 0.2, "the victim's email to be recorded")
        history_before = await history(a.tenant_id)
        log_before = [e.name() async for _, e in admin.log.history(a.tenant_id, victim)]

        errors: dict[str, list[str]] = {}
        for name in ("gateway", "notifier"):
            errors[name] = []
            attackers[name] = await connect_as(secured.server.url, name, errors[name])
        gw, nt = attackers["gateway"].jetstream(), attackers["notifier"].jetstream()
        p = s.subject_prefix
        req = json.loads((await admin.log.history(a.tenant_id, victim).__anext__())[1].to_json())

        # 1. Body over subject: the victim's request replayed on tenant B's subject (body says A).
        await gw.publish(f"{p}.{b.tenant_id}.{victim}.ExportRequested", json.dumps(req).encode())
        # 2. The same export id under tenant B with a body that agrees: B's own export, not A's.
        planted = {**req, "tenant_id": b.tenant_id, "event_id": "f" * 32}
        await gw.publish(f"{p}.{b.tenant_id}.{victim}.ExportRequested", json.dumps(planted).encode())
        # 3. Subject tenant B, body tenant A with a fresh export id: an attempt to plant an export in A's history.
        ghost = {**req, "export_id": "exp_ghost", "event_id": "e" * 32}
        await gw.publish(f"{p}.{b.tenant_id}.exp_ghost.ExportRequested", json.dumps(ghost).encode())
        # 4. Garbage and an unknown type the notifier may not even publish; a malformed body it may.
        await nt.publish(f"{p}.{a.tenant_id}.{victim}.NotificationSent", b"{not json")
        forged_sent = {**json.loads(ev.NotificationSent(export_id=victim, tenant_id=b.tenant_id,
                                                        channel="x").to_json())}
        await nt.publish(f"{p}.{a.tenant_id}.{victim}.NotificationSent", json.dumps(forged_sent).encode())
        # 5. Dedupe squatting with the id scheme of before (predictable ids).
        await nt.publish(f"{p}.{b.tenant_id}.exp_x.NotificationSent", b"{}",
                         headers={"Nats-Msg-Id": f"{victim}:CatalogStarted@1"})

        legit = await start(b.tenant_id)
        await until(lambda: complete(b.tenant_id, legit), 90, 0.3, "a legitimate export alongside to complete")

        # The victim: same status, same history, same log of the events that count.
        code, view = await status(a.tenant_id, victim)
        assert code == 200 and view["status"] == "complete", view
        assert await history(a.tenant_id) == history_before
        assert "exp_ghost" not in await history(a.tenant_id)
        assert [e.name() async for _, e in admin.log.history(a.tenant_id, victim)] == log_before
        # Tenant B sees its own legitimate export and the id-alike it (its gateway) published — not A's data.
        code, b_view = await status(b.tenant_id, victim)
        assert code == 200 and b_view.get("status") in ("pending", "cataloging", "assembling", "uploading",
                                                        "complete", "failed"), b_view

        # No service loops on a forgery: every durable drains, nothing is left unacked or redelivered.
        async def drained() -> bool:
            infos = await admin.js.consumers_info(s.stream_name)
            return all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)

        await until(drained, 60, 0.3, "every durable to drain (no forgery retried)")
        catalog_log = procs.tail("catalog", 10**7)
        assert "drops forged event" in catalog_log, catalog_log[-2000:]
        # The planted export exists nowhere: the forged request is dropped, nothing was appended after it.
        assert [e async for _, e in admin.log.history(a.tenant_id, "exp_ghost")] == []
        assert [e async for _, e in admin.log.history(b.tenant_id, "exp_ghost")] == []
        ghost_subjects = (await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.*.exp_ghost.>")).state.subjects
        assert set(ghost_subjects or {}) == {f"{p}.{b.tenant_id}.exp_ghost.ExportRequested"}, ghost_subjects
        # The janitor meets the forged request among the exports' subjects and is not thrown by it.
        env = {**env_without_proxies(), **base, "GROVE_NATS_USER": "janitor", "GROVE_NATS_PASSWORD": PASSWORDS["janitor"]}
        out = await asyncio.to_thread(subprocess.run, [*LAUNCH, "janitor"], env=env, capture_output=True, text=True,
                                      timeout=60)
        assert out.returncode == 0 and "janitor:" in out.stdout, out.stdout + out.stderr
        assert [e.name() async for _, e in admin.log.history(a.tenant_id, victim)] == log_before
        procs.assert_alive()
    finally:
        for c in attackers.values():
            await c.close()
        procs.stop()
        await store.close()


async def test_a_slot_taken_from_the_log_whose_export_a_clock_ahead_requested_locks_the_tenant_out_for_no_longer_than_the_window(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """A slot rebuilt from the read model (a PubAck aimed at ``tenant.<t>``, stored before the split:
    aimed from SVC it is stored nowhere) takes the newest export's
    ``created_at``, the publisher's own clock (a gateway of one's own may be years off), as the time it
    was reserved: one years ahead made every request a 429 until then, and, as a 429 writes nothing,
    the foreign value stayed, so ``grove-export unlock`` saw a free slot and refused. The rebuilt slot
    is reserved no later than the server's now, and is written back: the window counts from there."""
    from services.gateway import admission as adm
    from services.gateway.admission_kv import AdmissionStore, newest_from
    from services.gateway.projector import replay
    from services.gateway.readmodel import ReadModel

    s = secured.settings
    bucket = f"{s.kv_prefix}_admission"
    gateway = await _as_service(secured, "gateway")
    try:
        assert isinstance(await AdmissionStore(gateway, s, "gw1").admit("t_k", "exp_k1", None), adm.Admit)
        ahead = datetime(2031, 1, 1, tzinfo=UTC)
        seq = await admin.log.append(ev.ExportRequested(export_id="exp_k1", tenant_id="t_k", user_id="u",
                                                        user_email="k@example.org", username="k",
                                                        occurred_at=ahead), 0)
        seq = await admin.log.append(ev.CancelRequested(export_id="exp_k1", tenant_id="t_k", occurred_at=ahead), seq)
        await admin.log.append(ev.ExportCancelled(export_id="exp_k1", tenant_id="t_k", occurred_at=ahead), seq)
        await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.tenant.t_k", puback=True)
        await _plant(admin, s, f"$KV.{bucket}.tenant.t_k", puback=True)
        await replay(tmp_path / "read-model.db", gateway)
        model = await ReadModel.open(tmp_path / "read-model.db")
        try:
            store = AdmissionStore(gateway, s, "gw1", newest=lambda tenant: newest_from(model, tenant))
            got = await store.admit("t_k", "exp_k2", None)
        finally:
            await model.close()
        assert isinstance(got, adm.Admit) or (isinstance(got, adm.RateLimited)
                                              and got.retry_after_s <= s.rate_window_s), got
        data, _, _ = await store.read("tenant.t_k")  # the slot is a gateway's again: unlock can free it
        assert data is not None and data.get("activeExportId") in ("exp_k1", "exp_k2"), data
    finally:
        await gateway.close()


async def test_a_wildcard_token_in_a_stored_subject_names_no_export_for_the_janitor(
        secured: Secured, admin: Bus) -> None:
    """A subject token is any bytes but a space and a dot to nats-server, ``*`` too: on the one account of
    before, the notifier aimed a PubAck at ``<prefix>.*.*.ExportRequested`` and the stream stored it
    there (aimed from SVC it is stored nowhere; the gateway may still publish there itself). The
    janitor lists exports by the subjects of ExportRequested, and took (``*``, ``*``) for one: its history, ``<prefix>.*.*.>``, is every export's events folded as one, whose
    ids are the oldest request's — a running export — and whose status is another export's end. The
    janitor swept the running export's snapshot as that of an ended one, and its assembly failed.
    Only ids an export can have are exports."""
    from services.janitor.run import Janitor
    from services.operator.erase import Eraser
    from services.operator.inspect import locate, requested

    s = secured.settings
    p = s.subject_prefix
    run = {"export_id": "exp_run", "tenant_id": "t_run"}
    seq = await admin.log.append(ev.ExportRequested(**run, user_id="u", user_email="r@example.org", username="r"), 0)
    snapshot = f"exports/t_run/exp_run/work/snapshot-{'0' * 16}.jsonl"
    await admin.log.append(ev.ExportCataloged(**run, snapshot_key=snapshot, snapshot_sha256="x",
                                              archive_key="exports/t_run/exp_run/grove-export-r-2026-01-01.zip",
                                              member_count=1, total_bytes=1, item_counts={}), seq)
    done = {"export_id": "exp_done", "tenant_id": "t_done"}
    seq = await admin.log.append(ev.ExportRequested(**done, user_id="u", user_email="d@example.org",
                                                    username="d"), 0)
    seq = await admin.log.append(ev.CancelRequested(**done), seq)
    await admin.log.append(ev.ExportCancelled(**done), seq)
    store = await open_store(s)
    await store.put(s.buckets.exports, snapshot, b"{}")
    wild = (f"{p}.*.*.ExportRequested", f"{p}.*.exp_run.ExportCataloged", f"{p}.t_run.*.ExportRequested")
    await _aimed_stores_nothing(secured, admin, *wild, puback=True)
    await _plant(admin, s, *wild, puback=True)
    janitor = await _as_service(secured, "janitor")
    try:
        assert sorted(await Janitor(s, janitor, store).exports()) == [("t_done", "exp_done"), ("t_run", "exp_run")]
        # the operator's listings (list, erase-tenant's cancels) read the same subjects
        assert sorted(export for _, _, export in await requested(admin, s)) == ["exp_done", "exp_run"]
        assert [export for _, _, export in await requested(admin, s, "t_run")] == ["exp_run"]
        assert await locate(admin, s, "exp_run") == ["t_run"]  # `show exp_run` finds one tenant, not two
        # and a command given the export's id for a tenant names its tenant, not the PubAck's '*'
        from services.operator.cli import _tenant_of_export
        assert await _tenant_of_export(admin, s, "exp_run") == "t_run"
        assert (await Eraser(s, admin, store, []).holdings("t_run")).exports == ["exp_run"]  # erase-tenant's list
        await Janitor(s, janitor, store).run()
        assert await store.read(s.buckets.exports, snapshot) == b"{}"  # the running export's snapshot is there
        assert (await admin.log.load("t_run", "exp_run")).state.status == "assembling"
    finally:
        await store.close()
        await janitor.close()


async def _foreign_value_on(bus: Bus, bucket: str, key: str) -> bool:
    """The heartbeat key holds a value, and not a worker's beat (a PubAck stands over it). A key not put
    yet is no such thing: waiting on "no beat there" alone raced the worker's first put, and the
    erase then found no key at all."""
    from shared.core.keys import parse_beat

    try:
        msg = await bus.js.get_last_msg(f"KV_{bucket}", f"$KV.{bucket}.{key}", direct=True)
    except NotFoundError:
        return False
    return bool(msg.data) and parse_beat(msg.data, "catalog") is None


async def test_a_puback_aimed_at_a_running_steps_heartbeat_again_and_again_does_not_fail_it(
        secured: Secured, admin: Bus) -> None:
    """The heartbeats bucket keeps one value a key, and on the one account of before any user could have
    the server store its PubAck under any key: the notifier aimed one at a running catalog's key every
    few milliseconds, so the value the janitor read was a PubAck, not the beat the worker put a moment
    before. The janitor read that as no beat and failed the export — running, beating, a long catalog
    logging nothing for a whole TTL — and the person was sent "export failed". Aimed from SVC the
    PubAck is stored nowhere; here admin stands in for the flood (a value no worker put may still be
    there from before the split). A value no worker put is followed by listening for the worker's
    next beat; on a dead step's key none comes, and it is failed as before."""
    from datetime import timedelta

    from services.janitor.run import Janitor
    from shared.core.keys import heartbeat_key

    s = secured.settings
    bucket = f"{s.kv_prefix}_heartbeats"
    ids = {"export_id": "exp_b", "tenant_id": "t_b"}
    seq = await admin.log.append(ev.ExportRequested(**ids, user_id="u", user_email="b@example.org", username="b"), 0)
    seq = await admin.log.append(ev.CatalogStarted(**ids), seq)
    started = (await admin.js.get_msg(s.stream_name, seq=seq, direct=True)).time
    key = heartbeat_key("catalog", "t_b", "exp_b")
    await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.{key}", puback=True)
    catalog = await _as_service(secured, "catalog")
    janitor = await _as_service(secured, "janitor")
    store = await open_store(s)
    worker_alive = True

    async def worker() -> None:  # the catalog's worker, beating as it does (every progress interval, here less)
        while worker_alive:
            await catalog.heartbeats.put(key, json.dumps({"step": "catalog", "worker": "w1", "at": 1.5}).encode())
            await asyncio.sleep(0.3)

    attacking = True  # the loops end on their flag too: Python 3.11's wait_for (inside nats-py's flush
    # and request) can swallow a cancel that lands as its answer does, and a loop on cancel alone then never ends

    async def attacker() -> None:
        while attacking:
            await _plant(admin, s, f"$KV.{bucket}.{key}", puback=True, wait=False)
            await asyncio.sleep(0.005)

    beats, aims = asyncio.create_task(worker()), asyncio.create_task(attacker())
    try:
        async def stands_over() -> bool:  # the PubAck is the key's value while the worker beats
            return await _foreign_value_on(janitor, bucket, key)

        await until(stands_over, 5, 0.01, "a PubAck standing over the worker's beat")
        later = started + timedelta(seconds=s.heartbeat_ttl_s + 60)  # the catalog logged nothing for a TTL
        summary = await Janitor(s, janitor, store, dry_run=True).run(now=later)
        assert summary.failed == 0, summary.actions  # beating: not failed
        worker_alive = False
        await beats
        # the worker stopped, the PubAck still standing: a run at a time the export is not old enough
        # to be dead asks nothing of its heartbeat — listening for a beat that never comes cost every
        # run two beat intervals and a second per such key
        listen = 2 * s.progress_interval_s + 1.0
        began = asyncio.get_running_loop().time()
        assert (await Janitor(s, janitor, store, dry_run=True).run(now=started + timedelta(seconds=1))).failed == 0
        assert asyncio.get_running_loop().time() - began < listen / 2
        assert (await Janitor(s, janitor, store, dry_run=True).run(now=later)).failed == 1  # dead: failed
    finally:
        worker_alive = attacking = False
        aims.cancel()
        await asyncio.gather(beats, aims, return_exceptions=True)
        await store.close()
        await janitor.close()
        await catalog.close()


async def test_a_puback_aimed_at_a_running_steps_heartbeat_does_not_let_an_erase_pass_it(
        secured: Secured, admin: Bus) -> None:
    """erase-tenant waits for the tenant's exports a step still works on by their heartbeats (a catalog
    cancelled mid-read writes the tenant's snapshot after its cancel is logged). A PubAck the notifier
    aimed at the catalog's key again and again (on the one account of before; from SVC it is stored
    nowhere, and admin stands in for it here) stood over its beat: the erase found nothing working
    and went on while the catalog wrote. It listens for the beat as the janitor does."""
    from services.operator.erase import Eraser
    from shared.core.keys import heartbeat_key

    s = secured.settings
    bucket = f"{s.kv_prefix}_heartbeats"
    key = heartbeat_key("catalog", "t_e", "exp_e")
    await _aimed_stores_nothing(secured, admin, f"$KV.{bucket}.{key}", puback=True)
    catalog = await _as_service(secured, "catalog")
    store = await open_store(s)

    running = True  # the loops end on their flag too: Python 3.11's wait_for (inside nats-py's flush and
    # request) can swallow a cancel that lands as its answer does, and a loop on cancel alone never ended

    async def worker() -> None:
        while running:
            await catalog.heartbeats.put(key, json.dumps({"step": "catalog", "worker": "w1", "at": 1.5}).encode())
            await asyncio.sleep(0.3)

    async def attacker() -> None:
        while running:
            await _plant(admin, s, f"$KV.{bucket}.{key}", puback=True, wait=False)
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(worker()), asyncio.create_task(attacker())]
    try:
        async def stands_over() -> bool:  # a value no worker put on the key (not a key not put yet)
            return await _foreign_value_on(admin, bucket, key)

        await until(stands_over, 5, 0.01, "a PubAck standing over the worker's beat")
        assert await Eraser(s, admin, store, [])._beating("t_e") == ["exp_e"]
    finally:
        running = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()
        await catalog.close()


async def test_a_step_user_cannot_record_another_steps_failure(secured: Secured, admin: Bus) -> None:
    """A step's failed attempt was ``StepFailed`` for every step, its subject naming no step: the
    catalog's password appended ``step="assemble", attempt=99`` to an export waiting for its assembly.
    The fold counted it as the assembler's 99th failure — its next real one would fail the export — and
    the janitor took the export for one waiting out a retry and failed it as dead a TTL later. Each
    step's failure has a type of its own now and only that step's user may publish it: the server
    refuses the catalog's ``StepFailed`` and ``AssembleAttemptFailed``, and on the catalog's own
    failure subject a body naming the assemble step is stored but dropped by every reader."""
    from datetime import timedelta

    from services.janitor.run import Janitor
    from shared.core.keys import archive_key, snapshot_key
    from shared.core.retry import Retry, after_failure

    s = secured.settings
    p = s.subject_prefix
    ids = {"export_id": "exp_f", "tenant_id": "t_f"}
    seq = await admin.log.append(ev.ExportRequested(**ids, user_id="u", user_email="f@example.org", username="f"), 0)
    seq = await admin.log.append(ev.CatalogStarted(**ids), seq)
    seq = await admin.log.append(ev.ExportCataloged(**ids, snapshot_key=snapshot_key("t_f", "exp_f"),
                                                    snapshot_sha256="0" * 64, member_count=1, total_bytes=1,
                                                    archive_key=archive_key("t_f", "exp_f", "f", "2026-12-01"),
                                                    item_counts={}), seq)
    before = (await admin.log.load("t_f", "exp_f")).state  # waiting in the assembler's queue
    forged = json.loads(ev.StepFailed(**ids, step="assemble", attempt=99, reason="forged").to_json())
    errors: list[str] = []
    catalog = await connect_as(secured.server.url, "catalog", errors)
    try:
        js = catalog.jetstream()
        for event in ("StepFailed", "AssembleAttemptFailed"):  # refused: no PubAck, nothing stored
            with pytest.raises(nats.errors.TimeoutError):
                await js.publish(f"{p}.t_f.exp_f.{event}", json.dumps({**forged, "type": event}).encode(), timeout=1)

            async def reported(event: str = event) -> bool:
                return any("violation for publish" in e.lower() and event.lower() in e.lower() for e in errors)

            await until(reported, 5, 0.05, f"a publish violation for {event}")
        # its own failure subject takes it, but the body names another step: stored, and dropped
        own = f"{p}.t_f.exp_f.CatalogAttemptFailed"
        assert (await js.publish(own, json.dumps({**forged, "type": "CatalogAttemptFailed"}).encode(),
                                 timeout=2)).seq > seq
    finally:
        await catalog.close()
    stored = (await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.t_f.exp_f.>")).state.subjects or {}
    assert set(stored) == {f"{p}.t_f.exp_f.{e}" for e in ("ExportRequested", "CatalogStarted", "ExportCataloged",
                                                          "CatalogAttemptFailed")}, stored
    # The export is as it was: no attempt counted, nothing running, and the assembler's first real
    # failure is its first attempt, retried.
    after = (await admin.log.load("t_f", "exp_f")).state
    assert (after.status, after.attempts, after.last_event) == (before.status, (), "ExportCataloged")
    assert isinstance(after_failure(after, "assemble", "x", s.step_attempts, s.retry_base_delay_s), Retry)
    janitor = await _as_service(secured, "janitor")
    store = await open_store(s)
    try:
        await store.put(s.buckets.exports, snapshot_key("t_f", "exp_f"), b"{}")  # what the catalog stored
        summary = await Janitor(s, janitor, store, dry_run=True).run(now=datetime.now(UTC) + timedelta(days=1))
        assert summary.failed == 0, summary.actions
    finally:
        await store.close()
        await janitor.close()
    # The assembler's own failure is counted, as before.
    assembler = await _as_service(secured, "assembler")
    try:
        await assembler.log.append(ev.attempt_failed("assemble", **ids, attempt=1, reason="real"),
                                   (await assembler.log.load("t_f", "exp_f")).last_seq)
    finally:
        await assembler.close()
    assert (await admin.log.load("t_f", "exp_f")).state.attempts == (("assemble", 1),)


@contextlib.asynccontextmanager
async def _victim_awaiting_assembly(secured: Secured, admin: Bus, tmp_path: Path,
                                    services: Sequence[str]) -> AsyncIterator[tuple[Procs, str, str, Any]]:
    """``services`` running, each as its own NATS user, and another tenant's export (two images)
    cataloged and waiting for its assembly — the victim of a forgery: (procs, tenant, export, its state)."""
    from tests.support.pipeline import wait_status

    s = secured.settings
    procs = Procs(tmp_path / "logs", to_env(secured.values))
    store = await open_store(s, create_buckets=True)
    try:
        for svc in services:
            procs.run(svc, svc, {"GROVE_NATS_USER": svc, "GROVE_NATS_PASSWORD": PASSWORDS[svc]})
        seeded = await seed_tenant(content_source(s), store, images_bucket=s.buckets.images,
                                   amber_bucket=s.buckets.amber, images=2)
        t, e = seeded.tenant_id, ev.new_export_id()
        await admin.log.append(ev.ExportRequested(export_id=e, tenant_id=t, user_id="u", user_email="v@example.org",
                                                  username="victim"), 0)
        before = await wait_status(admin, t, e, {"assembling"}, timeout=60)  # cataloged: waiting for its assembly
        yield procs, t, e, before
    finally:
        procs.stop()
        await store.close()


async def _assembled_and_mailed_ready_only(procs: Procs, admin: Bus, secured: Secured, t: str, e: str) -> None:
    """The attack done, the assembler started: the victim's export completes and its one email is the
    ready one (no failure or cancel email went out), every service still running."""
    from tests.support.pipeline import wait_status

    procs.run("assembler", "assembler", {"GROVE_NATS_USER": "assembler", "GROVE_NATS_PASSWORD": PASSWORDS["assembler"]})
    state = await wait_status(admin, t, e, timeout=90)
    assert state.status == "complete", procs.logs()

    async def notified() -> str | None:
        return (await admin.log.load(t, e)).state.notification

    assert await until(notified, 30, 0.1, "the victim's email") == "sent"
    outbox = Path(secured.values["mail"]["outbox_dir"])
    assert sorted(f.name.split(".")[1] for f in outbox.glob(f"{e}.*.eml")) == ["ready"], list(outbox.iterdir())
    procs.assert_alive()


async def test_a_step_user_cannot_fail_an_export_at_another_step(secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """``ExportFailed``'s subject named no step, and every step's user (and the janitor's) could append
    it: with the catalog's password, ``ExportFailed(step="assemble")`` on another tenant's export
    waiting for its assembly failed it outright, and the notifier sent its person the failure email.
    Each publisher's failure has a type of its own now and only that service's user may publish it:
    the server refuses the catalog's ``ExportFailed`` and ``ExportFailedAtAssemble``; on the catalog's
    own ``ExportFailedAtCatalog`` a body naming the assemble step is stored but dropped by every reader
    — the fold, and the notifier's ``notifier-failed`` durable, which takes it and acks it unmailed.
    A well-formed ``ExportFailedAtCatalog`` on that export, past its catalog, failed it the same way
    (any step's user could fail any export at its own step): stored, and the fold ignores it. The
    export completes and its one email is the ready one."""
    import re

    s, p = secured.settings, secured.settings.subject_prefix
    services = ("catalog", "finalizer", "notifier")  # the assembler comes after the attack
    async with _victim_awaiting_assembly(secured, admin, tmp_path, services) as (procs, t, e, _):
        forged = json.loads(ev.ExportFailed(export_id=e, tenant_id=t, step="assemble",
                                            reason="Failed while assembling: forged.").to_json())
        errors: list[str] = []
        catalog = await connect_as(secured.server.url, "catalog", errors)
        try:
            js = catalog.jetstream()
            for event in ("ExportFailed", "ExportFailedAtAssemble"):  # refused: no PubAck, nothing stored
                with pytest.raises(nats.errors.TimeoutError):
                    await js.publish(f"{p}.{t}.{e}.{event}", json.dumps({**forged, "type": event}).encode(),
                                     timeout=1)

                async def reported(event: str = event) -> bool:  # that subject, not one it begins
                    refused = re.compile(re.escape(f".{e}.{event}".lower()) + r"(?![a-z])")
                    return any("violation for publish" in x.lower() and refused.search(x.lower()) for x in errors)

                await until(reported, 5, 0.05, f"a publish violation for {event}")
            # its own failure subject takes it, but the body names the assemble step: stored, and dropped
            await js.publish(f"{p}.{t}.{e}.ExportFailedAtCatalog",
                             json.dumps({**forged, "type": "ExportFailedAtCatalog"}).encode(), timeout=2)
            # and a well-formed one, the catalog "giving up" on an export past its catalog: stored, and
            # the fold ignores it (a step's failure counts only while the export is at that step)
            own = await js.publish(f"{p}.{t}.{e}.ExportFailedAtCatalog", ev.export_failed(
                "catalog", export_id=e, tenant_id=t, reason="Failed while cataloging: forged.").to_json(),
                timeout=2)
        finally:
            await catalog.close()
        stored = (await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.{t}.{e}.>")).state.subjects or {}
        assert not {f"{p}.{t}.{e}.ExportFailed", f"{p}.{t}.{e}.ExportFailedAtAssemble"} & set(stored), stored
        assert stored.get(f"{p}.{t}.{e}.ExportFailedAtCatalog") == 2, stored  # both taken by the server
        state = (await admin.log.load(t, e)).state
        assert (state.status, state.failure, state.email_due) == ("assembling", None, False)

        async def mailer_dropped_it() -> bool:  # delivered to the failure email's durable, acked, not mailed
            info = await admin.js.consumer_info(s.stream_name, "notifier-failed")
            return (info.delivered.stream_seq or 0) >= own.seq and not info.num_pending and not info.num_ack_pending

        await until(mailer_dropped_it, 30, 0.1, "notifier-failed to take the forged failure")
        assert "drops forged event" in procs.tail("notifier", 10**7), procs.tail("notifier")

        await _assembled_and_mailed_ready_only(procs, admin, secured, t, e)


async def test_the_canceller_or_the_janitor_user_cannot_cancel_an_export_nobody_asked_to_cancel(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """``ExportCancelled`` is the canceller's (and the janitor's, for a cancel nobody finished), and
    each may publish it on every export's subject: with the canceller's password, a well-formed
    ``ExportCancelled`` on another tenant's export waiting for its assembly ended it ``cancelled`` —
    no ``CancelRequested`` from its owner or an operator — and the export never completed. A cancel
    ends an export only when one was asked for and can still win: the server stores both forgeries
    (the canceller's and the janitor's), the fold ignores them, the export completes and its one
    email is the ready one."""
    s, p = secured.settings, secured.settings.subject_prefix
    services = ("catalog", "finalizer", "notifier")  # the assembler comes after the attack
    async with _victim_awaiting_assembly(secured, admin, tmp_path, services) as (procs, t, e, before):
        for user in ("canceller", "janitor"):
            nc = await connect_as(secured.server.url, user)
            try:
                ack = await nc.jetstream().publish(f"{p}.{t}.{e}.ExportCancelled", ev.ExportCancelled(
                    export_id=e, tenant_id=t, aborted_upload=True, producer=user).to_json(), timeout=2)
                assert ack.stream == s.stream_name  # taken: the user may publish it on any export's subject
            finally:
                await nc.close()
        stored = (await admin.js.stream_info(s.stream_name, subjects_filter=f"{p}.{t}.{e}.>")).state.subjects or {}
        assert stored.get(f"{p}.{t}.{e}.ExportCancelled") == 2, stored
        state = (await admin.log.load(t, e)).state
        assert (state.status, state.cancel_requested, state.last_event) == ("assembling", False, before.last_event)

        await _assembled_and_mailed_ready_only(procs, admin, secured, t, e)


async def test_the_janitor_user_cannot_turn_a_cancel_into_a_failure(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """The janitor's user may publish ``ExportFailedByJanitor`` on every export's subject: with its
    password, one on an export its person was cancelling ended it ``failed`` — not the cancel they
    asked for, and the notifier mailed them the failure. The janitor itself fails no export while a
    cancel can win: the server stores the forgery, the fold ignores it, and the cancel ends the
    export cancelled, with no email."""
    from shared.cancel import request_cancel
    from tests.support.pipeline import wait_status

    s, p = secured.settings, secured.settings.subject_prefix
    # no assembler: the export waits for its assembly; no canceller until the forgery is stored
    async with _victim_awaiting_assembly(secured, admin, tmp_path, ("catalog", "notifier")) as (procs, t, e, _):
        assert await request_cancel(admin.log, t, e, "u") is not None
        before = (await admin.log.load(t, e)).state
        nc = await connect_as(secured.server.url, "janitor")
        try:
            ack = await nc.jetstream().publish(f"{p}.{t}.{e}.ExportFailedByJanitor", ev.export_failed(
                "janitor", export_id=e, tenant_id=t, reason="forged").to_json(), timeout=2)
            assert ack.stream == s.stream_name  # taken: the user may publish it on any export's subject
        finally:
            await nc.close()
        state = (await admin.log.load(t, e)).state
        assert (state.status, state.failure, state.cancel_wins, state.email_due, state.last_event) == (
            before.status, None, True, False, before.last_event)

        async def trigger_taken() -> bool:  # the failure email's durable took the forgery
            info = await admin.js.consumer_info(s.stream_name, "notifier-failed")
            return (info.delivered.stream_seq or 0) >= ack.seq and not info.num_pending and not info.num_ack_pending

        await until(trigger_taken, 30, 0.1, "notifier-failed to take the forged failure")
        procs.run("canceller", "canceller",
                  {"GROVE_NATS_USER": "canceller", "GROVE_NATS_PASSWORD": PASSWORDS["canceller"]})
        assert (await wait_status(admin, t, e, timeout=60)).status == "cancelled", procs.logs()
        outbox = Path(secured.values["mail"]["outbox_dir"])
        assert not (list(outbox.glob(f"{e}.*.eml")) if outbox.exists() else [])
        procs.assert_alive()


async def test_the_finalizer_user_cannot_complete_an_export_nobody_finalized(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """``ExportCompleted`` is the finalizer's, and its user may publish it (and ``FinalizeStarted``) on
    every export's subject: with the finalizer's password, a well-formed ``ExportCompleted`` on another
    tenant's export waiting for its assembly ended it ``complete`` — an archive that was never made, its
    assembler no longer due — and the notifier sent its person the ready email for it. It ends an export
    only once the archive is assembled and ``FinalizeStarted`` logged: the server stores the forgeries,
    the fold ignores the completion, no email goes out, and the export completes for real."""
    from shared.core import keys

    s, p = secured.settings, secured.settings.subject_prefix
    services = ("catalog", "finalizer", "notifier")  # the assembler comes after the attack
    async with _victim_awaiting_assembly(secured, admin, tmp_path, services) as (procs, t, e, before):
        assert before.cataloged is not None
        forged = ev.ExportCompleted(export_id=e, tenant_id=t, archive_key=before.cataloged.archive_key,
                                    size_bytes=8, sha256="0" * 64, item_counts={"posts": 1}, error_count=0,
                                    expires_at=datetime(2030, 1, 1, tzinfo=UTC), producer="finalizer")
        assert keys.is_archive_key_of(t, e, forged.archive_key)
        nc = await connect_as(secured.server.url, "finalizer")
        try:
            js = nc.jetstream()
            for event in (forged, ev.FinalizeStarted(export_id=e, tenant_id=t, producer="finalizer"), forged):
                ack = await js.publish(f"{p}.{t}.{e}.{event.name()}", event.to_json(), timeout=2)
                assert ack.stream == s.stream_name  # taken: the user may publish it on any export's subject
        finally:
            await nc.close()
        state = (await admin.log.load(t, e)).state
        assert (state.status, state.completed, state.email_due) == ("assembling", None, False)

        async def triggers_taken() -> bool:  # the notifier's durable took both forged completions
            info = await admin.js.consumer_info(s.stream_name, "notifier")
            return info.delivered.stream_seq >= ack.seq and not info.num_ack_pending and not info.num_pending

        await until(triggers_taken, 30, 0.1, "the notifier to take the forged completions")
        outbox = Path(secured.values["mail"]["outbox_dir"])
        assert not list(outbox.glob(f"{e}.*.eml")) if outbox.exists() else True
        assert (await admin.log.load(t, e)).state.notification is None

        await _assembled_and_mailed_ready_only(procs, admin, secured, t, e)
        done = (await admin.log.load(t, e)).state
        assert done.completed is not None and done.completed.sha256 != "0" * 64  # the real archive's


async def test_the_finalizer_user_cannot_make_an_export_uncancellable(
        secured: Secured, admin: Bus, tmp_path: Path) -> None:
    """With the finalizer's password, a ``FinalizeStarted`` on another tenant's export still assembling
    made it uncancellable: its person's cancel was refused ('being completed'), and one already asked for
    stopped (the canceller no longer due, the finalizer not due with nothing assembled) until the janitor
    failed the export and mailed its person the failure. It counts once the archive is assembled: the
    person's cancel is taken and the export ends cancelled."""
    from shared.cancel import request_cancel
    from tests.support.pipeline import wait_status

    s, p = secured.settings, secured.settings.subject_prefix
    services = ("catalog", "canceller", "notifier")  # no assembler: the export waits for its assembly
    async with _victim_awaiting_assembly(secured, admin, tmp_path, services) as (procs, t, e, _):
        nc = await connect_as(secured.server.url, "finalizer")
        try:
            ack = await nc.jetstream().publish(f"{p}.{t}.{e}.FinalizeStarted", ev.FinalizeStarted(
                export_id=e, tenant_id=t, producer="finalizer").to_json(), timeout=2)
            assert ack.stream == s.stream_name  # taken: the user may publish it on any export's subject
        finally:
            await nc.close()
        state = (await admin.log.load(t, e)).state
        assert (state.status, state.finalize_started, state.cancellable) == ("assembling", False, True)

        assert await request_cancel(admin.log, t, e, "u") is not None  # the person's cancel is taken
        assert (await wait_status(admin, t, e, timeout=60)).status == "cancelled", procs.logs()
        procs.assert_alive()


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_a_direct_gets_copy_aimed_at_the_jetstream_api_changes_nothing(secured: Secured, admin: Bus,
                                                                             user: str) -> None:
    """The admin calls every service user is refused (the test above), asked the other way round: the
    user stores a body that is such a call's request (``{}``, or nothing) on a subject of its own, then
    asks for a direct get of it naming the call's subject as the reply. No permission checks a reply
    subject, and nats-server publishes its copy there inside the requester's account. On the one
    account of before, its JetStream API took the copy for a request of the account and ran it — no
    user's permissions asked (probed on nats-server 2.15.1 with the notifier's password: the log
    purged, a durable of the catalog deleted, the admission bucket emptied). The copy now lands in
    SVC, which has no JetStream: under the account's API (``$JS.API``) and the user's own
    (``$JS.STORE.API``, which STORE imports only for the calls the allow-lists name), nothing runs it."""
    s = secured.settings
    stream, admission, hb = s.stream_name, f"KV_{s.kv_prefix}_admission", f"KV_{s.kv_prefix}_heartbeats"
    p = s.subject_prefix
    seq = await admin.log.append(ev.ExportRequested(export_id="exp_v", tenant_id="t_v", user_id="u",
                                                    user_email="v@example.org", username="v"), 0)
    await admin.admission.put("tenant.t_v", b'{"activeExportId": "exp_v"}')
    await admin.heartbeats.put("catalog.t_v.exp_v", b"{}")
    before = await _topology(admin, stream)
    own = f"{p}.t_x.e_x.{steps.appends_of(user)[0]}"
    nc = await connect_as(secured.server.url, user)
    try:
        for call, body in [(f".STREAM.PURGE.{stream}", b"{}"), (f".CONSUMER.DELETE.{stream}.catalog", b""),
                           (f".STREAM.PURGE.{admission}", b"{}"), (f".STREAM.DELETE.{hb}", b"")]:
            # each get answered with a real reply first: the aimed ones are served as it is
            await _aim(nc, s, own, [JS_API + call, SERVICE_API + call], body)
    finally:
        await nc.close()
    changed = []
    if (await admin.js.stream_info(stream)).state.first_seq != seq:
        changed.append("the log purged")
    if (await _topology(admin, stream))[1] != before[1]:
        changed.append("a durable deleted")
    if not (await admin.js.stream_info(admission)).state.messages:
        changed.append("the admission bucket purged")
    if hb not in (await _topology(admin, stream))[2]:
        changed.append("the heartbeats bucket deleted")
    assert not changed, changed


@pytest.mark.parametrize(("user", "victim"), [("catalog", "assembler"), ("notifier", "finalizer")])
async def test_a_pull_aimed_at_another_durables_pull_takes_nothing_of_it(secured: Secured, admin: Bus, user: str,
                                                                         victim: str) -> None:
    """A pull's delivery carries a reply subject (its ack) and so reaches an import of the account it
    lands in as a request of its own. With every service user in one account, the catalog pulled its
    own durable naming the assembler's ``CONSUMER.MSG.NEXT`` as the reply: each delivery became a pull
    of the assembler's durable answered to the catalog's ack subject — 512 such filled the durable's
    waiting pulls and the assembler fetched nothing (found by the review, probed on nats-server 2.15.1).
    Each user now has an account of its own, importing only its own calls: the pull is served (its
    durable had messages for them) and the victim's durable is untouched: its account imports no pull of
    the victim's durable, so the aimed replies lead nowhere."""
    s = secured.settings
    p = s.subject_prefix
    own = next(c for c in steps.consumers_of(user))
    theirs = next(c for c in steps.consumers_of(victim))
    for i in range(4):  # something for each durable to deliver: one more of its own than it aims
        await admin.js.publish(f"{p}.t_p.e_{i}.{own.trigger}", b"{}", timeout=2)
        await admin.js.publish(f"{p}.t_p.e_{i}.{theirs.trigger}", b"{}", timeout=2)
    before = await admin.js.consumer_info(s.stream_name, theirs.durable)
    nc = await connect_as(secured.server.url, user)
    try:
        api = nc.jetstream()._prefix
        for _ in range(3):
            await nc.publish(f"{api}.CONSUMER.MSG.NEXT.{s.stream_name}.{own.durable}", b'{"batch": 1, "no_wait": true}',
                             reply=f"{api}.CONSUMER.MSG.NEXT.{s.stream_name}.{theirs.durable}")
        # then its own pull, answered: the server has taken the aimed ones (a connection's messages are
        # read in order), and the durable had messages to deliver to them
        pull = await nc.jetstream().pull_subscribe_bind(own.durable, s.stream_name)
        [got] = await pull.fetch(1, timeout=5)
        await got.ack_sync()
    finally:
        await nc.close()
    after = await admin.js.consumer_info(s.stream_name, theirs.durable)
    assert (after.delivered.stream_seq, after.num_waiting, after.num_ack_pending) == (
        before.delivered.stream_seq, 0, 0), after


async def test_acks_nothing_answers_hold_no_reply_route_past_the_threshold(tmp_path: Path, secured: Secured) -> None:
    """An import keeps a request's reply route in STORE until the answer comes — and an ack with a reply
    subject gets none (the server answers an ack only when asked for a double ack). With the server's
    default threshold, 2 min, each route stayed that long: 200,000 such acks, sent in 2 s by the
    catalog's password, grew nats-server's memory by 146 MB (probed on 2.15.1), 100 MB a second for as
    long as it kept on. Each export's threshold now ends them sooner, an ack's (``ACK_ANSWER_THRESHOLD``:
    the services ask no ack for an answer) within a second or two — at 10 s, a flood still held ~1 GB."""
    monitor = NatsServer(tmp_path / "mon", config_file=tmp_path / "auth.conf", extra_args=["-m", str(free_port())])
    monitor.start()  # the same accounts, with a monitoring port to count STORE's held reply routes
    http_port = int(monitor.extra_args[-1])
    try:
        s = secured.settings
        await (await connect_bus(s, [monitor.url], "test", user=ADMIN, password=PASSWORDS[ADMIN])).close()
        async def held() -> int:
            async with aiohttp.ClientSession() as h, h.get(f"http://127.0.0.1:{http_port}/accountz?acc=STORE") as r:
                return len((await r.json())["account_detail"].get("responses") or {})

        # Acks sent 200 at a time until STORE is seen holding over 100 routes (each held as long as the
        # threshold, 1 s: a single batch followed by one look could be let go before a loaded machine looked)
        nc = await connect_as(monitor.url, "catalog")
        try:
            async def holding() -> bool:
                for i in range(200):
                    await nc.publish(f"$JS.ACK.{s.stream_name}.catalog.1.{i}.{i}.0.0", b"+ACK",
                                     reply=f"_INBOX_catalog.{i}")
                await nc.flush()
                return await held() > 100

            await until(holding, 15, 0, "STORE holding the reply routes of acks nothing answers")
        finally:
            await nc.close()

        async def let_go() -> bool:
            return await held() == 0

        await until(let_go, 5, 0.2, "STORE letting go of the reply routes nothing answered")
    finally:
        monitor.stop()


@pytest.mark.parametrize("puback", [False, True], ids=["copy", "puback"])
@pytest.mark.parametrize("user", ["gateway", "catalog"])
async def test_an_answer_aimed_at_a_subject_the_user_may_publish_is_stored_nowhere_either(
        secured: Secured, admin: Bus, user: str, puback: bool) -> None:
    """Its own account imports the subjects the user may publish — its events, its bucket's keys —
    so an answer aimed at one of them might have gone on to STORE through that import. It does not:
    the server delivers an answer to the requester's subscriptions, not to its account's imports, so
    the gateway's aimed copy or PubAck is no admission slot and no request, the catalog's no beat and
    no event (a user can store there only what it publishes itself, and every reader takes that as
    the user's own)."""
    s = secured.settings
    p, kv = s.subject_prefix, s.kv_prefix
    targets = {"gateway": [f"{p}.t_o.e_o.ExportRequested", f"$KV.{kv}_admission.tenant.t_o"],
               "catalog": [f"{p}.t_o.e_o.CatalogStarted", f"$KV.{kv}_heartbeats.catalog.t_o.e_o"]}[user]
    await _aimed_stores_nothing(secured, admin, *targets, puback=puback, user=user)
