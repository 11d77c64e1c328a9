"""The INFO line of a request the parser refused says why, never the request's own bytes (a
download link's sig, a bearer token): :func:`shared.runtime.httpserve.reason_of`."""

from __future__ import annotations

import pytest

from shared.runtime.httpserve import reason_of


@pytest.mark.parametrize(("message", "said"), [
    ("Invalid char in url query:\n\n  b'GET /d?exp=1&sig=0123abcd HTTP/1.1'\n  ^", "Invalid char in url query"),
    ("Invalid header value char:\n\n  b'Authorization: Bearer eyJhbGci'\n  ^",
     "Invalid header value char (in the Authorization field)"),
    ("Invalid header token:\n\n  b'Authorization Bearer eyJhbGci'\n  ^", "Invalid header token"),
    ("Got more than 8190 bytes when reading: b'Cookie: session=abcd...'.",
     "Got more than 8190 bytes when reading (in the Cookie field)"),
    ("Bad status line 'GET /d?sig=0123abcd'", "Bad status line"),
    # the compiled parser's request line over its limit (review rv1: logged the target's first 100 bytes)
    ("Got more than 8190 bytes when reading: bytearray(b'/d?sig=0123abcd&utm=AAAA...').",
     "Got more than 8190 bytes when reading"),
    # the pure-Python parser's (AIOHTTP_NO_EXTENSIONS) request line with no version
    ("Bad HTTP method in status line 'GET /d?sig=0123abcd'", "Bad HTTP method in status line"),
    ("Duplicate 'Content-Length' header found.", "Duplicate 'Content-Length' header found."),
    ("Too many headers received", "Too many headers received"),
])
def test_a_parser_error_is_logged_without_the_bytes_it_quotes(message: str, said: str) -> None:
    assert reason_of(message) == said
