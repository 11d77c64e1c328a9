"""OpenTelemetry tracing, off unless ``GROVE_OTEL_ENDPOINT`` names an OTLP/HTTP traces endpoint.

Off, nothing here imports OpenTelemetry and every helper returns at once: no cost. On:

* The gateway's ``POST /api/export`` is a SERVER span: the root of the request's trace.
* Every append to the log is a PRODUCER span (``create <Event>``, messaging operation ``create``)
  whose context rides in the NATS message headers (W3C ``traceparent``).
* Every step attempt is a CONSUMER span (``<step> process``) that starts a trace of its own and is
  *linked* to the ``create`` span of the event that triggered it — so an export that resumes hours
  later is not one trace that never ends, yet every span carries ``grove.export_id`` and is found
  by it. The attempt's work (part uploads, its own appends) are its children.
* JSON log lines carry ``trace_id`` and ``span_id`` while a span is current.

Follows OpenTelemetry's messaging conventions (``messaging.system=nats``, operation type,
destination, consumer group, message id).
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from shared.core import events as ev
    from shared.runtime.settings import Settings

EXPORT_ID = "grove.export_id"
TENANT_ID = "grove.tenant_id"
STEP = "grove.step"

_tracer: Tracer | None = None


def enabled() -> bool:
    return _tracer is not None


def setup(service: str, settings: Settings) -> None:
    """Start exporting spans of this process (``grove-<service>``) when an endpoint is set."""
    global _tracer
    if not settings.otel_endpoint or _tracer is not None:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"grove-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint)))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # flush what ended on a clean exit (SIGTERM); a kill loses it
    _tracer = trace.get_tracer("grove-export")


@contextlib.contextmanager
def _current_span(name: str, **options: Any) -> Iterator[Span]:
    """The tracer's ``start_as_current_span``, an exception leaving it recorded (event and status) with an
    archive's key as ``exports/<tenant>/<export>/ARCHIVE`` (:func:`shared.core.keys.without_usernames`).
    OpenTelemetry records ``str(exc)`` and the whole traceback as they are, and a step's failure holds
    the store's error naming the key, whose name is the requester's username: the trace kept it after
    ``erase-tenant``, as the logs did before their formatter (the traces are not erased either)."""
    import traceback

    from opentelemetry.trace import Status, StatusCode

    from shared.core.keys import without_usernames

    assert _tracer is not None
    with _tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False,
                                       **options) as span:
        try:
            yield span
        except Exception as e:  # as OpenTelemetry's own: not a GeneratorExit or a cancellation
            if span.is_recording():
                span.record_exception(e, attributes={
                    "exception.message": without_usernames(str(e)),
                    "exception.stacktrace": without_usernames("".join(traceback.format_exception(e)))})
                span.set_status(Status(StatusCode.ERROR, without_usernames(f"{type(e).__name__}: {e}")))
            raise


def use_tracer(tracer: Tracer | None) -> None:
    """Install a tracer directly (tests with an in-memory exporter); None turns tracing off."""
    global _tracer
    _tracer = tracer


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines; None when off or none."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def message_headers(event: ev.Event, subject: str) -> dict[str, str]:
    """The ``create`` span of one appended event, ended at once; its context as NATS headers."""
    if _tracer is None:
        return {}
    from opentelemetry import propagate, trace

    with _current_span(
            f"create {event.name()}", kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.operation.type": "create",
                        "messaging.operation.name": "create", "messaging.destination.name": subject,
                        "messaging.message.id": event.event_id, EXPORT_ID: event.export_id,
                        TENANT_ID: event.tenant_id}):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier


@contextlib.contextmanager
def step_span(step: str, durable: str, subject: str, headers: Mapping[str, str] | None,
              tenant_id: str, export_id: str, attempt: int) -> Iterator[Span | None]:
    """One step attempt: a new trace, linked to the ``create`` span of the triggering event."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import context, propagate, trace

    linked = trace.get_current_span(propagate.extract(dict(headers or {}))).get_span_context()
    links = [trace.Link(linked, {"messaging.operation.type": "create"})] if linked.is_valid else []
    with _current_span(
            f"{step} process", context=context.Context(), kind=trace.SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "nats", "messaging.operation.type": "process",
                        "messaging.operation.name": "process", "messaging.destination.name": subject,
                        "messaging.consumer.group.name": durable, EXPORT_ID: export_id, TENANT_ID: tenant_id,
                        STEP: step, "grove.attempt": attempt}) as span:
        yield span


@contextlib.contextmanager
def span(name: str, export_id: str, **attributes: Any) -> Iterator[Span | None]:
    """A child span of the current one (a part upload, say), carrying the export id."""
    if _tracer is None:
        yield None
        return
    with _current_span(name, attributes={EXPORT_ID: export_id, **attributes}) as s:
        yield s


@contextlib.contextmanager
def server_span(method: str, route: str, path: str) -> Iterator[Span | None]:
    """An HTTP request handled by the gateway: the root of its trace."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import context, trace

    with _current_span(
            f"{method} {route}", context=context.Context(), kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route, "url.path": path}) as s:
        yield s


def set_export(span_: Span | None, tenant_id: str, export_id: str) -> None:
    if span_ is not None:
        span_.set_attribute(EXPORT_ID, export_id)
        span_.set_attribute(TENANT_ID, tenant_id)
