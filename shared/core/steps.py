"""The step table: which service runs which step, on which events, appending which, as which NATS user.

One declarative registry read by the NATS permission generator (``shared/bus/permissions.py``), the
admin set-up that creates every durable consumer (``shared/bus/topology.py``), the AsyncAPI document
(``services/devtools/docs.py``: who publishes each event) and the services' subscriptions. Adding a step or
an event touches this table and its handler.

A service's name is its NATS user name (operators' configuration refers to these: keep them).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.core import events as ev

KvRole = str  # "heartbeats" or "admission": the bucket is ``<kv_prefix>_<role>``


@dataclass(frozen=True)
class Consumer:
    """One durable pull consumer: messages of event type ``trigger`` for a step — and of every type
    that is one (its subclasses: ``ExportFailed``'s per-publisher types), each on its own subject."""

    durable: str
    trigger: str
    description: str = ""

    @property
    def triggers(self) -> tuple[str, ...]:
        """The event types the durable takes (its filter subjects): ``trigger`` first, then its subtypes."""
        base = ev.EVENT_TYPES[self.trigger]
        return (self.trigger, *(name for name, cls in ev.EVENT_TYPES.items()
                                if cls is not base and issubclass(cls, base)))


@dataclass(frozen=True)
class StepSpec:
    """One step of the pipeline, run by a :class:`StepWorker` in ``service``."""

    step: ev.Step
    service: str
    consumers: tuple[Consumer, ...]
    emits: tuple[str, ...]
    label: str  # the metrics label (``grove_step_runs_total{step=…}``)


@dataclass(frozen=True)
class ServiceSpec:
    """One service (one NATS user): its steps plus what it does outside them."""

    name: str
    appends: tuple[str, ...] = ()           # events appended outside a step (gateway, janitor)
    kv_write: tuple[KvRole, ...] = ()       # buckets it puts/deletes keys in
    kv_read: tuple[KvRole, ...] = ()        # buckets it only reads (and hears the puts of)
    wakes_on: tuple[str, ...] = ()          # event types ("*": any) it hears as core messages (wake-ups only)
    reads_stream_info: bool = False         # STREAM.INFO on the log (subjects listing, identity)
    reads_at_leader: bool = False           # STREAM.MSG.GET on the log (a look that decides a deletion)


def _fails(step: ev.Step) -> tuple[str, ...]:
    """A step records its failed attempts, and the export's failure when it gives up, itself, each step
    under types of its own (``ev.ATTEMPT_FAILED``, ``ev.EXPORT_FAILED``): the permissions let only its
    user record that step's failure."""
    return (ev.ATTEMPT_FAILED[step].name(), ev.EXPORT_FAILED[step].name())


STEPS: tuple[StepSpec, ...] = (
    StepSpec("catalog", "catalog", (Consumer("catalog", "ExportRequested",
                                             "Freeze the snapshot of a requested export."),
                                    Consumer("catalog-retry", "ExportRetried", "A retried export that starts over.")),
             ("CatalogStarted", "ExportCataloged", *_fails("catalog")), "catalog"),
    StepSpec("assemble", "assembler", (Consumer("assembler", "ExportCataloged",
                                                "Stream the snapshot into the archive."),
                                       Consumer("assembler-retry", "ExportRetried",
                                                "A retried export that goes on from assembly.")),
             ("UploadStarted", "PartUploaded", "ArchiveAssembled", *_fails("assemble")), "assemble"),
    StepSpec("finalize", "finalizer", (Consumer("finalizer", "ArchiveAssembled",
                                                "Complete the upload and record the archive."),
                                       Consumer("finalizer-retry", "ExportRetried",
                                                "A retried export that goes on from finalize.")),
             ("FinalizeStarted", "ExportCompleted", *_fails("finalize")), "finalize"),
    StepSpec("notify", "notifier", (Consumer("notifier", "ExportCompleted", "Send the export-ready email."),
                                    Consumer("notifier-failed", "ExportFailed",
                                             "Send the export-failed email (every ExportFailed type)."),
                                    Consumer("notifier-resend", "ResendRequested",
                                             "Send the email again (an operator asked).")),
             ("NotificationSent", "NotificationFailed"), "notify"),
    StepSpec("cancel", "canceller", (Consumer("canceller", "CancelRequested",
                                              "Abort the upload of a cancelled export."),),
             ("ExportCancelled", ev.ATTEMPT_FAILED["cancel"].name()), "cancel"),  # a cancel never fails the export
)

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("gateway", appends=("ExportRequested", "CancelRequested"), kv_write=("admission",),
                wakes_on=("*",), reads_stream_info=True),
    # the catalog and the assembler delete objects on what the stream's leader holds (not a replica's copy)
    ServiceSpec("catalog", kv_write=("heartbeats",), reads_at_leader=True),
    # every assembler replica stops an export's task at once on a CancelRequested (then re-reads the log)
    ServiceSpec("assembler", kv_write=("heartbeats",), wakes_on=("CancelRequested",), reads_at_leader=True),
    ServiceSpec("canceller", kv_write=("heartbeats",)),
    ServiceSpec("finalizer", kv_write=("heartbeats",)),
    ServiceSpec("notifier", kv_write=("heartbeats",)),
    # the janitor also completes a cancel whose canceller never finished (it appends ExportCancelled)
    ServiceSpec("janitor", appends=("ExportExpired", ev.EXPORT_FAILED["janitor"].name(), "ExportCancelled"),
                kv_read=("heartbeats",), reads_stream_info=True),
)
ADMIN = "admin"
# Events only operators append, as the admin user (no service user may): event → the command.
ADMIN_EVENTS = {"ExportRetried": "grove-export retry", "ResendRequested": "grove-export resend",
                "AdmissionUnlocked": "grove-export unlock"}
# Events nobody appends any more (no service user may: the admin user can do anything), still read
# from the logs written before: event → what took its place.
RETIRED_EVENTS = {
    "StepFailed": "each step's own failure type (" + ", ".join(c.name() for c in ev.ATTEMPT_FAILED.values()) + ")",
    "ExportFailed": "each publisher's own type (" + ", ".join(c.name() for c in ev.EXPORT_FAILED.values()) + ")",
}
KV_ROLES: tuple[KvRole, ...] = ("heartbeats", "admission")


def step_services() -> tuple[str, ...]:
    """The services that run steps (each a durable-consumer process), in table order."""
    return tuple(dict.fromkeys(s.service for s in STEPS))


def service_names() -> tuple[str, ...]:
    """Every service (one process and one NATS user each): the step services, then the others."""
    return (*step_services(), *(s.name for s in SERVICES if s.name not in step_services()))


def service(name: str) -> ServiceSpec:
    return next(s for s in SERVICES if s.name == name)


def steps_of(name: str) -> tuple[StepSpec, ...]:
    return tuple(s for s in STEPS if s.service == name)


def step(name: str) -> StepSpec:
    return next(s for s in STEPS if s.step == name)


def consumers_of(name: str) -> tuple[Consumer, ...]:
    return tuple(c for s in steps_of(name) for c in s.consumers)


def appends_of(name: str) -> tuple[str, ...]:
    """Every event type the service ``name`` appends, in table order, without repeats."""
    found = [*service(name).appends, *(e for s in steps_of(name) for e in s.emits)]
    return tuple(dict.fromkeys(found))


def publishers_of(event: str) -> tuple[str, ...]:
    """The services allowed to append ``event``."""
    return tuple(s.name for s in SERVICES if event in appends_of(s.name))


def all_consumers() -> tuple[Consumer, ...]:
    return tuple(c for s in STEPS for c in s.consumers)
