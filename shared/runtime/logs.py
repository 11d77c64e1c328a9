"""Structured JSON logs, one object per line, carrying the export id when a record has one.

A line's text comes partly from outside (an access line holds the request's User-Agent and Referer):
every control and bidi character in it is written as its escape (:mod:`shared.core.printable`), so
no one can write a line break (U+2028 and U+0085 are ones to ``str.splitlines()`` and JavaScript),
an escape sequence or a right-to-left override into the log. An archive's key is written
``exports/<tenant>/<export>/ARCHIVE`` wherever a line holds it (a store's error, a traceback): its name
is the requester's username, and the logs outlive ``erase-tenant`` (:func:`shared.core.keys.without_usernames`)."""

from __future__ import annotations

import json
import logging
import sys
import time

from shared.core.keys import without_usernames
from shared.core.printable import json_printable, printable
from shared.runtime import tracing


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "service": self.service, "logger": record.name,
            "msg": without_usernames(record.getMessage()),
        }
        for key in ("export_id", "tenant_id", "step", "seconds"):  # seconds: a duration the line reports
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if (ids := tracing.current_ids()) is not None:
            doc["trace_id"], doc["span_id"] = ids
        if record.exc_info:
            doc["exc"] = without_usernames(self.formatException(record.exc_info))
        return json_printable(json.dumps(doc, ensure_ascii=False))


class PlainFormatter(logging.Formatter):
    """``GROVE_LOG_JSON=false``: ``time level logger: message``, the message's control and bidi
    characters as their escapes (a traceback, added after, keeps its lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return printable(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return without_usernames(super().format(record))  # the traceback too


def setup(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_logs else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("nats").setLevel(logging.WARNING)
