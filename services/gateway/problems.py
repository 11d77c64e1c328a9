"""Errors of the gateway and the one middleware that turns them into ``application/problem+json``.

Errors::

    Problem                   status, code GROVE-EXPORT-NNN, title, detail, extras, headers
    ├── Unauthorized          001  401  missing, tampered or expired token
    ├── ExportInProgress      002  409  the tenant has an active export (activeExportId)
    ├── RateLimited           003  429  one new export per hour (Retry-After, nextAllowedAt)
    ├── BadRequest            004  400  malformed JSON, unknown fields, wrong types (errors)
    │   ├── IdempotencyMismatch  004  422  Idempotency-Key reused with another body
    │   ├── MethodNotAllowed     004  405  a known path with another method
    │   ├── UnsupportedMediaType 004  415  a body not sent as application/json, or in a Content-Encoding not decoded
    │   ├── TransferCodingNotImplemented  004  501  a Transfer-Encoding other than chunked
    │   ├── HeadTooLarge         004  431  a header field over 8,190 bytes, or too many fields
    │   ├── UriTooLong           004  414  a request target over 8,192 bytes
    │   └── ExpectationFailed    004  417  an Expect header other than 100-continue
    ├── NotFound              005  404  no such export for this tenant, bad id, unknown route (or folder)
    ├── NotCancellable        006  409  terminal, or the archive is being completed
    ├── TooLarge              007  413  body over settings.max_body_bytes
    ├── Unavailable           008  503  the bus or the store did not answer
    ├── Expired               009  410  the export (or the download link) expired
    ├── RangeNotSatisfiable   010  416  a download's Range names no byte of the archive, or several
    ├── PreconditionFailed    011  412  a download's If-Match or If-Unmodified-Since no longer holds
    └── TooManyDownloads      012  429  the tenant already has GROVE_DOWNLOADS_PER_TENANT downloads under way
    (Problem itself: 500 GROVE-EXPORT-000, a bug; the detail says nothing more)

Infrastructure errors (NATS timeouts and disconnects, LogUnavailable, StoreUnavailable, and a read of
the log the server answered with an error status: ``DirectGetError``) are mapped to ``Unavailable``
here, at the edge, so handlers never catch them.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

import nats.errors
from aiohttp import HttpVersion11, hdrs, web, web_protocol
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, LineTooLong
from aiohttp.typedefs import Handler
from nats.js.errors import ServiceUnavailableError

from services.gateway.headers import API_CACHE_CONTROL, HEADERS, SERVER
from shared.core.keys import path_without_usernames, without_usernames
from shared.eventlog.directget import DirectGetError
from shared.eventlog.jetstream import LogUnavailable
from shared.objectstore.port import StoreUnavailable
from shared.runtime.httpserve import HeadDeadlineHandler, HeadDeadlineRunner

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://grove.place/problems/export/"


class Problem(Exception):
    status = 500
    code = "GROVE-EXPORT-000"
    title = "Internal error"
    slug = "internal"
    close_connection = False  # True: the connection closes after the answer

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extras: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extras = extras

    def body(self) -> dict[str, Any]:
        return {"type": TYPE_BASE + self.slug, "title": self.title, "status": self.status,
                "detail": self.detail, "code": self.code, **self.extras}


class Unauthorized(Problem):
    status, code, title, slug = 401, "GROVE-EXPORT-001", "Not authenticated", "unauthorized"


class ExportInProgress(Problem):
    status, code, title, slug = 409, "GROVE-EXPORT-002", "Export already in progress", "in-progress"


class RateLimited(Problem):
    status, code, title, slug = 429, "GROVE-EXPORT-003", "Rate limited", "rate-limited"


class BadRequest(Problem):
    status, code, title, slug = 400, "GROVE-EXPORT-004", "Bad request", "bad-request"


class IdempotencyMismatch(BadRequest):
    status, title, slug = 422, "Idempotency key reused with a different body", "idempotency-mismatch"


class MethodNotAllowed(BadRequest):
    status, title, slug = 405, "Method not allowed", "method-not-allowed"


class ExpectationFailed(BadRequest):
    status, title, slug = 417, "Expectation failed", "expectation-failed"


class UnsupportedMediaType(BadRequest):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class TransferCodingNotImplemented(BadRequest):
    """A request body sent with a transfer coding other than chunked (``gzip, chunked``): aiohttp
    reads the chunks' bytes as the body without undoing it, so the body read is not the one sent
    (RFC 9112 6.1: a server SHOULD answer 501). The body is not read: the connection closes."""

    status, title, slug = 501, "Transfer coding not implemented", "transfer-coding-not-implemented"
    close_connection = True


class HeadTooLarge(BadRequest):
    """A request head over the server's limits (answered before any middleware; the connection closes)."""

    status, title, slug = 431, "Request header fields too large", "head-too-large"


class UriTooLong(BadRequest):
    """A request target over :data:`REQUEST_TARGET_MAX` bytes (answered before any middleware; the
    connection closes). RFC 9110 15.5.15: 414, not the 431 of a header field."""

    status, title, slug = 414, "URI too long", "uri-too-long"


class RequestTimeout(BadRequest):
    """A request body that did not all arrive in time (GROVE_READ_TIMEOUT_S): a bad request too,
    answered on a connection that then closes."""

    status = 408
    close_connection = True


class NotFound(Problem):
    status, code, title, slug = 404, "GROVE-EXPORT-005", "Not found", "not-found"


class NotCancellable(Problem):
    status, code, title, slug = 409, "GROVE-EXPORT-006", "Export cannot be cancelled", "not-cancellable"


class TooLarge(Problem):
    status, code, title, slug = 413, "GROVE-EXPORT-007", "Request body too large", "too-large"


class Unavailable(Problem):
    status, code, title, slug = 503, "GROVE-EXPORT-008", "Service unavailable", "unavailable"


class Expired(Problem):
    status, code, title, slug = 410, "GROVE-EXPORT-009", "Export expired", "expired"


class RangeNotSatisfiable(Problem):
    status, code, title, slug = 416, "GROVE-EXPORT-010", "Range not satisfiable", "range-not-satisfiable"


class PreconditionFailed(Problem):
    status, code, title, slug = 412, "GROVE-EXPORT-011", "Precondition failed", "precondition-failed"


class TooManyDownloads(Problem):
    status, code, title, slug = 429, "GROVE-EXPORT-012", "Too many downloads at once", "too-many-downloads"


# DirectGetError: the server answered a read of the log with an error status other than "not found"
# (its "no responders" is LogUnavailable already): the log could not be read for this request. It was a
# 500 with a traceback; the status and its description are logged (its %r), the caller told to retry.
# Only here: a step counts it as a failed attempt (bounded), where LogUnavailable naks without end.
_UNAVAILABLE = (LogUnavailable, DirectGetError, StoreUnavailable, nats.errors.TimeoutError, nats.errors.NoRespondersError,
                nats.errors.ConnectionClosedError, nats.errors.StaleConnectionError,
                nats.errors.OutboundBufferLimitError, ServiceUnavailableError, TimeoutError)


def problem_response(problem: Problem) -> web.Response:
    resp = web.Response(status=problem.status, text=json.dumps(problem.body()),
                        content_type=PROBLEM_JSON, headers=problem.headers)
    if problem.close_connection:
        resp.force_close()  # and no lingering read of the rest of a body that is not coming
    return resp


def _from_http(exc: web.HTTPException) -> Problem:
    if exc.status in (403, 404):  # 403: a file the process may not read; it names nothing
        return NotFound("No such resource.")
    if exc.status == 405:
        return MethodNotAllowed(f"{exc.reason}.", headers={"Allow": exc.headers.get("Allow", "")})
    if exc.status == 413:
        return TooLarge("The request body is larger than this gateway accepts.")
    if exc.status == 400:
        return BadRequest(exc.text or "Bad request.")
    if exc.status == 417:
        return ExpectationFailed("The Expect header asks for something other than 100-continue.")
    problem = Problem(exc.reason)
    problem.status, problem.title = exc.status, exc.reason
    return problem


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place errors become responses."""
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http(exc))
    except web_protocol.RequestPayloadError:  # a body its Content-Encoding cannot decode, or cut short
        return problem_response(BadRequest("The request body could not be read: it does not match its "
                                           "Content-Encoding or Content-Length."))
    except _UNAVAILABLE as exc:
        # The path as sent: no decoded %0a or %e2%80%ae making lines of its own (fa7b162); an archive's
        # name in it or in the error (the store's message names the key) as ARCHIVE (shared.core.keys.without_usernames).
        log.warning("unavailable on %s %s: %s", request.method, path_without_usernames(request.rel_url.raw_path),
                    without_usernames(repr(exc)))
        return problem_response(Unavailable("The export service is temporarily unavailable; try again."))
    except Exception:  # its traceback as the exception said it (README, Personal data)
        log.exception("unhandled error on %s %s", request.method, path_without_usernames(request.rel_url.raw_path))
        return problem_response(Problem("Something went wrong on our side."))


def _unsolicited(problem: Problem) -> bytes:
    """``problem`` as the bytes of a whole answer, written before any request is read (no aiohttp
    response exists then), with every other answer's headers."""
    body = json.dumps(problem.body()).encode()
    headers = {**HEADERS, "Server": SERVER, "Cache-Control": API_CACHE_CONTROL,
               "Content-Type": f"{PROBLEM_JSON}; charset=utf-8", "Content-Length": str(len(body)),
               "Connection": "close", **problem.headers}
    head = f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items())
    return head.encode() + b"\r\n" + body


# The longest request target (path and query) read: 8 KiB (RFC 9112 3: at least 8,000). aiohttp's
# request-line limit, kept apart from its header-field limit (8,190) because aiohttp says both with
# one LineTooLong, naming the limit that was passed: which one is how a 414 is told from a 431.
# (aiohttp's pure-Python parser, under AIOHTTP_NO_EXTENSIONS, counts the whole request line instead.)
REQUEST_TARGET_MAX = 8192


class _ProblemRequestHandler(HeadDeadlineHandler):
    """A request aiohttp cannot parse (a malformed request line or header, a method that is not a
    token; a header or request line over its size limit, or too many headers) is answered by aiohttp
    itself, before any middleware, as text/plain 400: here it is a problem like every other error
    (GROVE-EXPORT-004; 414 for a request target over its limit, 431 for the rest of a head). aiohttp
    still logs it and closes the connection. A request head too slow to arrive closes the connection
    (:class:`HeadDeadlineHandler`), and one over the gateway's connection cap gets a 503 problem."""

    refusal = _unsolicited(Unavailable("This gateway has all the connections it takes open; try again.",
                                       headers={"Retry-After": "1"}))

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; refuses once bytes were sent
        if status == 400 and isinstance(exc, ContentEncodingError):  # br or zstd without its decoder
            problem: Problem = UnsupportedMediaType(
                "This gateway cannot decode the body's Content-Encoding; send it uncompressed, or as gzip or deflate.")
        elif status == 400 and isinstance(exc, LineTooLong) and self.max_line_size != self.max_field_size \
                and exc.args[1:2] == (self.max_line_size,):  # the request line's limit, not a field's
            problem = UriTooLong(f"The request target (path and query) is longer than this gateway reads: "
                                 f"over {self.max_line_size:,} bytes.")
        elif status == 400 and (isinstance(exc, LineTooLong) or (
                isinstance(exc, BadHttpMessage) and exc.message == "Too many headers received")):  # aiohttp's words
            problem = HeadTooLarge(f"The request head is larger than this gateway reads: a header field (name and "
                                   f"value) over {self.max_field_size:,} bytes, or more than {self.max_headers} "
                                   f"header fields.")
        elif status == 400:
            problem = BadRequest("The request is not valid HTTP: a malformed request line or header.")
        elif status == 413:
            problem = TooLarge("The request body is larger than this gateway accepts.")
        else:
            problem = Problem("Something went wrong on our side.")
            if status != 500:
                problem.status = status
        resp = _secured(problem_response(problem))
        resp.force_close()
        return resp

    async def _handle_request(self, request: Any, start_time: float | None, request_handler: Any) -> Any:
        """aiohttp answers an ``Expect`` other than 100-continue (417) before any middleware: a problem too.
        So is one holding a byte that is not UTF-8 (``Expect: \\xe9``, read as a surrogate escape):
        aiohttp's 417 quotes the value in its text, encoding that raised, and every route answered
        500 with a traceback. Only on HTTP/1.1, as aiohttp's: HTTP/1.0 has no Expect."""

        async def problems(req: Any) -> web.StreamResponse:
            if req.version == HttpVersion11 and not is_utf8(req.headers.get(hdrs.EXPECT, "")):
                return _secured(problem_response(_from_http(web.HTTPExpectationFailed())))
            try:
                return await request_handler(req)
            except web.HTTPException as exc:
                if exc.status < 400:
                    raise
                return _secured(problem_response(_from_http(exc)))

        return await super()._handle_request(request, start_time, problems)


def is_utf8(value: str) -> bool:
    """Whether a header value aiohttp read (non-UTF-8 bytes as surrogate escapes) is UTF-8 text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _secured(resp: web.Response) -> web.Response:
    """An answer made before any middleware or signal: the security headers every other answer gets
    (and no-store: it may follow an /api/ request)."""
    resp.headers.update(HEADERS)
    resp.headers["Server"] = SERVER
    resp.headers["Cache-Control"] = API_CACHE_CONTROL
    return resp


class ProblemRunner(HeadDeadlineRunner):
    """``web.AppRunner`` whose connections answer unparseable requests with problems and are closed
    when their request head is too slow to arrive (see :class:`_ProblemRequestHandler`)."""

    handler_class = _ProblemRequestHandler

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", REQUEST_TARGET_MAX)
        super().__init__(app, **kwargs)
