"""A file of the local stack that holds a password or points at one is created readable by its owner
only, never written first and narrowed after: another user who opened it in between (inotify tells
when it appears in a folder they can list) keeps reading it through that open file afterwards."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devtools.stack import operator, supervisor
from shared.runtime import secrets


@pytest.fixture(autouse=True)
def no_narrowing_afterwards(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever mode a file has once written is the mode it had while it was written: a chmod after the
    fact does nothing here. The usual umask: files others can read unless made otherwise."""
    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_the_nats_passwords_file_is_made_private(tmp_path: Path) -> None:
    supervisor.local_passwords(tmp_path / supervisor.PASSWORDS_FILE)
    assert mode(tmp_path / supervisor.PASSWORDS_FILE) == "0o600"


def test_the_signing_secrets_file_is_made_private(tmp_path: Path) -> None:
    secrets.local_secrets(tmp_path)
    assert mode(tmp_path / secrets.SECRETS_FILE) == "0o600"


def test_the_stack_file_is_made_private(tmp_path: Path) -> None:
    path = operator.write(tmp_path, nats_url="nats://127.0.0.1:4222", nats_user="admin",
                          credentials_file=tmp_path / supervisor.PASSWORDS_FILE,
                          env={"GROVE_CONTENT_DSN": "postgresql://grove:pw@db/grove"})
    assert mode(path) == "0o600"


def test_a_file_once_readable_by_others_is_made_private_before_the_secret_goes_in(tmp_path: Path) -> None:
    path = tmp_path / supervisor.PASSWORDS_FILE
    path.write_text(json.dumps({"admin": "old"}))  # an older version's, 0644
    os.chmod(path, 0o644)
    supervisor.local_passwords(path)
    assert mode(path) == "0o600"


def test_the_data_folder_a_local_stack_makes_is_its_owners_only(tmp_path: Path) -> None:
    """It holds every archive (store/), the emails with their download links (outbox/), the content and
    read-model databases and the logs: made at the umask's 0755, any user of the machine could read them."""
    data = tmp_path / "var"
    supervisor.local_env(data, 8080)  # the first thing `serve` and `demo` write: secrets.json in it
    assert mode(data) == "0o700"
