"""The zero-setup mail backend: each email becomes an ``.eml`` file in a folder.

One file per (export, kind): the name comes from the idempotency key and the write is atomic
(temp file + ``os.replace``), so a redelivered event overwrites the file instead of adding one.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from email import policy
from pathlib import Path

from .errors import PermanentMailError, TransientMailError
from .message import Email
from .mime import to_mime

CHANNEL = "outbox"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def outbox_filename(idempotency_key: str) -> str:
    """``exp_1:ready:tenant_a`` → ``exp_1_ready_tenant_a.eml``."""
    return _UNSAFE.sub("_", idempotency_key).lstrip(".") + ".eml"


def _write_atomically(path: Path, data: bytes) -> None:
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
        """Where ``email`` is (or will be) written."""
        return self.directory / outbox_filename(email.idempotency_key)

    async def send(self, email: Email) -> str:
        data = to_mime(email, sender=self.sender).as_bytes(policy=policy.SMTP)
        path = self.path_for(email)
        try:
            await asyncio.to_thread(_write_atomically, path, data)
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
