"""HTTP backend: the spec's Zephyr contract, ``POST {url}/send`` with ``X-API-Key``.

Body (the spec's shape, and the idempotency key where Zephyr's contract reads it)::

    {"type": "transactional", "template": "raw", "to": ..., "subject": ..., "html": ..., "text": ...,
     "idempotencyKey": ..., "tenant": ..., "source": "grove-export", "correlationId": ...}

The email's idempotency key (``{export_id}:{kind}:{tenant_id}``…) lets the mail service drop a repeat of
the same email: Zephyr reads it from the body's ``idempotencyKey`` (its ``ZephyrRequest``); it is also
sent as an ``Idempotency-Key`` header, for services that read it there. Sent only as the header, which
Zephyr does not read, a notifier restarted between a send and its record had the email sent twice.
``tenant`` (the export's tenant), ``source`` and ``correlationId`` (the export's id) are the fields
Zephyr's ``ZephyrRequest`` keeps its rate limits and logs by: without ``tenant`` every email counted
against one shared limit (Zephyr's default of 60 a minute, 1,000 a day), so one burst of exports used it
up for every tenant and their emails failed.
5xx, 408, 429 and connection errors are transient; any other non-2xx answer is permanent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import yarl

from shared.runtime.settings import masked_url

from .errors import MailError, PermanentMailError, TransientMailError
from .message import Email
from .mime import require_one_recipient

CHANNEL = "http"
SOURCE = "grove-export"  # the service Zephyr logs an email as coming from
_TRANSIENT_4XX = frozenset({408, 429})
_DETAIL_BYTES = 4096  # of an error answer's body: the reason shows _DETAIL_CHARS characters of it
_DETAIL_CHARS = 200


def zephyr_body(email: Email) -> dict[str, Any]:
    """The JSON body of ``POST /send``."""
    return {
        "type": "transactional",
        "template": "raw",
        "to": email.to,
        "subject": email.subject,
        "html": email.html,
        "text": email.text,
        "idempotencyKey": email.idempotency_key,
        **({"tenant": email.tenant_id} if email.tenant_id else {}),
        "source": SOURCE,
        **({"correlationId": email.export_id} if email.export_id else {}),
    }


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():  # str.isdigit is Unicode: "²" or "٣" is digits float() cannot read
        return float(value) if value.isascii() else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year of 20 digits
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_status(status: int, detail: str, retry_after: float | None = None) -> MailError:
    """The error for a non-2xx answer from the mail service."""
    reason = f"mail service answered HTTP {status}" + (f": {detail}" if detail else "")
    if status >= 500 or status in _TRANSIENT_4XX:
        return TransientMailError(reason, retry_after=retry_after)
    return PermanentMailError(reason)


async def _detail(resp: aiohttp.ClientResponse) -> str:
    """The start of an error answer's body, its whitespace runs as one space, for the reason (which
    shows :data:`_DETAIL_CHARS` of it, the API key taken out first: :meth:`HttpMailer._redacted`): at
    most :data:`_DETAIL_BYTES` are read. Reading it whole (``resp.text()``) let a mail service that
    answers 500 with a body that never ends fill the notifier's memory (1.8 GB in the 5 s of its
    timeout, then a timeout, not a 500)."""
    data = b""
    while len(data) < _DETAIL_BYTES:
        chunk = await resp.content.read(_DETAIL_BYTES - len(data))
        if not chunk:
            break
        data += chunk
    return " ".join(data.decode("utf-8", "replace").split())


class HttpMailer:
    """Posts to a Zephyr-compatible ``/send`` endpoint. Call :meth:`close` when done."""

    def __init__(self, *, url: str, api_key: str | None, timeout: float = 10.0) -> None:
        self.endpoint = url.rstrip("/") + "/send"
        self._shown = masked_url(self.endpoint, many=False)  # user:password@ (basic auth) as user:***@
        self._api_key = api_key
        # what a reason must not hold of a URL's user:password@: the password, and the Authorization
        # header aiohttp sends for it (a proxy's error answer may dump the request's headers)
        url_ = yarl.URL(self.endpoint)
        self._secrets = [v for v in (url_.password, url_.password and
                                     aiohttp.BasicAuth(url_.user or "", url_.password).encode().split()[-1]) if v]
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Lazily, because a ClientSession must be created inside the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def send(self, email: Email) -> str:
        require_one_recipient(email)
        headers = {"Idempotency-Key": email.idempotency_key}
        if self._api_key:
            headers["X-API-Key"] = self._api_key
        try:
            async with self._get_session().post(
                self.endpoint, json=zephyr_body(email), headers=headers, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return CHANNEL
                detail = self._redacted(await _detail(resp))[:_DETAIL_CHARS]  # the key out before the cut
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientMailError(f"cannot reach the mail service at {self._shown}: {self._describe(exc)}") from exc
        raise classify_status(resp.status, detail, retry_after)

    def _describe(self, exc: BaseException) -> str:
        """What went wrong: ``repr`` of a ``ClientResponseError`` (an answer that is not HTTP, a
        header over the limit) holds the request's headers, ``X-API-Key`` too."""
        return self._redacted(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def _redacted(self, text: str) -> str:
        """``text`` with the API key as ``[API key]`` and the endpoint as :func:`masked_url` shows it:
        whatever goes into a reason (NotificationFailed and the log) — an exception's text, an error
        answer's body, which a mail service or a proxy in front of it may fill with the key it refused
        or the request's headers — never holds the key, nor the password of a URL with ``user:password@``."""
        text = text.replace(self.endpoint, self._shown)
        if self._api_key:
            text = text.replace(self._api_key, "[API key]")
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"HttpMailer({self._shown!r})"  # never the API key, nor the URL's password
