"""The operator's fix commands (unlock, retry, resend, cancel) against a log anyone on the bus may
have written to: forged or malformed events must not block, crash or mislead them."""

from __future__ import annotations

from typing import Any

from services.gateway import admission as adm
from services.gateway.admission_kv import AdmissionStore
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.runtime.settings import Settings
from tests.integration.operator.test_operator_see_and_fix import cli, events_of, ok


async def test_unlock_is_not_blocked_by_a_malformed_request_every_service_drops(
        values: dict[str, Any], bus: Bus, settings: Settings) -> None:
    """A malformed ExportRequested on a tenant's subjects folds to no export (status None); unlock read
    it as an active export and refused forever: "export exp_junk1 is None in the log; cancel it first"."""
    tenant = "tenant_junk_unlock"
    admission = AdmissionStore(bus, settings, "test")
    export_id = ev.new_export_id()
    assert isinstance(await admission.admit(tenant, export_id, None), adm.Admit)
    await bus.log.append(ev.ExportRequested(export_id=export_id, tenant_id=tenant, user_id="u1",
                                            user_email="a@example.org", username="a"), 0)
    loaded = await bus.log.load(tenant, export_id)
    await bus.log.append(ev.ExportCancelled(export_id=export_id, tenant_id=tenant, producer="gateway"),
                         loaded.last_seq)
    assert isinstance(await admission.admit(tenant, ev.new_export_id(), None), adm.RateLimited)
    await bus.js.publish(f"{settings.subject_prefix}.{tenant}.exp_junk1.ExportRequested", b"{not json",
                         stream=settings.stream_name)
    out = cli(values, "unlock", tenant, "--by", "ada", "--reason", "ticket 1")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert f"it named {export_id}, cancelled" in ok(out)
    assert [e.operator for e in await events_of(bus, tenant, export_id) if isinstance(e, ev.AdmissionUnlocked)] \
        == ["ada"]
