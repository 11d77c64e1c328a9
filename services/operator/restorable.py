"""What a backup may restore: stream configs and consumers the set-up makes, nothing else (allow-lists).

A backup's ``<stream>.json`` config is what ``$JS.API.STREAM.RESTORE`` makes the stream of, and the
snapshot's consumers are what nats-server makes beside it; the checksums are in the same folder, so
they prove nothing against whoever could write it. So each key of a config must be one the set-up
makes (shared/eventlog/jetstream.py ``stream_config``, shared/bus/topology.py ``kv_stream_config``)
or one nats-server writes with its default, and each restored consumer one of the step table's
durables as the set-up makes it; anything else is named and refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nats.js.api import StreamConfig

from shared.bus.topology import consumer_config, filter_subjects, kv_config, kv_stream_config
from shared.core import steps
from shared.eventlog.jetstream import stream_config
from shared.runtime.settings import Settings

NS = 1_000_000_000
Rule = Callable[[Any, Any, bool], bool]  # (the backup's value, the set-up's, a bucket's stream?) -> accepted


def _json(config: StreamConfig) -> dict[str, Any]:
    return dict(json.loads(json.dumps(config.as_dict())))


def setup_configs(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each stream's config as the set-up makes it, in the server's JSON (nanoseconds, lower-case enums)."""
    log = stream_config(settings.stream_name, settings.subject_prefix, settings.stream_replicas,
                        settings.stream_max_age_days)
    made = {settings.stream_name: _json(log)}
    for role in steps.KV_ROLES:
        kv = kv_config(settings, role)
        made[f"KV_{kv.bucket}"] = _json(kv_stream_config(kv))
    return made


# What nats-server (2.10 to 2.15) writes for a key the set-up leaves unset: compared as the set-up's.
SERVER_DEFAULTS: dict[str, Any] = {"retention": "limits", "max_bytes": -1, "max_msgs": -1, "max_consumers": -1,
                                   "max_msg_size": -1, "compression": "none", "allow_msg_ttl": False,
                                   "mirror_direct": False, "consumer_limits": {}}


def _same(v: Any, want: Any, kv: bool) -> bool:
    return type(v) is type(want) and bool(v == want)


def _unset(v: Any, want: Any, kv: bool) -> bool:
    return v in (None, False, 0, "", [], {})


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _server_metadata(v: Any, want: Any = None, kv: bool = False) -> bool:
    """The server's own bookkeeping (``_nats.req.level``, ``_nats.ver``): inert. The set-up writes none."""
    return isinstance(v, dict) and all(isinstance(k, str) and k.startswith("_nats.") and isinstance(x, str)
                                       for k, x in v.items())


STREAM_RULES: dict[str, Rule] = {
    # Must be the set-up's: another retention (interest, work queue) or discard drops events as they are
    # acknowledged or at a full stream; memory storage loses the log at a restart; a limit of messages,
    # bytes, size, per subject or consumers deletes or refuses events and durables the steps need;
    # deny_purge, sealed or no_ack stop erase or appends; mirror_direct answers reads from a mirror.
    **{k: _same for k in ("storage", "retention", "discard", "max_msgs", "max_bytes", "max_msg_size",
                          "max_msgs_per_subject", "max_consumers", "deny_purge", "sealed", "mirror_direct",
                          "compression", "consumer_limits", "discard_new_per_subject", "no_ack")},
    # Another deployment's replicas, max age and duplicate window are accepted and restored as this
    # deployment's set-up makes them (:func:`as_restored`).
    "num_replicas": lambda v, want, kv: _count(v) and 1 <= v <= 5,
    "max_age": lambda v, want, kv: _count(v) and v >= 0,
    # a bucket's is two minutes, or its TTL when shorter (a backup's TTL may be another deployment's)
    "duplicate_window": lambda v, want, kv: _count(v) and 0 <= v <= max(want, 120 * NS),
    # A bucket made by the old layout (each service made its own): no direct get, rollup headers on —
    # restore turns them off as the set-up does (:func:`as_restored`). The log's must be the set-up's.
    "allow_direct": lambda v, want, kv: v is want or (kv and isinstance(v, bool)),
    "allow_rollup_hdrs": lambda v, want, kv: v is want or (kv and isinstance(v, bool)),
    "allow_msg_ttl": lambda v, want, kv: v is want or (kv and isinstance(v, bool)),  # on the log, events expire
    # The log's deny_delete stays on once on (nats-server never clears it: EventLog.ensure_stream keeps it)
    "deny_delete": lambda v, want, kv: v is want or (not kv and isinstance(v, bool)),
    "metadata": _server_metadata,
    # Written by nats-server only when set; the set-up never sets them (republish copies every event to
    # another subject, sources and mirror take in another stream's messages, subject_transform rewrites
    # subjects, placement pins the stream to servers, first_seq starts it elsewhere).
    **{k: _unset for k in ("description", "republish", "sources", "mirror", "subject_transform", "placement",
                           "template_owner", "first_seq", "subject_delete_marker_ttl", "allow_atomic",
                           "allow_msg_counter", "allow_msg_schedules", "allow_batched", "persist_mode")},
}


# What nats-server reads a key the config leaves out as (Go's zero value, then the server's default):
# a config without ``discard`` is a stream that discards old messages, whatever the set-up's says.
STREAM_ABSENT: dict[str, Any] = {
    "retention": "limits", "storage": "file", "discard": "old", "num_replicas": 1, "max_age": 0,
    "duplicate_window": 0, "compression": "none", "consumer_limits": {},
    **dict.fromkeys(("max_msgs", "max_bytes", "max_msgs_per_subject", "max_msg_size", "max_consumers"), -1),
    **dict.fromkeys(("allow_direct", "allow_rollup_hdrs", "allow_msg_ttl", "deny_delete", "deny_purge", "sealed",
                     "mirror_direct", "no_ack"), False)}


def foreign_stream_fields(name: str, config: dict[str, Any], settings: Settings) -> list[str]:
    """The keys of a backup's config for stream ``name`` (one of the deployment's) that the set-up never
    makes so; ``name`` and ``subjects`` are checked before."""
    kv = name != settings.stream_name
    want = {**SERVER_DEFAULTS, **setup_configs(settings)[name]}
    return [k for k, v in {**STREAM_ABSENT, **config}.items() if k not in ("name", "subjects")
            and (k not in STREAM_RULES or not STREAM_RULES[k](v, want.get(k), kv))]


def as_restored(name: str, config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The config restore sends: the replicas, max age and duplicate window this deployment's set-up
    gives the stream, and a bucket's rollup headers off, as the set-up turns them off (on, a
    ``Nats-Rollup: all`` on the one key a user may write purged every other step's heartbeat). Sent as
    the backup had them, a max age of one second (the server expires at once what is older) emptied the
    restored log before ``setup`` could put this deployment's back."""
    made = setup_configs(settings)[name]
    own = {k: made[k] for k in ("num_replicas", "max_age", "duplicate_window")}
    return {**config, **own} if name == settings.stream_name else {**config, **own, "allow_rollup_hdrs": False}


CONSUMER_RULES: dict[str, Rule] = {
    # A pull durable acknowledging each event explicitly, from the first, redelivered for ever, as the
    # set-up makes each one: another ack or deliver policy loses or skips steps' events.
    **{k: _same for k in ("ack_policy", "deliver_policy", "max_deliver", "replay_policy")},
    # Flow control a release or deployment may have set otherwise (GROVE_ACK_WAIT_S; GROVE_MAX_ACK_PENDING
    # for a while): setup puts the set-up's back on every durable after the restore.
    "ack_wait": lambda v, want, kv: _count(v) and v > 0,
    "max_ack_pending": lambda v, want, kv: _count(v) and v > 0,
    "max_waiting": lambda v, want, kv: _count(v) and v > 0,  # nats-server's default (512): pull requests waiting
    "num_replicas": lambda v, want, kv: _count(v) and 0 <= v <= 5,  # 0: the stream's
    "metadata": _server_metadata,
    # Never set by the set-up: a deliver subject pushes every event it takes to that subject, to
    # whoever listens there; the rest are push, sampling, paused or memory-only durables.
    **{k: _unset for k in ("description", "deliver_subject", "deliver_group", "flow_control", "idle_heartbeat",
                           "headers_only", "max_batch", "max_expires", "max_bytes", "inactive_threshold",
                           "backoff", "mem_storage", "sample_freq", "rate_limit_bps", "opt_start_seq",
                           "opt_start_time", "pause_until", "priority_groups", "priority_policy",
                           "priority_timeout", "direct")},
}


CONSUMER_ABSENT: dict[str, Any] = {"ack_policy": "none", "deliver_policy": "all", "replay_policy": "instant",
                                   "max_deliver": -1, "max_ack_pending": 1000, "ack_wait": 30 * NS,
                                   "max_waiting": 512, "num_replicas": 0}


def foreign_consumer(stream: str, name: str, config: dict[str, Any], settings: Settings) -> str | None:
    """Why consumer ``name`` of stream ``stream``'s snapshot (its config as the server will read it) is
    not one the set-up makes, None when it is: a bucket's stream has none; the log's are the step
    table's durables, each taking its own trigger subjects (some of them: a durable made before a step
    took a second trigger takes one, and setup gives it the rest)."""
    step = next((c for c in steps.all_consumers() if c.durable == name), None)
    if stream != settings.stream_name or step is None or config.get("durable_name") != name \
            or config.get("name", name) != name:
        return f"consumer {name!r}, which the set-up never makes"
    want = json.loads(json.dumps(consumer_config(settings, step).as_dict()))
    taken = config.get("filter_subjects") or [config.get("filter_subject")]
    both = bool(config.get("filter_subjects")) and bool(config.get("filter_subject"))  # the server refuses it
    texts = isinstance(taken, list) and all(isinstance(t, str) for t in taken)  # a list or number: not a subject
    wrong = [] if texts and set(taken) <= set(filter_subjects(settings, step)) and not both else ["filter_subject"]
    wrong += [k for k, v in {**CONSUMER_ABSENT, **config}.items() if k not in ("name", "durable_name", "filter_subject", "filter_subjects")
              and (k not in CONSUMER_RULES or not CONSUMER_RULES[k](v, want.get(k), False))]
    return f"durable {name} with {', '.join(wrong)} not as the set-up makes it" if wrong else None
