"""HTTP handlers: parse, call :mod:`services.gateway.exports`, answer with a schema model."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable

from aiohttp import HttpVersion11, web
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
from aiohttp.helpers import parse_mimetype
from aiohttp.web_urldispatcher import _default_expect_handler
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from services.gateway import problems as p
from services.gateway.auth import authenticate
from services.gateway.didyoumean import closest
from services.gateway.downloads import download, sign_for
from services.gateway.exports import cancel_export, create_export, find_row
from services.gateway.keys import BUS, BUS_PROBE, READ_MODEL, READINESS, SETTINGS, STORE
from services.gateway.schemas import Body, Cancelled, ExportCreated, ExportRequest, Health, History
from services.gateway.views import history_item, status_view
from shared.runtime import tracing

routes = web.RouteTableDef()
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")  # visible ASCII
# A body's Content-Encoding aiohttp undoes: br and zstd only with their optional decoders installed
# (without one aiohttp refuses the request while parsing its head: a 415 too, from problems.py's handler).
DECODED = frozenset({"identity", "gzip", "deflate"} | ({"br"} if HAS_BROTLI else set())
                    | ({"zstd"} if HAS_ZSTD else set()))
MAX_ERRORS = 10  # a bad body's first errors are named; the rest counted
# What JSON counts as whitespace (RFC 8259): a body of nothing else is empty, every default. bytes.strip()
# also takes \x0b and \x0c, so a body of a form feed, which is no JSON, started an export with the defaults.
JSON_SPACE = b" \t\n\r"


def reply(model: Body, status: int = 200) -> web.Response:
    return web.json_response(model.dump(), status=status)


def check_body_head(request: web.Request) -> None:
    """Raise the problem a request's head alone decides for its body: a transfer coding or a
    Content-Encoding not read as sent, a body sent as is with a Content-Length that is not declared
    JSON, or a Content-Length over the limit (before reading it)."""
    limit = request.app[SETTINGS].max_body_bytes
    codings = [c.strip().lower() for v in request.headers.getall("Transfer-Encoding", []) for c in v.split(",")]
    if [c for c in codings if c] not in ([], ["chunked"]):
        # aiohttp undoes chunked only: under `gzip, chunked` (or any other coding before it) it read
        # the chunks' bytes as the body, so the body read was not the one sent (a gzipped body was
        # "Invalid JSON"; `foo, chunked` over plain JSON started an export)
        raise p.TransferCodingNotImplemented("This gateway takes a request body in no transfer coding but chunked; "
                                             "send it as is, or use Content-Encoding (gzip, deflate).")
    encodings = request.headers.getall("Content-Encoding", [])
    if len(encodings) > 1 or (encodings and encodings[0].strip().lower() not in DECODED):
        # aiohttp reads any other label as plain bytes: what the client meant and what we read would differ
        raise p.UnsupportedMediaType(f"Content-Encoding must be one of {', '.join(sorted(DECODED))} (or absent).")
    # Whether a body comes at all is known from the head only for one sent as is with a Content-Length:
    # a chunked one (a client's empty generator) or an encoded one (gzip of nothing) may decode to no
    # bytes, which need no type. Those are held to it once read (parse_export_request).
    if request.body_exists and not codings and not encodings:
        require_json(request)
    if request.content_length is not None and request.content_length > limit:
        raise p.TooLarge(f"The body must be at most {limit} bytes.")


def require_json(request: web.Request) -> None:
    """The 415 of a request body not declared JSON (:func:`json_type_problem`)."""
    if (problem := json_type_problem(request.headers.get("Content-Type"))) is not None:
        raise p.UnsupportedMediaType(f"Send the request body with Content-Type: application/json ({problem}).")


def json_type_problem(given: str | None) -> str | None:
    """Why a body labelled ``given`` (its Content-Type) is not one read as JSON, or None.

    A body was read as JSON whatever its label (text/plain, a form's, none), so a client that meant
    something else had it taken as an export request. Only ``application/json``,
    with any parameters but a charset other than UTF-8 (JSON is UTF-8, RFC 8259). Not the
    ``application/*+json`` types: JSON too, but documents of their own (a merge patch, a problem)
    whose rules this body is not read by. (Two Content-Type fields aiohttp refuses itself: a 400.)"""
    if given is None:
        return "the request has none"
    media = parse_mimetype(given)
    if (media.type, media.subtype) != ("application", "json"):
        return f"not {given[:100]!r}"
    charset = media.parameters.get("charset", "utf-8").strip().lower()
    if charset not in ("utf-8", "utf8"):
        return f"JSON is UTF-8, not {charset[:40]!r}"
    return None


async def parse_export_request(request: web.Request) -> ExportRequest:
    """The validated body; an empty body means every default. Oversized → 413 (before reading it)."""
    check_body_head(request)
    limit = request.app[SETTINGS].max_body_bytes
    timeout = request.app[SETTINGS].read_timeout_s
    try:
        async with asyncio.timeout(timeout):  # a body trickled in held the handler (and its connection) for good
            raw = await request.read()
    except TimeoutError:
        raise p.RequestTimeout(f"The request body did not all arrive within {timeout:g} s.") from None
    except ConnectionResetError:  # the client hung up mid-body: its request, not our error (it was a 500)
        raise p.BadRequest("The connection closed before the request body all arrived.") from None
    if len(raw) > limit:
        raise p.TooLarge(f"The body must be at most {limit} bytes.")
    if raw:  # a body came: declared JSON (one sent as is with a Content-Length was held to it before the read)
        require_json(request)
    try:
        request_body = ExportRequest.model_validate_json(raw if raw.strip(JSON_SPACE) else b"{}")
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)
        errors = [_error(e) for e in found[:MAX_ERRORS]]  # 2,000 unknown fields were a 417 KB answer
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        more = f"; and {len(found) - len(errors)} more." if len(found) > len(errors) else ""
        raise p.BadRequest(f"The request body is not valid: {detail}{more}", errors=errors) from None
    twice = _fields_given_twice(raw) if raw.strip(JSON_SPACE) else []
    if twice:  # JSON readers disagree on which one counts (pydantic took the last): neither is guessed
        errors = [{"field": f, "message": "given more than once", "type": "duplicate_field"} for f in twice]
        raise p.BadRequest(f"The request body is not valid: {', '.join(twice)} given more than once.", errors=errors)
    return request_body


def _fields_given_twice(raw: bytes) -> list[str]:
    """The fields named more than once in a body that validated (so a flat object of known fields
    and plain values: reading it again is cheap and cannot nest)."""
    twice: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        counts = Counter(name for name, _ in items)
        twice.extend(n for n, times in counts.items() if times > 1 and n not in twice)
        return dict(items)

    json.loads(raw, object_pairs_hook=pairs)
    return twice


def _error(e: ErrorDetails) -> dict[str, str]:
    """One validation error; an unknown field names the known field it most likely meant."""
    error = {"field": ".".join(str(x) for x in e["loc"]) or "(body)", "message": e["msg"], "type": e["type"]}
    if e["type"] == "extra_forbidden" and e["loc"]:
        known = [f.alias or name for name, f in ExportRequest.model_fields.items()]
        guess = closest(str(e["loc"][-1]), known)
        if guess:
            error["message"] = f"unknown field; did you mean {guess!r}?"
            error["suggestion"] = guess
        else:
            error["message"] = f"unknown field; the known fields are {', '.join(known)}"
    return error


def idempotency_key(request: web.Request) -> str | None:
    given = request.headers.getall("Idempotency-Key", [])
    if len(given) > 1:  # which one counts differs between readers (first here, last in many proxies)
        raise p.BadRequest("Send one Idempotency-Key header: the request has more than one.")
    key = given[0] if given else None
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise p.BadRequest("Idempotency-Key must be 1-255 visible ASCII characters.")
    return key


async def expect_export_body(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` on ``POST /api/export``: when the request's head already decides its
    answer (no valid token, a bad Idempotency-Key, a body over the limit or in a coding not read),
    that answer, at once and with `Connection: close`, instead of the go-ahead — aiohttp
    sent `100 Continue` to every such request, so a client without a valid token, or announcing
    999,999 bytes, sent its body and only then got the 401 or 413 (RFC 9110 10.1.1: an origin
    server sends the final status at once when the head alone determines it). Otherwise as aiohttp."""
    def check() -> None:
        authenticate(request, request.app[SETTINGS])
        idempotency_key(request)
        check_body_head(request)

    return await _expect(request, check)


async def expect_token(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` on a route that reads no body (cancel): no valid token is a 401 at
    once, not a go-ahead for a body the client then sends for nothing."""
    return await _expect(request, lambda: authenticate(request, request.app[SETTINGS]))


async def _expect(request: web.Request, check: Callable[[], object]) -> web.StreamResponse | None:
    if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
        try:
            check()
        except p.Problem as problem:
            answer = p.problem_response(problem)
            answer.force_close()  # the body it announced is not read
            return answer
    await _default_expect_handler(request)
    return None


@routes.post("/api/export", expect_handler=expect_export_body)
async def create(request: web.Request) -> web.Response:
    with tracing.server_span("POST", "/api/export", request.path) as span:  # the export's first span
        who = authenticate(request, request.app[SETTINGS])
        key = idempotency_key(request)
        body = await parse_export_request(request)
        export_id = await create_export(request.app, who, body, key)
        tracing.set_export(span, who.tenant_id, export_id)
    message = ("Export started. You'll receive an email when it's ready." if body.delivery_method == "email"
               else "Export started. Check this page to download it when it's ready.")
    return reply(ExportCreated(export_id=export_id, message=message), status=201)


@routes.get("/api/export/status/{export_id}")
async def status(request: web.Request) -> web.Response:
    app = request.app
    who = authenticate(request, app[SETTINGS])
    row = await find_row(app, who, request.match_info["export_id"])
    return reply(await status_view(row, sign_for(app), app[SETTINGS].download_link_ttl_s))


@routes.post("/api/export/cancel/{export_id}", expect_handler=expect_token)
async def cancel(request: web.Request) -> web.Response:
    who = authenticate(request, request.app[SETTINGS])
    await cancel_export(request.app, who, request.match_info["export_id"])
    return reply(Cancelled())


@routes.get("/api/export/history")
async def history(request: web.Request) -> web.Response:
    who = authenticate(request, request.app[SETTINGS])
    rows = await request.app[READ_MODEL].recent(who.tenant_id, 10)
    return reply(History(exports=[history_item(r) for r in rows]))


routes.get("/api/export/download/{key:.+}")(download)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return reply(Health())


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    if await app[BUS_PROBE].failing(app[BUS].nc):
        raise p.Unavailable("The event bus did not answer.")  # why: in the gateway's log only (shared/bus/probe.py)
    if await app[READINESS].failing(app[STORE], app[SETTINGS].buckets.exports):
        raise p.Unavailable("The object store did not answer.")  # why: in the gateway's log only (readiness.py)
    return reply(Health())
