"""Which consumers of a snapshot restore lets through, without a server: the step table's durables as
the set-up makes them, nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.operator.restorable import foreign_consumer
from shared.bus.topology import consumer_config
from shared.core import steps
from shared.runtime.settings import Settings

SETTINGS = Settings(stream_name="EXPORTS", subject_prefix="exports", kv_prefix="grove")
STEP = steps.all_consumers()[0]
OWN = f"exports.*.*.{STEP.trigger}"


def made(**changes: Any) -> dict[str, Any]:
    """The step's durable as the set-up makes it, as nats-server writes it into a snapshot."""
    config = {**json.loads(json.dumps(consumer_config(SETTINGS, STEP).as_dict())), "max_waiting": 512,
              "num_replicas": 0, "metadata": {"_nats.req.level": "0"}, **changes}
    return {k: v for k, v in config.items() if v is not None}


def test_every_durable_of_the_step_table_as_the_set_up_makes_it_passes() -> None:
    for consumer in steps.all_consumers():
        config = json.loads(json.dumps(consumer_config(SETTINGS, consumer).as_dict()))
        assert foreign_consumer("EXPORTS", consumer.durable, config, SETTINGS) is None, consumer.durable
    assert foreign_consumer("EXPORTS", STEP.durable, made(ack_wait=60 * 10**9, num_replicas=3), SETTINGS) is None


@pytest.mark.parametrize(("stream", "name", "config", "says"), [
    ("EXPORTS", "leak", {"durable_name": "leak", "deliver_subject": "x"}, "consumer 'leak', which the set-up never"),
    ("KV_grove_heartbeats", STEP.durable, made(), "which the set-up never makes"),
    ("EXPORTS", STEP.durable, made(deliver_subject="leak.here"), "with deliver_subject not as the set-up"),
    ("EXPORTS", STEP.durable, made(filter_subject="exports.>"), "with filter_subject not as"),
    ("EXPORTS", STEP.durable, made(filter_subjects=[OWN, "exports.>"], filter_subject=None), "with filter_subject"),
    ("EXPORTS", STEP.durable, made(filter_subjects=[OWN], filter_subject="exports.>"), "with filter_subject"),
    # not a subject, nor a list of them: named, not a traceback (a list in set() was a TypeError)
    ("EXPORTS", STEP.durable, made(filter_subject=[OWN]), "with filter_subject not as"),
    ("EXPORTS", STEP.durable, made(filter_subjects=[[OWN]], filter_subject=None), "with filter_subject not as"),
    ("EXPORTS", STEP.durable, made(filter_subjects={OWN: 1}, filter_subject=None), "with filter_subject not as"),
    ("EXPORTS", STEP.durable, made(filter_subject=7), "with filter_subject not as"),
    ("EXPORTS", STEP.durable, made(ack_policy="none"), "with ack_policy not as"),
    ("EXPORTS", STEP.durable, made(ack_policy=None), "with ack_policy not as"),  # left out: the server's none
    ("EXPORTS", STEP.durable, made(deliver_policy="new"), "with deliver_policy"),
    ("EXPORTS", STEP.durable, made(Deliver_Subject="x"), "with Deliver_Subject"),
    ("EXPORTS", STEP.durable, made(durable_name="other"), "which the set-up never makes"),
])
def test_any_other_consumer_is_named(stream: str, name: str, config: dict[str, Any], says: str) -> None:
    assert says in (foreign_consumer(stream, name, config, SETTINGS) or "")
