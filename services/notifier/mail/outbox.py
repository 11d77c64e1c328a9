"""The zero-setup mail backend: each email becomes an ``.eml`` file in a folder.

One file per idempotency key (export, kind, tenant, attempt, resend): the name comes from the key
(:func:`outbox_filename`, one name per key and one key per name) and the write is atomic (temp file
+ ``os.replace``), so a redelivered event overwrites the file instead of adding one. Files written
before the names became one-to-one (``:`` was ``_``, so two keys could share a name) are still
rewritten in place by a repeat of their own email, known by its Message-ID.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from email.parser import BytesHeaderParser
from pathlib import Path

from shared.core.mailaddr import needs_smtputf8

from .errors import PermanentMailError, TransientMailError
from .message import Email
from .mime import message_id, mime_bytes

CHANNEL = "outbox"
_KEEP = re.compile(r"[A-Za-z0-9_-]")  # what ids are made of: kept as they are
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")  # the old names' rule (_legacy_filename)


def outbox_filename(idempotency_key: str) -> str:
    """``exp_1:ready:tenant_a:a2`` → ``exp_1.ready.tenant_a.a2.eml``: ``:`` becomes ``.``, so the name
    reads like the Message-ID, and every other character but ``[A-Za-z0-9_-]`` (a ``.`` or ``/`` of the
    key, a leading ``:``) becomes ``+XX`` per UTF-8 byte. The name can be read back into the key, so
    two keys never share a file — with ``_`` for ``:``, tenant ``a``'s second attempt and tenant
    ``a_a2``'s first were one file — and no name starts with a dot or leaves the folder."""
    out = []
    for i, ch in enumerate(idempotency_key):
        if ch == ":" and i > 0:
            out.append(".")
        elif _KEEP.fullmatch(ch):
            out.append(ch)
        else:
            out.append("".join(f"+{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    return "".join(out) + ".eml"


def _legacy_filename(idempotency_key: str) -> str:
    """The name an email of this key had before :func:`outbox_filename` (several keys shared one)."""
    return _UNSAFE.sub("_", idempotency_key).lstrip(".") + ".eml"


def _holds(path: Path, message: str) -> bool:
    """Whether the file at ``path`` is the email whose Message-ID is ``message`` (its part before
    ``@``: the sender's domain may have changed since). Absent or unreadable: no."""
    try:
        with path.open("rb") as f:
            found = str(BytesHeaderParser().parse(f).get("Message-ID", ""))
    except (OSError, ValueError):
        return False
    return found.strip().partition("@")[0] == message.partition("@")[0]


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError:  # the folder is made by the first write (again, if it was removed)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutboxMailer:
    """Writes RFC 5322 messages to ``directory``; ``last_path`` is the file the last send wrote."""

    def __init__(self, directory: Path | str, *, sender: str = "Grove Export <exports@grove.local>") -> None:
        self.directory = Path(directory)
        self.sender = sender
        self.last_path: Path | None = None

    def path_for(self, email: Email) -> Path:
        """Where ``email`` is (or will be) written: its own name, or the old name when a file there is
        this very email (the Message-ID says so), written before the names changed — a repeat must
        rewrite it, not add a copy. Reads the folder: call it off the event loop."""
        key = email.idempotency_key
        name, old = outbox_filename(key), self.directory / _legacy_filename(key)
        if old.name != name and _holds(old, message_id(key, self.sender)):
            return old
        return self.directory / name

    def _write(self, email: Email, data: bytes) -> Path:
        path = self.path_for(email)
        _write_atomically(path, data)
        return path

    async def send(self, email: Email) -> str:
        # what SMTP would send: UTF-8 headers only for an address not ASCII before its @ (RFC 6532)
        data = mime_bytes(email, sender=self.sender, utf8=needs_smtputf8(email.to))
        try:
            path = await asyncio.to_thread(self._write, email, data)
        except PermissionError as exc:
            raise PermanentMailError(f"cannot write to the outbox {self.directory}: {exc}") from exc
        except OSError as exc:
            raise TransientMailError(f"writing to the outbox {self.directory} failed: {exc}") from exc
        self.last_path = path
        return CHANNEL

    async def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"OutboxMailer({str(self.directory)!r})"
