"""Security headers on every gateway answer (the export page, its assets and the API alike).

The page is plain HTML with one script and one stylesheet from ``/export/``, so the policy can be
strict: no inline script or style, nothing from another origin, never framed (clickjacking), no
MIME sniffing, and no Referer (an export id or a download link must not leak to another site).
"""

from __future__ import annotations

from aiohttp import web

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# What every answer says of the server: aiohttp's default, `Python/3.11 aiohttp/3.14.5`, named the exact
# versions to look up known flaws for, to anyone, without a token.
SERVER = "grove-export"
API_CACHE_CONTROL = "no-store"  # every /api/ answer: an export's status holds a working signed download link


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER  # aiohttp sets its own before this signal
    if request.path.startswith("/api/"):  # tenant data, links, problems naming an export: never kept by a cache
        response.headers.setdefault("Cache-Control", API_CACHE_CONTROL)  # (downloads set their own, no-store too)


async def close_after_an_upgrade_request(request: web.Request, response: web.StreamResponse) -> None:
    """The answer to a request that asked to switch protocols (``Connection: upgrade`` with an
    ``Upgrade``: h2c, a websocket) closes the connection. The gateway switches to none and answers in
    HTTP/1.1, but aiohttp's parser took every byte after such a request as the new protocol's: the
    next requests on the connection (pipelined, or a proxy's next client on a reused connection) were
    never answered, the connection held open until its keep-alive ran out."""
    if "Upgrade" in request.headers and response.status != 101:
        response.force_close()  # the server closes after it
        response.headers["Connection"] = "close"  # and says so (the headers are made before this signal)
