"""Typed settings, read once from the environment (prefix ``GROVE_``) by each composition root.

Handlers never read ``os.environ``; they receive a :class:`Settings` (or the part they need).
Nested groups use a double underscore, e.g. ``GROVE_S3__ENDPOINT_URL``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from shared.content.factory import check_dsn
from shared.core.mailaddr import is_single_address

MiB = 1024 * 1024
# The longest duration a setting may name: 100 years. Longer ones, and infinity, passed start-up and
# broke where they were first used: NATS holds a duration in int64 nanoseconds (292 years; `setup`
# ended in a traceback or NATS's own JSON error), a Python date ends in 9999 (every finalize failed
# on the archive's expiry), a timedelta at 999,999,999 days (the gateway's rate check, the janitor's).
MAX_DAYS = 36500
MAX_S = MAX_DAYS * 86400
# The most attempts a step may have. Each failed one waits twice as long as the last before the next
# (GROVE_RETRY_BASE_DELAY_S × 2^(n-1)): at the default 2 s the 20th attempt comes ~12 days after the
# first failure (its wait alone ~6), past any outage worth waiting out; more is a typo (1000000 passed
# start-up, and the 1025th wait is no float at all).
MAX_STEP_ATTEMPTS = 20
# The most tries of one request inside a step (an email's sends, botocore's attempts of one S3 call):
# each waits up to 30 s (mail) or 20 s (botocore) after the last, inside a step that holds its slot.
MAX_CALL_ATTEMPTS = 20
# Counts with no use past a bound, where a typo (a zero or three too many) passed start-up and the
# service then fell over. Exports one process works on: each holds two encoder threads and up to
# GROVE_PARTS_IN_FLIGHT parts of GROVE_MIN_PART_SIZE (24 MiB by default) — 64 is 1.5 GiB of parts; run
# more replicas for more. PostgreSQL connections per process: PostgreSQL's own default max_connections
# is 100, for every process together. A request body: the API's largest is a few hundred bytes, and
# 1 MiB is aiohttp's own default limit.
MAX_CONCURRENCY = 64
MAX_POOL = 100
MAX_BODY_BYTES = 1024 * 1024
# S3's smallest part but the last (AWS, R2 and MinIO alike): a completion with a smaller one is refused
# with EntityTooSmall, and only then, after the whole archive was uploaded.
S3_SMALLEST_PART = 5 * 1024 * 1024
NATS_NAME = r"^[A-Za-z0-9_-]{1,64}$"  # a stream's or a KV bucket's name, as NATS takes them
_REGION = re.compile(r"(?![0-9]+$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_HTTP_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?", re.IGNORECASE)


# the scheme is optional: the NATS client takes user:password@host, adding nats:// itself; the user part
# runs to the LAST @ before the host (urllib's rule, which the client parses with): a password may hold @
_USERINFO = re.compile(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?)([^/?#]*)@")


def masked_url(url: str, *, many: bool = True) -> str:
    """``url`` (or several, comma-separated: GROVE_NATS_URL; ``many=False`` for one URL, whose password
    may hold a comma) fit for a log or an error line: the password in ``user:password@`` is ***, and so
    is a user part alone, which NATS takes as a token. Every line that names the NATS server printed
    ``nats://admin:PASSWORD@host`` as given."""
    def one(part: str) -> str:
        def mask(m: re.Match[str]) -> str:
            user, colon, _ = m.group(2).partition(":")
            return f"{m.group(1)}{user}:***@" if colon else f"{m.group(1)}***@"
        return _USERINFO.sub(mask, part)
    return ",".join(one(part) for part in url.split(",")) if many else one(url)


class SettingsProblem(ValueError):
    """A setting that passed its own check but cannot work where a service uses it (a CA bundle that is
    not there): raised before the service connects anywhere; ``grove-export`` says it in one line,
    naming the variable, exit 2, like an invalid setting."""


def check_http_url(value: str | None) -> str | None:
    """An address a browser, botocore or an HTTP client is given, checked at start-up: without its
    scheme (``minio:9000``) botocore ended every command and service in a traceback, and a link began
    ``host:8080/…``, which a browser reads as a path. Empty (compose's unset ``${VAR:-}``) stays off."""
    if value and not _HTTP_URL.fullmatch(value):
        raise ValueError("must be an http:// or https:// URL, like https://host or http://host:port")
    return value


def spelled(pattern: re.Pattern[str], rule: str) -> Callable[[str], str]:
    """A field check: the whole value matches ``pattern``, else ``rule`` (the message a person reads)."""
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(rule)
        return value
    return check


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``): traffic that
    never leaves it. Not a name under ``.localhost`` nor ``localhost.``: glibc's resolver reads only
    ``localhost`` from /etc/hosts and asks DNS (and its search domains) for those, which may give any
    address — a password sent unencrypted (or a payload unsigned) to them could cross the network."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_host(value: str) -> str:
    """A host name or address to listen on or connect to: an empty one or one with a space passed
    start-up, and asyncio took GROVE_HOST="" as every interface (the gateway, 127.0.0.1 by default,
    listened on all of them), GROVE_MAIL__SMTP_HOST=" smtp.example.com" failed every email's send."""
    if not value or any(c.isspace() for c in value):
        raise ValueError("must be an address or host name without spaces, like 127.0.0.1 (0.0.0.0: every "
                         "interface; empty is not the default)")
    return value


NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def nats_servers(url: str) -> list[str]:
    """``GROVE_NATS_URL`` may list several servers, comma-separated (e.g. every node of a cluster): each
    stripped, empty ones skipped — as the client takes them and as :func:`check_nats_url` checks them."""
    return [u.strip() for u in url.split(",") if u.strip()]


def check_nats_url(value: str) -> str:
    """GROVE_NATS_URL: one URL or several, comma-separated, each ``nats://HOST:PORT`` (``tls://``, ``ws://``,
    ``wss://``; nats-py puts ``nats://`` before a bare ``HOST:PORT``). Left to nats-py, an empty one said
    "cannot reach NATS at  (from GROVE_NATS_URL): no servers available for connection" and an
    ``http://`` one "unknown host": the host was fine. Messages mask a password in it."""
    parts = nats_servers(value)  # as the client takes them: "a:4222, b:4222", a trailing comma or newline run
    if not parts:
        raise ValueError("must be a NATS URL like nats://127.0.0.1:4222, not empty (unset it for the default)")
    for part in parts:
        url = urlsplit(part if "://" in part else f"nats://{part}")
        shown = masked_url(part, many=False)
        if url.scheme not in NATS_SCHEMES:
            raise ValueError(f"{shown!r} is not a NATS URL: its scheme must be nats://, tls://, ws:// or wss://, "
                             f"like nats://127.0.0.1:4222")
        try:
            port = url.port
        except ValueError:
            port = -1
        if not url.hostname or any(c.isspace() for c in part) or port == -1 or port == 0:
            raise ValueError(f"{shown!r} is not a NATS URL: it needs a host and a port 1-65535 and no spaces, "
                             f"like nats://127.0.0.1:4222")
    return value


def check_path(value: object) -> object:
    """A file or folder setting, before it becomes a Path: "" became Path("."), the current folder (the
    filesystem store's buckets and the outbox's emails went wherever the process ran), and a pasted
    space a folder named with it."""
    if isinstance(value, str) and (not value.strip() or value != value.strip()):
        raise ValueError("must be a path, not empty and without spaces at either end (unset it for the default)")
    return value


class S3Settings(BaseModel):
    """Connection to an S3-compatible store (AWS S3, Cloudflare R2, MinIO)."""

    endpoint_url: str | None = Field(None, description="None means AWS's own endpoint.")
    public_endpoint_url: str | None = Field(
        None, description="Endpoint used in presigned download links (what users can reach)."
    )
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "path"
    max_pool_connections: int = Field(32, ge=1)
    max_attempts: int = Field(5, ge=1, le=MAX_CALL_ATTEMPTS, description="botocore standard retry mode attempts.")
    smallest_part: int = Field(
        S3_SMALLEST_PART, ge=1,
        description="The smallest part but the last the store accepts: S3's 5 MiB (R2 and MinIO keep it too), "
                    "the least GROVE_MIN_PART_SIZE may be. Lower only for a test server that takes smaller parts "
                    "(moto with S3_UPLOAD_PART_MIN_SIZE).")

    _urls = field_validator("endpoint_url", "public_endpoint_url")(check_http_url)

    # botocore's own rule (a host label): else every S3 call ended in its InvalidRegionError traceback
    _region = field_validator("region")(spelled(_REGION, "must be a region name: letters, digits and inner "
                                                         "hyphens, like us-east-1 (auto for Cloudflare R2)"))


# S3's bucket naming rules (R2 and MinIO keep them too): 3 to 63 lower-case letters, digits, dots and
# hyphens, a letter or digit at each end, no two dots in a row.
_BUCKET = re.compile(r"(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Buckets(BaseModel):
    """Bucket names. The filesystem store maps each to a folder."""

    exports: str = "grove-exports"
    images: str = "grove-images"
    amber: str = "grove-amber"

    # also on the filesystem store: an empty name failed every archive write there ("unsafe key"), and a
    # folder S3 would refuse as a bucket makes a move to S3 fail at setup
    _names = field_validator("exports", "images", "amber")(spelled(
        _BUCKET, "must be an S3 bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and "
                 "ending with a letter or digit, like grove-exports"))


class MailSettings(BaseModel):
    """Where the notifier sends email."""

    model_config = ConfigDict(allow_inf_nan=False)

    backend: Literal["outbox", "smtp", "http"] = "outbox"
    outbox_dir: Path = Path("var/outbox")
    sender: str = "Grove Export <exports@grove.local>"
    download_page_url: str = "http://127.0.0.1:8080/export"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: Literal["plain", "starttls", "tls"] = "plain"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(10.0, gt=0, le=MAX_S)
    smtp_ca_file: Path | None = Field(None, description="CA bundle to verify the SMTP server (a private CA).")
    http_url: str = "http://127.0.0.1:8025"
    http_api_key: SecretStr | None = None
    http_timeout: float = Field(10.0, gt=0, le=MAX_S)
    attempts: int = Field(4, ge=1, le=MAX_CALL_ATTEMPTS, description="Send attempts before NotificationFailed.")
    retry_base_delay: float = Field(0.5, ge=0, le=MAX_S)

    _urls = field_validator("download_page_url", "http_url")(check_http_url)
    _host = field_validator("smtp_host")(check_host)
    _paths = field_validator("outbox_dir", "smtp_ca_file", mode="before")(check_path)

    @field_validator("smtp_password")
    @classmethod
    def _smtp_password_encrypted(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # `plain` (the default) never upgrades the connection, and AUTH sends the password as base64:
        # readable by anyone on the path to a relay that is not on this machine
        host = info.data.get("smtp_host")
        if (v is not None and info.data.get("backend") == "smtp" and info.data.get("smtp_security") == "plain"
                and isinstance(host, str) and not is_loopback(host)):
            raise ValueError(f"would be sent unencrypted to {host} (GROVE_MAIL__SMTP_SECURITY is plain): "
                             "set GROVE_MAIL__SMTP_SECURITY to starttls or tls")
        return v

    @field_validator("http_api_key")
    @classmethod
    def _http_api_key_encrypted(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # sent in a header of every request: over http:// readable by anyone on the path
        url = info.data.get("http_url")
        if (v is not None and info.data.get("backend") == "http" and isinstance(url, str)
                and url.lower().startswith("http://") and not is_loopback(urlsplit(url).hostname or "")):
            raise ValueError(f"would be sent unencrypted to {url} (an http:// URL): use an https:// "
                             "GROVE_MAIL__HTTP_URL")
        return v

    @field_validator("sender")
    @classmethod
    def _one_sender(cls, v: str) -> str:
        # a line break made every email fail for good at its headers; "" or no domain, a From no one answers.
        # ASCII: the envelope's MAIL FROM of every email, which a server without SMTPUTF8 must take (a
        # requester's address may be internationalised: shared/core/mailaddr.py)
        found = getaddresses([v]) if "\r" not in v and "\n" not in v else []
        if len(found) != 1 or not is_single_address(found[0][1]) or not found[0][1].isascii():
            raise ValueError("must be one email address, ASCII, with a name or without, like "
                             "Grove Export <exports@example.com>")
        return v


class Settings(BaseSettings):
    """All of Grove Export's configuration. Every field maps to ``GROVE_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="GROVE_", env_nested_delimiter="__", extra="ignore", frozen=True,
        allow_inf_nan=False,  # "inf" is no duration: see MAX_DAYS
    )

    # Bus and event log
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_jetstream_wait_s: float = Field(
        60.0, ge=0, le=MAX_S, description="How long a one-shot command (setup, restore, every operator command) "
        "waits for a server's JetStream to answer (a cluster electing its leader) before it gives up.")
    # A NATS name (nats-py refuses '.', '*', '>', spaces; a KV bucket takes only these): checked here, else
    # `setup` ended in a traceback or in "InvalidBucketNameError" naming no setting.
    stream_name: str = Field("EXPORTS", pattern=NATS_NAME,
                             description="The event log's JetStream stream (letters, digits, - and _).")
    stream_replicas: int = Field(1, ge=1, le=5, description="JetStream allows 1 to 5.")
    stream_max_age_days: float = Field(30.0, gt=0, le=MAX_DAYS,
                                       description="How long events (and the email in them) live.")
    # One subject token: every reader takes a subject as <prefix>.<tenant>.<export>.<Event>
    subject_prefix: str = Field("exports", pattern=NATS_NAME,
                                description="First token of every event's subject (one token: no dot, no wildcard).")
    kv_prefix: str = Field("grove", pattern=NATS_NAME,
                           description="Prefix of the KV buckets (heartbeats, admission): letters, digits, - and _.")

    # Consumers, retries, heartbeats
    # A killed worker's message is redelivered AckWait after its last in-progress ack: 4 s / 1 s lets
    # another (or the restarted) replica resume 3–4 s after a kill, with 3 s of slack for a busy event
    # loop between two acks. A redelivery to a live worker costs a wasted start at worst: fencing, not
    # AckWait, is what keeps a zombie harmless.
    ack_wait_s: float = Field(4.0, gt=0, le=MAX_S)
    progress_interval_s: float = Field(1.0, gt=0, le=MAX_S)
    stall_after_s: float = Field(600.0, ge=0, le=MAX_S, description="A step that appends nothing and marks no "
                                 "progress for this long is stopped and counted as a failed attempt (0: never).")
    heartbeat_ttl_s: float = Field(300.0, gt=0, le=MAX_S)
    step_attempts: int = Field(4, ge=1, le=MAX_STEP_ATTEMPTS, description="1 attempt + 3 retries (REQ-004).")
    step_deaths: int = Field(5, ge=1, le=MAX_STEP_ATTEMPTS, description="Runs of a step in a row whose process "
                             "ended before the step did (killed, out of memory, crashed) before the export fails.")
    retry_base_delay_s: float = Field(2.0, ge=0, le=MAX_S)
    concurrency: int = Field(4, ge=1, le=MAX_CONCURRENCY, description="Exports one service process works on at once.")
    tenant_concurrency: int = Field(1, ge=1, description="Of those, how many one tenant may hold (fairness); "
                                    "at most GROVE_CONCURRENCY.")
    tenant_backoff_s: float = Field(1.0, ge=0, le=MAX_S,
                                    description="Delay before a tenant over its share is offered again.")

    # Object store
    store: Literal["fs", "s3"] = "fs"
    store_root: Path = Path("var/store")
    s3: S3Settings = S3Settings()
    buckets: Buckets = Buckets()
    public_url: str = Field("http://127.0.0.1:8080", description="Base URL of the gateway for links.")

    # Archive
    min_part_size: int = Field(8 * MiB, ge=1, validate_default=True,
                               description="Smallest multipart part (on S3 at least GROVE_S3__SMALLEST_PART, 5 MiB).")
    parts_in_flight: int = Field(3, ge=1)
    pace_after_bytes: int = Field(32 * MiB, ge=0, description="An export past this gives way to smaller ones "
                                                        "streaming in the same process (fairness).")
    archive_ttl_days: float = Field(7.0, gt=0, le=MAX_DAYS)
    demo_throttle_s: float = Field(
        0.0, ge=0.0, le=60.0,
        description="Demo aid, 0 = off: seconds the assembler pauses before each archive member, so an export "
                    "lasts long enough to watch and cancel by hand.")

    # Content database (the source of blog posts, pages, media rows, amber files). A secret: a
    # PostgreSQL DSN may carry a password.
    content_dsn: SecretStr = Field(SecretStr("sqlite:///var/content.db"),
                                   description="sqlite:///PATH (relative; //// for absolute) or postgresql://…")
    content_pool_max: int = Field(4, ge=1, le=MAX_POOL, description="PostgreSQL connections per process.")
    media_url_template: str = Field(
        "https://cdn.example/{key}",
        description="The platform's public URL of a media object, `{key}` being its percent-encoded object key: "
                    "`grove-export import` gives restored links and media rows these URLs.")

    source_key_prefix: str = Field(
        "{tenant}/",
        description="Every media and file object key a tenant's content rows name must start with this, "
                    "`{tenant}` being the tenant id: a row naming another key is listed in errors.json and "
                    "never read (else a row pointing at another tenant's object put that object in this "
                    "tenant's archive). Empty: no check, for a platform whose keys carry no tenant.")

    # Gateway
    host: str = Field("127.0.0.1", description="Where the gateway listens; 0.0.0.0 for every interface.")
    port: int = Field(8080, ge=1, le=65535)
    read_timeout_s: float = Field(10.0, gt=0, le=300, description="The gateway closes a connection whose first "
                                  "request line and headers have not all arrived this long after it opened, and "
                                  "answers 408 to a request body that has not all arrived this long after its "
                                  "headers (slow senders hold connections and file descriptors otherwise).")
    keepalive_timeout_s: float = Field(75.0, gt=0, le=3600, description="The gateway closes a kept-alive "
                                       "connection this long after its last response when no whole next request "
                                       "has arrived (aiohttp's own default is 3630 s), and a download whose "
                                       "client takes less than 64 KiB of it this long.")
    max_headers: int = Field(48, ge=1, le=128, description="The most header fields a request to the gateway may "
                             "carry; more is a 431 problem. Each field (name and value) is at most 8,190 bytes "
                             "(aiohttp's limit) and the request target 8,192 (the gateway's: longer is a 414), so a request head is at most about "
                             "(max_headers + 1) x 8 KiB (aiohttp's own default of 128: 1 MiB).")
    max_connections: int = Field(400, ge=1, le=100_000, description="The most connections the gateway holds at "
                                 "once; one more takes the place of the kept-alive one idle longest, else it is "
                                 "answered a 503 problem at once and closed (within 1 s), so no number of clients "
                                 "can exhaust its file descriptors or its memory.")
    downloads_per_tenant: int = Field(6, ge=1, le=100_000, description="The most downloads of one tenant's "
                                      "archives the gateway serves at once (per replica); one more is a 429 "
                                      "problem with Retry-After, so one link cannot hold every connection. 6: "
                                      "what a browser opens to one host at most.")
    read_model_db: Path = Path("var/read-model.db")
    jwt_secret: SecretStr | None = Field(None, description="Signs bearer tokens; no default (shared/runtime/secrets.py).")
    link_secret: SecretStr | None = Field(None, description="Signs download links; no default.")
    jwt_secret_previous: SecretStr | None = Field(None, description="While rotating: the key GROVE_JWT_SECRET "
                                                  "had before; it verifies tokens, never signs (empty: unset).")
    link_secret_previous: SecretStr | None = Field(None, description="While rotating: the key GROVE_LINK_SECRET "
                                                   "had before; it verifies download links, never signs.")
    jwt_issuer: str = "grove"
    token_max_ttl_s: float = Field(3600.0, gt=0, le=MAX_S, description="Longest token lifetime accepted (exp - now).")
    rate_window_s: float = Field(3600.0, ge=0, le=MAX_S,
                                 description="One new export per tenant per this many seconds (0: no limit).")
    reservation_timeout_s: float = Field(30.0, gt=0, le=MAX_S)
    max_body_bytes: int = Field(16 * 1024, ge=1, le=MAX_BODY_BYTES)
    download_link_ttl_s: float = Field(3600.0, gt=0, le=MAX_S)

    # Mail
    mail: MailSettings = MailSettings()

    # Janitor
    orphan_upload_age_s: float = Field(24 * 3600.0, ge=0, le=MAX_S)
    janitor_batch: int = Field(50, ge=1)
    janitor_interval_s: float = Field(86400.0, gt=0, le=MAX_S,
                                      description="Long-running janitor: seconds between runs.")

    # Observability
    log_json: bool = True
    metrics_port: int = Field(0, ge=0, le=65535, description="0: no metrics endpoint.")
    metrics_host: str = Field("127.0.0.1", description="Where a step service's /healthz, /readyz and /metrics "
                              "listen; 0.0.0.0 for every interface (the image sets it, for the scraper and probes).")
    otel_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint (e.g. http://jaeger:4318/v1/traces); unset = tracing off.")

    _urls = field_validator("public_url", "otel_endpoint")(check_http_url)
    _nats_url = field_validator("nats_url")(check_nats_url)

    @property
    def nats_url_shown(self) -> str:
        """GROVE_NATS_URL as logs and messages name it: a password or token in it masked."""
        return masked_url(self.nats_url)

    @field_validator("progress_interval_s")
    @classmethod
    def _beats_within_ack_wait(cls, v: float, info: ValidationInfo) -> float:
        # else a live worker's message is redelivered before its first in-progress ack: another replica
        # takes the live run's heartbeat for a dead run's, counts a death and runs the step over it
        ack_wait = info.data.get("ack_wait_s")
        if ack_wait is not None and v >= ack_wait:
            raise ValueError(f"must be less than GROVE_ACK_WAIT_S ({ack_wait:g} s): the in-progress acks must come "
                             "before NATS redelivers a running step's message to another worker")
        return v

    @field_validator("tenant_concurrency")
    @classmethod
    def _share_within_slots(cls, v: int, info: ValidationInfo) -> int:
        # a share above the slots cannot take effect (GROVE_TENANT_CONCURRENCY=40 meant 4): likely a typo
        slots = info.data.get("concurrency")
        if slots is not None and v > slots:
            raise ValueError(f"must be at most GROVE_CONCURRENCY ({slots}): one tenant's share of a replica's "
                             "export slots cannot be more than the slots")
        return v

    @field_validator("min_part_size")
    @classmethod
    def _parts_the_store_takes(cls, v: int, info: ValidationInfo) -> int:
        # else every export on S3 was uploaded whole before S3 refused its completion (EntityTooSmall)
        s3 = info.data.get("s3")
        if info.data.get("store") == "s3" and s3 is not None and v < s3.smallest_part:
            floor = s3.smallest_part
            shown = f"{floor // MiB} MiB ({floor})" if floor % MiB == 0 else f"{floor} bytes"
            raise ValueError(f"must be at least {shown} on S3 (GROVE_STORE=s3): S3 refuses to complete an "
                             "upload with a smaller part (EntityTooSmall), after the whole archive was uploaded; "
                             "a test server that takes smaller parts (moto) says so in GROVE_S3__SMALLEST_PART")
        return v

    _host = field_validator("host", "metrics_host")(check_host)
    _paths = field_validator("store_root", "read_model_db", mode="before")(check_path)

    @field_validator("media_url_template")
    @classmethod
    def _key_in_template(cls, v: str) -> str:
        if "{key}" not in v:  # else every restored media row and link got the same URL
            raise ValueError("must hold {key}, where each object's key goes, like https://cdn.example/{key}")
        return v

    @field_validator("source_key_prefix")
    @classmethod
    def _tenant_in_prefix(cls, v: str) -> str:
        if v and ("{tenant}" not in v or not v.endswith("/")):
            raise ValueError("must name {tenant} and end with / (like {tenant}/ or media/{tenant}/), or be empty")
        return v

    @field_validator("content_dsn")
    @classmethod
    def _known_content_dsn(cls, v: SecretStr) -> SecretStr:
        check_dsn(v.get_secret_value())
        return v


def setting_variables() -> list[str]:
    """Every environment variable a setting is read from: GROVE_PORT, GROVE_S3, GROVE_S3__ENDPOINT_URL, …"""
    names: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            names.append(f"{prefix}{name.upper()}")
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{prefix}{name.upper()}__")
    walk(Settings, "GROVE_")
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for each GROVE_* variable that is no setting but nearly one (a typo, ``_`` for ``__``),
    naming the setting it was probably meant for. Settings ignore unknown variables (other tools
    have GROVE_* ones of their own), so GROVE_CONCURENCY=8 ran with 4, and nothing said so."""
    known = setting_variables()
    lines = []
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith("GROVE_") or upper in known:
            continue
        near = difflib.get_close_matches(upper, known, n=1, cutoff=0.9)
        if near:
            lines.append(f"{key} is no setting and is ignored: did you mean {near[0]}?")
    return lines


def _field_path(loc: tuple[int | str, ...]) -> tuple[list[str], bool]:
    """The setting names along ``loc`` (pydantic's tail after them, like a union member's tag,
    dropped), and whether the value is a secret (never echoed)."""
    model: Any = Settings
    names: list[str] = []
    secret = False
    for part in loc:
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        if str(part) not in fields:
            break
        names.append(str(part))
        annotation = fields[str(part)].annotation
        # GROVE_NATS_URL may hold user:password@: its check names it masked, never as given
        secret = secret or annotation is SecretStr or SecretStr in get_args(annotation) or str(part) == "nats_url"
        model = annotation
    return names, secret


def explain(error: Exception) -> str:
    """One line for a settings error: each environment variable with what is wrong with it, e.g.
    ``GROVE_STORE: Input should be 'fs' or 's3' (got 'nope')``; several are joined with "; "."""
    if isinstance(error, SettingsError):  # a group (GROVE_S3, GROVE_MAIL) given as bad JSON
        found = re.search(r'field "(\w+)"', str(error))
        if found:
            return (f"GROVE_{found.group(1).upper()}: not a JSON object (set its fields one by one, "
                    f"e.g. GROVE_{found.group(1).upper()}__FIELD)")
        return str(error).splitlines()[0]
    if not isinstance(error, ValidationError):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    lines = []
    for e in error.errors():
        names, secret = _field_path(tuple(e["loc"]))
        var = "GROVE_" + "__".join(n.upper() for n in names) if names else "settings"
        msg = str(e["msg"]).removeprefix("Value error, ")
        value = e.get("input")
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "…"
        got = f" (got {shown})" if isinstance(value, str | int | float) and not secret else ""
        lines.append(f"{var}: {msg}{got}")
    return "; ".join(lines)
