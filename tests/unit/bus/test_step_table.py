"""The step table and the permissions generated from it: allow-lists, one owner per durable."""

from __future__ import annotations

from services.devtools.docs import PUBLISHERS
from shared.bus.permissions import USERS, permissions
from shared.core import events as ev
from shared.core import steps

NAMES = ["admin", "gateway", "catalog", "assembler", "canceller", "finalizer", "notifier", "janitor"]


def test_user_names_stay_what_operators_configured() -> None:
    assert [steps.ADMIN, *(u.name for u in USERS)] == NAMES


def test_every_event_has_a_publisher_and_every_durable_one_owner() -> None:
    assert set(PUBLISHERS) == set(ev.EVENT_TYPES)
    assert all(steps.publishers_of(name) or name in {**steps.ADMIN_EVENTS, **steps.RETIRED_EVENTS}
               for name in ev.EVENT_TYPES)
    assert not any(steps.publishers_of(name) for name in steps.ADMIN_EVENTS)  # operators' (admin) only
    assert not any(steps.publishers_of(name) for name in steps.RETIRED_EVENTS)  # read in older logs only
    durables = [c.durable for c in steps.all_consumers()]
    assert len(durables) == len(set(durables))
    assert all(c.trigger in ev.EVENT_TYPES for c in steps.all_consumers())
    assert all(e in ev.EVENT_TYPES for s in steps.STEPS for e in s.emits)


def test_the_canceller_is_its_own_service_with_its_own_durable() -> None:
    assert steps.step("cancel").service == "canceller"
    assert [c.durable for c in steps.consumers_of("canceller")] == ["canceller"]
    assert steps.publishers_of("ExportCancelled") == ("canceller", "janitor")  # an abandoned cancel


def test_permissions_are_allow_lists_with_no_admin_call_and_only_own_durables_and_inbox() -> None:
    for u in USERS:
        perms = permissions(u, prefix="exports", kv_prefix="grove", stream="EXPORTS")
        pub, sub = perms["publish"], perms["subscribe"]
        assert isinstance(pub, dict) and isinstance(sub, dict)
        assert set(pub) == {"allow"} and set(sub) == {"allow"}, "no deny lists: everything not allowed is refused"
        api = [s for s in pub["allow"] if s.startswith("$JS.API.")]
        for subject in api:
            assert not subject.endswith(".>") or subject.startswith("$JS.API.DIRECT.GET."), subject
            verb = subject.split(".")[2:4]
            assert verb in (["DIRECT", "GET"], ["STREAM", "INFO"], ["STREAM", "MSG"], ["CONSUMER", "INFO"],
                            ["CONSUMER", "MSG"]), subject
        own = {c.durable for c in steps.consumers_of(u.name)}
        consumer_subjects = [s for s in pub["allow"] if s.startswith(("$JS.API.CONSUMER.", "$JS.ACK."))]
        assert {s.split(".")[-1] if s.startswith("$JS.API.") else s.split(".")[3] for s in consumer_subjects} == own
        assert sub["allow"][0] == f"_INBOX_{u.name}.>" and "_INBOX.>" not in sub["allow"]
        events = {s.split(".")[-1] for s in pub["allow"] if s.startswith("exports.")}
        assert events == set(u.events)
