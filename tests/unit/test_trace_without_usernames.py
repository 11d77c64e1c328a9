"""A span an exception leaves names an archive's key as ``exports/<tenant>/<export>/ARCHIVE``, in the
exception event (message and stacktrace) and the span's status. Seen (review rve, after the erasure
audit): the log formatter redacted the key, but OpenTelemetry records ``str(exc)`` and the whole
traceback as they are. A step attempt's span (``<step> process``) and a part upload's span recorded
the store's error naming the archive, ``grove-export-<username>-<date>.zip``: the traces
(``GROVE_OTEL_ENDPOINT``), which ``erase-tenant`` does not erase, kept the username."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from shared.objectstore.port import StoreUnavailable
from shared.runtime import tracing

KEY = "exports/t1/exp_1/grove-export-zqmarkname-2026-12-05.zip"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer(provider.get_tracer("test"))
    yield exporter
    tracing.use_tracer(None)


def _fail() -> None:
    try:
        raise OSError(f"connection reset by peer on grove-exports/{KEY}")
    except OSError as e:
        raise StoreUnavailable(f"ClientOSError: {e} (grove-exports/{KEY} upload u1)") from e


def test_a_step_span_and_a_part_span_keep_no_archive_name(spans: InMemorySpanExporter) -> None:
    with pytest.raises(StoreUnavailable):
        with tracing.step_span("assemble", "assembler", "exports.t1.exp_1.ExportCataloged", None, "t1", "exp_1", 1):
            with tracing.span("upload part 1", "exp_1"):
                _fail()
    finished = spans.get_finished_spans()
    assert sorted(s.name for s in finished) == ["assemble process", "upload part 1"], finished
    for s in finished:
        assert s.status.status_code is StatusCode.ERROR and "exports/t1/exp_1/ARCHIVE upload u1" in str(s.status.description)
        (event,) = [e for e in s.events if e.name == "exception"]
        attrs = dict(event.attributes or {})
        assert attrs["exception.type"].endswith("StoreUnavailable"), attrs
        assert "grove-exports/exports/t1/exp_1/ARCHIVE upload u1" in str(attrs["exception.message"]), attrs
        assert "connection reset by peer on grove-exports/exports/t1/exp_1/ARCHIVE" in str(attrs["exception.stacktrace"])
        assert "zqmark" not in repr((s.status.description, s.events, s.attributes)), s.to_json()


def test_a_span_no_exception_leaves_records_none(spans: InMemorySpanExporter) -> None:
    with tracing.span("upload part 1", "exp_1"):
        pass
    (s,) = spans.get_finished_spans()
    assert s.status.status_code is StatusCode.UNSET and not s.events
