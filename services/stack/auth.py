"""NATS users per service, with subject permissions: the nats-server config generator.

One table (:data:`USERS`) says what each service may append to the event log and which core
subjects it may listen on; :func:`render_authorization` turns it into the ``authorization { users
= [...] }`` block of a nats-server config, and :func:`render_node_config` into a whole config file
for one node of the compose cluster (``deploy/nats/nats-N.conf``, regenerated with
``python -m services.stack.auth deploy/nats``; a test checks the files equal this output).

What is locked down, and what is not (the trade-off)
-----------------------------------------------------
* **Event subjects are exact.** Appending to the log is an ordinary publish on
  ``<prefix>.<tenant>.<export>.<Event>`` that JetStream stores, so a publish allow-list of
  ``<prefix>.*.*.<Event>`` per event the service owns is what stops the finalizer from appending
  ``PartUploaded`` or the notifier from appending ``ExportCompleted``. The server refuses the publish
  (``Permissions Violation``); nothing reaches the stream and the client gets no PubAck.
* **KV writes are per bucket.** Step services write heartbeats (``$KV.<kv_prefix>_heartbeats.>``),
  only the gateway writes admission slots (``$KV.<kv_prefix>_admission.>``).
* **Core subscriptions** are limited to ``_INBOX.>`` (request replies, pull-consumer deliveries,
  ordered-consumer pushes) plus, for the assembler, the plain ``CancelRequested`` subscription.
* **The JetStream API is broad.** Every user may publish ``$JS.API.>`` (minus the destructive calls
  in :data:`JS_API_DENY`: deleting or purging streams, deleting messages or consumers, snapshots,
  restores, peer removal, server and meta operations), ``$JS.ACK.>`` and ``$JS.FC.>``. A minimal
  per-call list is possible (``$JS.API.STREAM.INFO.<stream>``, ``$JS.API.CONSUMER.MSG.NEXT.<stream>.
  <durable>``, ``$JS.API.DIRECT.GET.<stream>.>``, the KV streams' equivalents, ordered consumers'
  ``CONSUMER.CREATE`` forms…) but it changes with client library versions and breaks in ways that
  look like time-outs. Consequence: any service user can *read* the whole log through a consumer of
  its own making, and can create consumers and streams (which the services do at start-up, see
  below). It cannot append another service's events, write another service's KV keys, delete or
  purge the log, or delete another service's durable consumer.
* ``_INBOX.>`` is shared: a user could listen to replies meant for another. Per-user inbox prefixes
  (nats-py ``inbox_prefix``) would close that; not done.
* Streams, KV buckets and durable consumers are created idempotently by every process at start-up
  (``shared/bus.py``, ``shared/runtime.py``), so service users keep ``STREAM.CREATE`` and
  ``CONSUMER.CREATE``. ``STREAM.UPDATE`` is denied to them: an existing stream is only changed by the
  ``admin`` user (a service whose settings differ from the stream's fails at start instead of
  silently rewriting the log's retention).

The ``admin`` user has no restrictions: set-up, ``grove-export events``, operators.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceUser:
    """One NATS user: the events it appends, the KV buckets it writes, core subjects it reads."""

    name: str
    events: tuple[str, ...]
    kv_write: tuple[str, ...] = ()          # bucket roles: "heartbeats", "admission"
    subscribe: tuple[str, ...] = ()         # extra core subscriptions, "{prefix}" is substituted


# Which events each service appends.
USERS: tuple[ServiceUser, ...] = (
    ServiceUser("gateway", ("ExportRequested", "CancelRequested"), kv_write=("admission",)),
    ServiceUser("catalog", ("CatalogStarted", "ExportCataloged", "StepFailed", "ExportFailed"),
                kv_write=("heartbeats",)),
    ServiceUser("assembler", ("UploadStarted", "PartUploaded", "ArchiveAssembled", "StepFailed", "ExportFailed"),
                kv_write=("heartbeats",), subscribe=("{prefix}.*.*.CancelRequested",)),
    ServiceUser("canceller", ("ExportCancelled", "StepFailed"), kv_write=("heartbeats",)),
    ServiceUser("finalizer", ("FinalizeStarted", "ExportCompleted", "StepFailed", "ExportFailed"),
                kv_write=("heartbeats",)),
    ServiceUser("notifier", ("NotificationSent", "NotificationFailed"), kv_write=("heartbeats",)),
    ServiceUser("janitor", ("ExportExpired", "ExportFailed", "ExportCancelled")),
)
ADMIN = "admin"

JS_API_DENY: tuple[str, ...] = (
    "$JS.API.STREAM.DELETE.>",
    "$JS.API.STREAM.PURGE.>",
    "$JS.API.STREAM.UPDATE.>",
    "$JS.API.STREAM.MSG.DELETE.>",
    "$JS.API.STREAM.SNAPSHOT.>",
    "$JS.API.STREAM.RESTORE.>",
    "$JS.API.STREAM.PEER.REMOVE.>",
    "$JS.API.STREAM.LEADER.STEPDOWN.>",
    "$JS.API.CONSUMER.DELETE.>",
    "$JS.API.ACCOUNT.PURGE.>",
    "$JS.API.SERVER.>",
    "$JS.API.META.>",
)
JS_COMMON: tuple[str, ...] = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>")


def user(name: str, users: Sequence[ServiceUser] = USERS) -> ServiceUser:
    return next(u for u in users if u.name == name)


def password_env(name: str) -> str:
    """The environment variable holding a user's password (nats-server and the service read it)."""
    return f"NATS_PASSWORD_{name.upper()}"


def permissions(u: ServiceUser, *, prefix: str = "exports", kv_prefix: str = "grove") -> dict[str, object]:
    """The ``permissions`` map of one service user."""
    buckets = {"heartbeats": f"{kv_prefix}_heartbeats", "admission": f"{kv_prefix}_admission"}
    publish = [f"{prefix}.*.*.{event}" for event in u.events]
    publish += [f"$KV.{buckets[role]}.>" for role in u.kv_write]
    publish += list(JS_COMMON)
    subscribe = ["_INBOX.>", *(s.format(prefix=prefix) for s in u.subscribe)]
    return {"publish": {"allow": publish, "deny": list(JS_API_DENY)}, "subscribe": {"allow": subscribe}}


def _q(s: str) -> str:
    return json.dumps(s)  # a double-quoted string: "$JS..." quoted is a literal, not a variable


def _list(items: Sequence[str], indent: str) -> str:
    inner = "".join(f"{indent}  {_q(i)}\n" for i in items)
    return f"[\n{inner}{indent}]"


def _password(name: str, passwords: Mapping[str, str] | None) -> str:
    if passwords is None:
        return f"${password_env(name)}"  # resolved by nats-server from its environment
    return _q(passwords[name])


def render_authorization(passwords: Mapping[str, str] | None = None, *, prefix: str = "exports",
                         kv_prefix: str = "grove", users: Sequence[ServiceUser] = USERS,
                         admin: str | None = ADMIN) -> str:
    """The ``authorization { users = [...] }`` block.

    ``passwords`` maps user name → password; without it each password is the environment variable
    ``NATS_PASSWORD_<USER>`` of the nats-server process, so config files hold no secrets.
    """
    out = ["authorization {", "  users = ["]
    if admin:
        out += ["    {", f"      user: {_q(admin)}", f"      password: {_password(admin, passwords)}", "    }"]
    for u in users:
        perms = permissions(u, prefix=prefix, kv_prefix=kv_prefix)
        pub, sub = perms["publish"], perms["subscribe"]
        assert isinstance(pub, dict) and isinstance(sub, dict)
        ind = "          "
        out += [
            "    {",
            f"      user: {_q(u.name)}",
            f"      password: {_password(u.name, passwords)}",
            "      permissions: {",
            "        publish: {",
            f"          allow: {_list(pub['allow'], ind)}",
            f"          deny: {_list(pub['deny'], ind)}",
            "        }",
            "        subscribe: {",
            f"          allow: {_list(sub['allow'], ind)}",
            "        }",
            "      }",
            "    }",
        ]
    out += ["  ]", "}"]
    return "\n".join(out) + "\n"


HEADER = ("# GENERATED by `python -m services.stack.auth deploy/nats` from services/stack/auth.py.\n"
          "# Do not edit by hand: tests/integration/deploy/test_manifests.py checks it equals the generator.\n"
          "# Passwords are read from the server's environment (NATS_PASSWORD_<USER>).\n")


def render_node_config(node: int, nodes: int = 3, *, cluster: str = "grove", host_prefix: str = "nats-",
                       prefix: str = "exports", kv_prefix: str = "grove") -> str:
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
        + render_authorization(prefix=prefix, kv_prefix=kv_prefix)
    )


def render_deploy_files(nodes: int = 3) -> dict[str, str]:
    """File name → content for ``deploy/nats/``: one config per node and the bare auth block."""
    files = {f"nats-{i}.conf": render_node_config(i, nodes) for i in range(1, nodes + 1)}
    files["auth.conf"] = HEADER + render_authorization()
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write deploy/nats/*.conf from the permissions table.")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--check", action="store_true", help="exit 1 if the files differ instead of writing")
    args = p.parse_args(argv)
    stale = []
    for name, text in render_deploy_files().items():
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
