"""NATS users per service, with allow-list permissions: the nats-server config generator.

Generated from the step table (``shared/core/steps.py``): :data:`USERS` is one row per service user,
:func:`permissions` turns a row into its ``permissions`` map, :func:`render_accounts` into the
``accounts { STORE {...} SVC_<user> {...} … }`` block of a nats-server config, and :func:`render_node_config`
into a whole config file for one node of the compose cluster (``deploy/nats/nats-N.conf``,
regenerated with ``python -m shared.bus.permissions deploy/nats``; a test checks the files equal this
output, and the Kubernetes set-up merges ``deploy/nats/auth.conf`` into its NATS config).

What a service user may do — nothing else (every permission is an allow-list)
------------------------------------------------------------------------------
* **Append its own events**: publish ``<prefix>.*.*.<Event>`` for each event type the table says it
  appends. A publish on any other subject is refused by the server (``Permissions Violation``):
  nothing is stored, no PubAck comes back.
* **Read the log without a consumer**: ``$JS.STORE.API.DIRECT.GET.<stream>`` (batched and last-by-subject
  direct get) — every service user may read every export's events (see "still trusted").
* **Read an export's log as the stream's leader holds it** (the catalog and the assembler):
  ``$JS.STORE.API.STREAM.MSG.GET.<stream>``, one message a request, answered only by the leader — for
  the look that decides to delete objects (a direct get is answered by any replica, one still behind
  among them).
* **Its own durables only**: ``CONSUMER.INFO`` and ``CONSUMER.MSG.NEXT`` on ``<stream>.<durable>``
  for each durable of its steps, and ``$JS.ACK.<stream>.<durable>.>`` to ack, nak, term or extend
  its own deliveries.
* **Its own inbox only**: it subscribes to ``_INBOX_<user>.>`` (replies, pull deliveries); clients
  use that inbox prefix (nats-py ``inbox_prefix``), so no user can watch another's deliveries.
* **Its own KV buckets only**: put/delete (``$KV.<bucket>.>``; in the heartbeats bucket only its own
  steps' keys, ``$KV.<bucket>.<step>.>``) where it writes, and stream info and
  gets (``STREAM.INFO``, ``STREAM.MSG.GET``, ``DIRECT.GET`` on ``KV_<bucket>``) where it reads. The
  buckets refuse rollup headers (``shared/bus/topology.py``), so a put on its own key cannot purge the
  rest of the bucket (``Nats-Rollup: all``).
* **The puts of a bucket it only reads** (the janitor's heartbeats, ``$KV.<bucket>.>``): a value no
  worker put stands over a step's beat (the bucket keeps one a key), so the janitor listens for the
  next beat before it judges the step dead (``shared/bus/beats.py`` ``beating``).
* **Core wake-ups** it listens to (the assembler's ``CancelRequested``, the gateway's new events):
  a core message only wakes a service, which then re-reads the log.
* ``STREAM.INFO`` of the log for the gateway (its identity, the last sequence) and the janitor (the
  list of exports' subjects).

No service user may create, update, delete, purge, pause or reset a stream, consumer or bucket, nor
call any other JetStream API: those are the ``admin`` user's (``grove-export setup`` creates the
stream, the buckets and every durable; operators' commands run as admin).

Still trusted: every service user may read the whole log (it holds requesters' email addresses);
each may append its own event types to any export (the notifier may append NotificationSent to any
export; each step's user its own step's ExportFailedAt… to any, counted only while the export is
at that step (``lifecycle._at_its_step``: the catalog's password fails no export past its catalog)
— and the janitor ExportFailedByJanitor to any; the finalizer's FinalizeStarted counts only once
ArchiveAssembled is logged (and no CancelRequested) and its ExportCompleted only after both, the canceller's ExportCancelled only while a cancel can win); the gateway decides who may start and cancel exports; the ``admin`` user may do anything. A
step's failed attempt, and an export's failure at a step, are no longer among them: each step
records them under types of its own (``CatalogAttemptFailed``, …: ``events.ATTEMPT_FAILED``;
``ExportFailedAtCatalog``, …, ``ExportFailedByJanitor``: ``events.EXPORT_FAILED``; listed in the
step table), so only that step's (or the janitor's) user may publish them, and a body naming another
step than its subject's is dropped as forged (``events.decode``). The older ``StepFailed`` and
``ExportFailed``, whose subjects named no step (the catalog's password could use up the assembler's
attempts, or fail any export at its assemble step and have its person mailed the failure), no
service user may append; they are still read from logs written before.

Reply subjects: checked against no permission, and the server answers a JetStream request (PubAck,
direct get, pull) on one inside the requester's account. So the users live in accounts of their own
(:func:`render_accounts`): the stream, the buckets and ``admin`` in ``STORE``; each service user alone in
``SVC_<user>``, which has no JetStream and reaches STORE only through service imports generated from
that user's allow-lists (:func:`imports`) — its JetStream calls under ``$JS.STORE.API``
(:func:`js_domain`) — and hears other users' core messages through stream exports
(:func:`heard_from`). An answer a service user aims lands in its own account, where nothing stores it
and no JetStream API runs it: in one account, a direct get's copy of a stored ``{}`` aimed at
``$JS.API.STREAM.PURGE.<stream>`` purged the log, and copies and PubAcks aimed at an export's subjects
or a bucket's keys were stored there; in one account shared by the service users, a pull's delivery
(which carries a reply subject) aimed at another durable's ``MSG.NEXT`` pulled that durable
(tests/cluster/test_bus_attacks.py). Readers still drop such stored copies (shared/bus/answers.py):
logs from before, and admin's own requests, which answer inside STORE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from shared.core import steps


@dataclass(frozen=True)
class ServiceUser:
    """One NATS user, as the step table describes it."""

    name: str
    events: tuple[str, ...]                 # event types it appends
    durables: tuple[str, ...] = ()          # durable consumers it binds and pulls
    kv_write: tuple[str, ...] = ()          # bucket roles it writes: "heartbeats", "admission"
    kv_read: tuple[str, ...] = ()           # bucket roles it only reads
    wakes_on: tuple[str, ...] = ()          # core subscriptions, "{prefix}" is substituted
    stream_info: bool = False
    steps: tuple[str, ...] = ()             # the steps it runs: it writes only their heartbeat keys
    reads_at_leader: bool = False           # STREAM.MSG.GET on the log: answered by its leader only


def _from_table(spec: steps.ServiceSpec) -> ServiceUser:
    return ServiceUser(spec.name, steps.appends_of(spec.name),
                       tuple(c.durable for c in steps.consumers_of(spec.name)), spec.kv_write, spec.kv_read,
                       tuple(f"{{prefix}}.*.*.{event}" for event in spec.wakes_on), spec.reads_stream_info,
                       tuple(s.step for s in steps.steps_of(spec.name)), spec.reads_at_leader)


USERS: tuple[ServiceUser, ...] = tuple(_from_table(s) for s in steps.SERVICES)
ADMIN = steps.ADMIN


def user(name: str, users: Sequence[ServiceUser] = USERS) -> ServiceUser:
    return next(u for u in users if u.name == name)


def password_env(name: str) -> str:
    """The environment variable holding a user's password (nats-server and the service read it)."""
    return f"NATS_PASSWORD_{name.upper()}"


STORE_ACCOUNT = "STORE"  # the stream, the buckets and the admin user: the only account with JetStream
SERVICE_ACCOUNT_PREFIX = "SVC"  # SVC_<user>: one account per service user, no JetStream, only what STORE exports to it
JS_DOMAIN = STORE_ACCOUNT  # the service users' JetStream API: $JS.STORE.API.…, imported as STORE's $JS.API.…
JS_API = "$JS.API"
SERVICE_API = f"$JS.{JS_DOMAIN}.API"
# How long an import keeps a request's reply route open: until an answer comes (a single answer), or until
# none has come for this long (answers that come as a stream: a batched direct get, a pull's deliveries).
# The server's default, 2 min, held each finished get's route that long (its memory grew 39 → 93 MB over
# 90,000 gets), and the route of each request nothing answers (an ack with a reply subject) as long.
# Every call of ours is answered, or times out, no later.
ANSWER_THRESHOLD = "10s"
# An ack's: the services ack, nak and extend without asking for an answer (nats-py ``msg.ack()``), so a
# reply route of an ack is only ever an attacker's — at 10 s, a flood of them still held ~1 GB.
ACK_ANSWER_THRESHOLD = "1s"
_STREAMED = (".DIRECT.GET.", ".CONSUMER.MSG.NEXT.")


def js_domain(user: str | None, users: Sequence[ServiceUser] = USERS) -> str | None:
    """The JetStream domain a connection as ``user`` calls: the service users' (``SVC_<user>``) reach the
    stream only through STORE's imports, under ``$JS.STORE.API``; admin, and a server without users,
    call JetStream in their own account."""
    return JS_DOMAIN if user in {u.name for u in users} else None


def permissions(u: ServiceUser, *, prefix: str = "exports", kv_prefix: str = "grove",
                stream: str = "EXPORTS") -> dict[str, object]:
    """The ``permissions`` map of one service user: allow-lists only, on the subjects of its account
    (JetStream's API under ``$JS.STORE.API``: :data:`SERVICE_API`)."""
    api = SERVICE_API
    publish = [f"{prefix}.*.*.{event}" for event in u.events]
    publish += [f"{api}.DIRECT.GET.{stream}", f"{api}.DIRECT.GET.{stream}.>"]
    if u.stream_info:
        publish.append(f"{api}.STREAM.INFO.{stream}")
    if u.reads_at_leader:
        publish.append(f"{api}.STREAM.MSG.GET.{stream}")
    for durable in u.durables:
        publish += [f"{api}.CONSUMER.INFO.{stream}.{durable}", f"{api}.CONSUMER.MSG.NEXT.{stream}.{durable}",
                    f"$JS.ACK.{stream}.{durable}.>"]
    for role in dict.fromkeys((*u.kv_write, *u.kv_read)):
        kv_stream = f"KV_{kv_prefix}_{role}"
        publish += [f"{api}.STREAM.INFO.{kv_stream}", f"{api}.STREAM.MSG.GET.{kv_stream}",
                    f"{api}.DIRECT.GET.{kv_stream}", f"{api}.DIRECT.GET.{kv_stream}.>"]
        if role in u.kv_write and role == "heartbeats":  # its own steps' keys only (keys.heartbeat_key)
            publish += [f"$KV.{kv_prefix}_{role}.{step}.>" for step in u.steps]
        elif role in u.kv_write:
            publish.append(f"$KV.{kv_prefix}_{role}.>")
    subscribe = [f"_INBOX_{u.name}.>", *(s.format(prefix=prefix) for s in u.wakes_on)]
    # where it only reads, it hears the puts too: a value no worker put (any user can have the server
    # store its answer under any key) stands over the last beat, and only the puts after it tell
    subscribe += [f"$KV.{kv_prefix}_{role}.>" for role in u.kv_read]
    return {"publish": {"allow": publish}, "subscribe": {"allow": subscribe}}


def _q(s: str) -> str:
    return json.dumps(s)  # a double-quoted string: "$JS..." quoted is a literal, not a variable


def _list(items: Sequence[str], indent: str) -> str:
    inner = "".join(f"{indent}  {_q(i)}\n" for i in items)
    return f"[\n{inner}{indent}]"


def _password(name: str, passwords: Mapping[str, str] | None) -> str:
    if passwords is None:
        return f"${password_env(name)}"  # resolved by nats-server from its environment
    return _q(passwords[name])


def _user_block(u: ServiceUser, password: str, prefix: str, kv_prefix: str, stream: str, ind: str) -> list[str]:
    perms = permissions(u, prefix=prefix, kv_prefix=kv_prefix, stream=stream)
    pub, sub = perms["publish"], perms["subscribe"]
    assert isinstance(pub, dict) and isinstance(sub, dict)
    inner = ind + "        "
    return [
        f"{ind}{{",
        f"{ind}  user: {_q(u.name)}",
        f"{ind}  password: {password}",
        f"{ind}  permissions: {{",
        f"{ind}    publish: {{",
        f"{ind}      allow: {_list(pub['allow'], inner)}",
        f"{ind}    }}",
        f"{ind}    subscribe: {{",
        f"{ind}      allow: {_list(sub['allow'], inner)}",
        f"{ind}    }}",
        f"{ind}  }}",
        f"{ind}}}",
    ]


def service_account(name: str) -> str:
    """The NATS account of one service user: each has its own (:func:`render_accounts`)."""
    return f"{SERVICE_ACCOUNT_PREFIX}_{name}"


def imports(u: ServiceUser, *, prefix: str = "exports", kv_prefix: str = "grove",
            stream: str = "EXPORTS") -> list[tuple[str, str, bool]]:
    """What user ``u``'s account imports from ``STORE`` as services: one import per subject of its own
    publish allow-list, as ``(subject in STORE, subject in its account, streamed answer)``. A JetStream
    API call keeps its name past ``$JS.STORE.API`` (an account without JetStream answers ``$JS.API.…``
    itself: "JetStream not enabled"); appends, KV puts and acks keep theirs. Nothing else of STORE is
    reachable from that account — not even what another service's user may call."""
    pub = permissions(u, prefix=prefix, kv_prefix=kv_prefix, stream=stream)["publish"]
    assert isinstance(pub, dict)
    out = []
    for subject in pub["allow"]:
        store = JS_API + subject.removeprefix(SERVICE_API) if subject.startswith(SERVICE_API + ".") else subject
        out.append((store, subject, any(part in subject for part in _STREAMED)))
    return out


def allowed_publish(name: str, *, prefix: str = "exports", kv_prefix: str = "grove",
                    stream: str = "EXPORTS") -> list[str]:
    """Service user ``name``'s publish allow-list (empty for a name that is no service user)."""
    if name not in {u.name for u in USERS}:
        return []
    pub = permissions(user(name), prefix=prefix, kv_prefix=kv_prefix, stream=stream)["publish"]
    assert isinstance(pub, dict)
    return list(pub["allow"])


def listens(u: ServiceUser, *, prefix: str = "exports", kv_prefix: str = "grove") -> list[str]:
    """The core messages user ``u`` may hear (its subscribe allow-list but its inbox). Its account
    imports them as streams from ``STORE`` — for what is published there (admin's appends and puts: a
    message that reached STORE through another account's import never leaves it again) — and from
    each other user's account that publishes them (:func:`heard_from`)."""
    sub = permissions(u, prefix=prefix, kv_prefix=kv_prefix)["subscribe"]
    assert isinstance(sub, dict)
    return [s for s in sub["allow"] if not s.startswith("_INBOX")]


def within(subject: str, pattern: str) -> bool:
    """Whether every subject ``subject`` (an allow-list entry, wildcards allowed) names also matches
    ``pattern``."""
    have, want = subject.split("."), pattern.split(".")
    for i, w in enumerate(want):
        if w == ">":
            return len(have) > i
        if i >= len(have) or have[i] == ">" or (w != "*" and w != have[i]):
            return False
    return len(have) == len(want)


def heard_from(listener: ServiceUser, users: Sequence[ServiceUser] = USERS, *, prefix: str = "exports",
               kv_prefix: str = "grove") -> list[tuple[str, str]]:
    """``(publisher, subject)``: what ``listener`` hears from each other service user, each subject one
    of the publisher's allow-list that its listens take in whole. A core message a user publishes is
    delivered in its own account (and goes on to STORE through the import), never out of STORE to
    another account — so the publisher's account exports it as a stream to the listener's."""
    out = []
    for other in users:
        if other.name == listener.name:
            continue
        pub = permissions(other, prefix=prefix, kv_prefix=kv_prefix)["publish"]
        assert isinstance(pub, dict)
        out += [(other.name, p) for p in pub["allow"]
                if any(within(p, heard) for heard in listens(listener, prefix=prefix, kv_prefix=kv_prefix))]
    return out


def render_accounts(passwords: Mapping[str, str] | None = None, *, prefix: str = "exports",
                    kv_prefix: str = "grove", stream: str = "EXPORTS", users: Sequence[ServiceUser] = USERS,
                    admin: str = ADMIN) -> str:
    """The ``accounts { STORE {...} SVC_<user> {...} … }`` block of a nats-server config.

    ``STORE`` holds the stream, the buckets and the ``admin`` user; each service user is alone in an
    account of its own (:func:`service_account`), which has no JetStream and reaches STORE only
    through its imports (:func:`imports`, :func:`listens`: generated from that user's allow-lists;
    STORE exports each subject only to the accounts that import it). The server answers a request
    inside the requester's account, and a reply subject is checked against no permission: an answer a
    service user aims lands in its own account, where no stream stores it and no JetStream API runs
    it — a direct get's copy aimed at ``$JS.API.STREAM.PURGE.<stream>`` purges nothing. An answer aimed
    at one of the account's own imports goes on to STORE as that import's request (a pull's delivery
    carries a reply subject of its own), so each account imports one user's calls only: with one
    account for all service users, the catalog's deliveries aimed at the assembler's
    ``CONSUMER.MSG.NEXT`` filled that durable's waiting pulls and stalled it.

    ``passwords`` maps user name → password; without it each password is the environment variable
    ``NATS_PASSWORD_<USER>`` of the nats-server process, so config files hold no secrets.
    """
    wired = {u.name: imports(u, prefix=prefix, kv_prefix=kv_prefix, stream=stream) for u in users}
    heard = {u.name: listens(u, prefix=prefix, kv_prefix=kv_prefix) for u in users}
    services: dict[str, tuple[bool, list[str]]] = {}  # subject in STORE → (streamed, accounts)
    for name, calls in wired.items():
        for store, _, streamed in calls:
            services.setdefault(store, (streamed, []))[1].append(service_account(name))
    streams: dict[str, list[str]] = {}
    for name, subjects in heard.items():
        for subject in subjects:
            streams.setdefault(subject, []).append(service_account(name))
    relayed = {u.name: heard_from(u, users, prefix=prefix, kv_prefix=kv_prefix) for u in users}
    relays: dict[str, dict[str, list[str]]] = {}  # publisher → subject → the accounts that hear it
    for name, pairs in relayed.items():
        for publisher, subject in pairs:
            relays.setdefault(publisher, {}).setdefault(subject, []).append(service_account(name))
            own = permissions(user(name, users), prefix=prefix, kv_prefix=kv_prefix)["publish"]
            assert isinstance(own, dict)
            if any(within(subject, mine) or within(mine, subject) for mine in own["allow"]):
                raise ValueError(f"{publisher}'s {subject}, relayed to {name}, meets one of {name}'s own imports")
    out = ["accounts {", f"  {STORE_ACCOUNT}: {{", "    jetstream: enabled", "    users = [",
           "      {", f"        user: {_q(admin)}", f"        password: {_password(admin, passwords)}", "      }",
           "    ]", "    exports = ["]
    for store, (streamed, accounts) in services.items():
        # every import's reply route ends: one no answer comes for (an ack, which the server answers only
        # when asked for a double ack) was held the server's default 2 min — 200,000 acks with a reply
        # subject, sent in 2 s by one service user, grew nats-server's memory by 146 MB
        answer = "response_type: \"stream\", " if streamed else ""
        acks = store.startswith("$JS.ACK.")
        out.append(f"      {{ service: {_q(store)}, accounts: [{', '.join(map(_q, accounts))}], {answer}"
                   f"response_threshold: {_q(ACK_ANSWER_THRESHOLD if acks else ANSWER_THRESHOLD)} }}")
    for subject, accounts in streams.items():
        out.append(f"      {{ stream: {_q(subject)}, accounts: [{', '.join(map(_q, accounts))}] }}")
    out += ["    ]", "  }"]
    for u in users:
        out += [f"  {service_account(u.name)}: {{", "    users = ["]
        out += _user_block(u, _password(u.name, passwords), prefix, kv_prefix, stream, "      ")
        out += ["    ]", "    imports = ["]
        for store, svc, _ in wired[u.name]:
            to = f", to: {_q(svc)}" if svc != store else ""
            out.append(f"      {{ service: {{ account: {_q(STORE_ACCOUNT)}, subject: {_q(store)} }}{to} }}")
        out += [f"      {{ stream: {{ account: {_q(STORE_ACCOUNT)}, subject: {_q(s)} }} }}" for s in heard[u.name]]
        out += [f"      {{ stream: {{ account: {_q(service_account(publisher))}, subject: {_q(subject)} }} }}"
                for publisher, subject in relayed[u.name]]
        out += ["    ]"]
        if u.name in relays:
            out.append("    exports = [")
            out += [f"      {{ stream: {_q(subject)}, accounts: [{', '.join(map(_q, accounts))}] }}"
                    for subject, accounts in relays[u.name].items()]
            out.append("    ]")
        out += ["  }"]
    out.append("}")
    return "\n".join(out) + "\n"


HEADER = ("# GENERATED by `python -m shared.bus.permissions deploy/nats` from shared/bus/permissions.py.\n"
          "# Do not edit by hand: tests/integration/deploy/test_manifests.py checks it equals the generator.\n"
          "# Passwords are read from the server's environment (NATS_PASSWORD_<USER>).\n")


def render_node_config(node: int, nodes: int = 3, *, cluster: str = "grove", host_prefix: str = "nats-",
                       prefix: str = "exports", kv_prefix: str = "grove", stream: str = "EXPORTS") -> str:
    """A whole nats-server config for node ``node`` (1-based) of the compose cluster."""
    routes = ", ".join(f"nats://{host_prefix}{i}:6222" for i in range(1, nodes + 1))
    return (
        HEADER
        + f"server_name: {_q(f'{host_prefix}{node}')}\n"
        + "listen: \"0.0.0.0:4222\"\n"
        + "http: \"0.0.0.0:8222\"\n"
        + "max_payload: 1MB\n"
        + "jetstream {\n  store_dir: \"/data/jetstream\"\n  max_file_store: 20GB\n}\n"
        + "cluster {\n"
        + f"  name: {_q(cluster)}\n"
        + "  listen: \"0.0.0.0:6222\"\n"
        + f"  routes: [{routes}]\n"
        + "}\n"
        + render_accounts(prefix=prefix, kv_prefix=kv_prefix, stream=stream)
    )


def render_deploy_files(nodes: int = 3, *, prefix: str = "exports", kv_prefix: str = "grove",
                        stream: str = "EXPORTS") -> dict[str, str]:
    """File name → content for ``deploy/nats/``: one config per node and the bare auth block, for the
    deployment's stream, subject prefix and KV prefix (the defaults: the files in the repository)."""
    header = HEADER
    if (prefix, kv_prefix, stream) != ("exports", "grove", "EXPORTS"):
        header += (f"# For GROVE_STREAM_NAME={stream}, GROVE_SUBJECT_PREFIX={prefix}, "
                   f"GROVE_KV_PREFIX={kv_prefix} (from the environment it was generated in).\n")
    files = {f"nats-{i}.conf": header + render_node_config(i, nodes, prefix=prefix, kv_prefix=kv_prefix,
                                                           stream=stream).removeprefix(HEADER)
             for i in range(1, nodes + 1)}
    files["auth.conf"] = header + render_accounts(prefix=prefix, kv_prefix=kv_prefix, stream=stream)
    return files


def _deployment_names() -> tuple[str, str, str]:
    """The subject prefix, KV prefix and stream the deployment's processes use, read as they read them
    (``GROVE_STREAM_NAME``, ``GROVE_SUBJECT_PREFIX``, ``GROVE_KV_PREFIX``; unset: the defaults). The
    generator wrote the defaults' permissions whatever these said: a deployment that set one got a
    config under which every service user was refused its own stream, subjects and buckets."""
    from shared.runtime.settings import Settings  # the generator itself needs no settings otherwise

    fields = {"stream_name": "GROVE_STREAM_NAME", "subject_prefix": "GROVE_SUBJECT_PREFIX",
              "kv_prefix": "GROVE_KV_PREFIX"}
    values = {field: os.environ[var] for field, var in fields.items() if var in os.environ}
    try:
        s = Settings.model_validate(values)
    except ValidationError as e:
        problems = "; ".join(f"{fields[str(err['loc'][0])]}: {err['msg']}" for err in e.errors())
        print(f"shared.bus.permissions: {problems}", file=sys.stderr)
        raise SystemExit(2) from None
    return s.subject_prefix, s.kv_prefix, s.stream_name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write deploy/nats/*.conf from the permissions table, for the "
                                            "GROVE_STREAM_NAME, GROVE_SUBJECT_PREFIX and GROVE_KV_PREFIX "
                                            "the environment sets (unset: the defaults).")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--check", action="store_true", help="exit 1 if the files differ instead of writing")
    args = p.parse_args(argv)
    stale = []
    prefix, kv_prefix, stream = _deployment_names()
    for name, text in render_deploy_files(prefix=prefix, kv_prefix=kv_prefix, stream=stream).items():
        path = args.out_dir / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
