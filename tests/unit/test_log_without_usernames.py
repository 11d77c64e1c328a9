"""Every service's log line — JSON or plain, message and traceback — names an archive's key as
``exports/<tenant>/<export>/ARCHIVE``. Seen (an erasure audit): the archive's name,
``grove-export-<username>-<date>.zip``, is the requester's username, and a step's failure logged the
store's error naming the key (the finalizer's completion, the canceller's abort), its traceback too: the
log kept the username after ``erase-tenant`` had removed every other copy of it."""

from __future__ import annotations

import json
import logging
import sys

from shared.runtime.logs import JsonFormatter, PlainFormatter

KEY = "exports/t1/exp_1/grove-export-zqmarkname-2026-12-05.zip"


def _record() -> logging.LogRecord:
    try:
        raise RuntimeError(f"503: SlowDown (complete grove-exports/{KEY} upload u1)")
    except RuntimeError:
        exc_info = sys.exc_info()
    return logging.LogRecord("shared.runtime.worker", logging.WARNING, __file__, 1,
                             "finalize exp_1 failed: %s", (f"the store failed on {KEY}",), exc_info)


def test_a_json_line_names_no_archive_by_its_name() -> None:
    doc = json.loads(JsonFormatter("finalizer").format(_record()))
    assert "zqmark" not in json.dumps(doc), doc
    assert doc["msg"] == "finalize exp_1 failed: the store failed on exports/t1/exp_1/ARCHIVE", doc
    assert "grove-exports/exports/t1/exp_1/ARCHIVE upload u1" in doc["exc"], doc


def test_a_plain_line_names_no_archive_by_its_name() -> None:
    line = PlainFormatter().format(_record())
    assert "zqmark" not in line, line
    assert "the store failed on exports/t1/exp_1/ARCHIVE" in line and "RuntimeError: 503" in line, line


def test_other_keys_are_as_they_are() -> None:
    text = "exports/t1/exp_1/work/snapshot-ab.jsonl exports/t1/exp_1/notes.txt grove-exports/x"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, text, (), None)
    assert json.loads(JsonFormatter("x").format(record))["msg"] == text


def test_a_key_after_any_character_is_an_archive_all_the_same() -> None:
    """Seen: only a key after a ``/``, a space, a quote or ``(`` was redacted. A store's answer quoted in
    an error (botocore's ``ResponseParserError`` holds the body it could not read: a completion's
    ``<Key>…</Key>``) and a ``key=…`` kept the username."""
    body = f"b'<CompleteMultipartUploadResult><Key>{KEY}</Key></CompleteMultipartUploadResult>'"
    for text in (f"StoreError: ResponseParserError: invalid XML received:\n{body}", f"key={KEY}", f"key:{KEY}",
                 f"[{KEY}]", f"`{KEY}`", f"a,{KEY}"):
        record = logging.LogRecord("x", logging.WARNING, __file__, 1, "%s", (text,), None)
        for line in (JsonFormatter("x").format(record), PlainFormatter().format(record)):
            assert "zqmark" not in line and "exports/t1/exp_1/ARCHIVE" in line, line
