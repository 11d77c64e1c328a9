"""Real servers for the mail backends: aiosmtpd (plain, STARTTLS, implicit TLS, AUTH) and a small
aiohttp app speaking the Zephyr ``/send`` contract. Every server listens on a free loopback port."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from services.notifier.mail import Email, ready_email

LOOPBACK = ipaddress.ip_address("127.0.0.1")
SMTP_USER, SMTP_PASSWORD = "grove", "s3cret-pass"  # what the authenticator accepts


@pytest.fixture
def ready() -> Email:
    """A ready email whose username must be escaped in HTML."""
    return ready_email(
        to="wanderer@example.org",
        username="<script>alert(1)</script> Tom & Jerry",
        item_counts={"posts": 12, "pages": 3, "images": 40},
        size_bytes=24_500_000,
        expires_at=dt.datetime(2026, 3, 1, 10, 30, tzinfo=dt.UTC),
        download_page_url="https://grove.test/arbor/export",
        sha256="ab" * 32,
        error_count=2,
        export_id="exp_3f2a9c",
        tenant_id="tenant_tom",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def smtp_login() -> tuple[str, str]:
    """The username and password the AUTH-enabled servers accept."""
    return SMTP_USER, SMTP_PASSWORD


# -- certificates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    out = tmp_path_factory.mktemp("certs")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_public = ca_key.public_key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Grove Test CA"))
        .issuer_name(_name("Grove Test CA"))
        .public_key(ca_public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_public), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(LOOPBACK)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(out / "ca.pem", out / "server.pem", out / "server.key")
    certs.ca_file.write_bytes(_pem(ca))
    certs.cert_file.write_bytes(_pem(leaf))
    certs.key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return certs


# -- SMTP ---------------------------------------------------------------------------------------
@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    authenticated: bool
    smtputf8: bool = False  # MAIL FROM asked for SMTPUTF8


def _uses_tls(server: Any, session: Any) -> bool:
    # STARTTLS fills session.ssl; implicit TLS only shows on the transport.
    return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None


@dataclass
class SmtpHandler:
    """Stores every accepted message; ``data_replies`` scripts the answers to DATA (then 250)."""

    messages: list[Received] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    rcpt_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                _uses_tls(server, session),
                bool(session.authenticated),
                bool(envelope.smtp_utf8),
            )
        )
        return "250 Message accepted"


@dataclass
class HeldHandler(SmtpHandler):
    """Takes each message, then holds its answer to DATA until ``release`` is set (at most 20 s)."""

    got: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.got.set()
        await asyncio.to_thread(self.release.wait, 20)  # on the server's own loop, in its thread
        return answer


def check_password(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies 535 itself


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: SmtpHandler


StartSmtp = Callable[..., SmtpServer]


@pytest.fixture
def start_smtp(certs: Certs) -> Iterator[StartSmtp]:
    """Start an aiosmtpd server: ``start_smtp(mode="plain"|"starttls"|"tls", auth=False, handler=None,
    utf8=False)``; ``utf8``: it offers SMTPUTF8 (RFC 6531)."""
    controllers: list[Controller] = []

    def start(*, mode: str = "plain", auth: bool = False, handler: SmtpHandler | None = None,
              utf8: bool = False) -> SmtpServer:
        handler = handler or SmtpHandler()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": utf8}
        if mode == "starttls":
            kwargs.update(tls_context=certs.server_context(), require_starttls=True)
        elif mode == "tls":
            kwargs.update(ssl_context=certs.server_context())
        if auth:
            need_tls = mode == "starttls"
            kwargs.update(authenticator=check_password, auth_required=True, auth_require_tls=need_tls)
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, server_hostname="mx.test", **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer("127.0.0.1", port, handler)

    yield start
    for controller in controllers:
        controller.stop()


# -- HTTP (Zephyr /send) ------------------------------------------------------------------------
@dataclass
class ZephyrCall:
    headers: dict[str, str]
    body: Any


@dataclass
class Zephyr:
    """A fake mail service: records calls and answers with ``statuses`` in order, then 200."""

    url: str = ""
    calls: list[ZephyrCall] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    always: int | None = None
    delay: float = 0.0
    retry_after: str | None = None
    # what it sent: one message id per email, a repeat of an idempotency key answered with the first's
    # id and not sent again — the key as Zephyr's contract carries it, the body's ``idempotencyKey``
    # (workers/zephyr/src/types.ts in AutumnsGrove/Lattice; no header of the request is read for it)
    sent: dict[str, str] = field(default_factory=dict)
    deliveries: int = 0


@pytest.fixture
async def zephyr() -> AsyncIterator[Zephyr]:
    state = Zephyr()

    async def send(request: web.Request) -> web.Response:
        body = await request.json()
        state.calls.append(ZephyrCall(dict(request.headers), body))
        if state.delay:
            await asyncio.sleep(state.delay)
        status = state.always or (state.statuses.pop(0) if state.statuses else 200)
        headers = {"Retry-After": state.retry_after} if state.retry_after and status != 200 else {}
        if status == 200:
            key = body.get("idempotencyKey")
            if not isinstance(key, str) or key not in state.sent:
                state.deliveries += 1
                if isinstance(key, str):
                    state.sent[key] = f"msg-{state.deliveries}"
            return web.json_response({"success": True, "messageId": state.sent.get(key, f"msg-{state.deliveries}")})
        error = {"success": False, "error": f"status {status}"}
        return web.json_response(error, status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/send", send)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    state.url = f"http://{host}:{port}"
    yield state
    await runner.cleanup()
