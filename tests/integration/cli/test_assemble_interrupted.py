"""``grove-export assemble --out FILE`` cut short however late — Ctrl-C, or SIGTERM/SIGHUP, which act as
Ctrl-C — exits 130 and leaves nothing at FILE and no FILE.part, up to the moment it has returned.
Seen: an interrupt that landed just after the last block was written still put the archive at FILE
(the writing thread renamed it into place after the command had said it did not finish), and one
that landed as the command printed its line, or once it had returned to main, left it there too.

The interrupt is delivered from a hook at each of those points, not by timing: in the writing
thread after the last block (held there until the command has exited), in the success line, and
after ``cmd_assemble`` returned. An uninterrupted run is the other outcome: exit 0, the archive there."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import services.cli as cli
from services.archivetools import reference
from services.devtools.stack import operator
from shared.core.snapshot import Snapshot, SnapshotHeader, SnapshotMember
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings

pytestmark = pytest.mark.timeout(60)

T = datetime(2026, 2, 22, 10, 30, tzinfo=UTC)
KEY = "exports/t1/exp_1/work/snapshot.jsonl"
DEADLINE_S = 20
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A data folder whose store holds a snapshot of two media files; the --out path."""
    data = tmp_path / "data"
    for k, v in operator.find(data, os.environ).env.items():  # what main() puts in the environment
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    bucket = settings.buckets.exports
    (settings.store_root / bucket).mkdir(parents=True)
    store = FilesystemStore(settings.store_root)
    members = []
    for i, (name, data_) in enumerate({"media/a.jpg": os.urandom(300_000), "media/b.jpg": os.urandom(5000)}.items()):
        key = f"src/{name}"
        (settings.store_root / bucket / "src" / "media").mkdir(parents=True, exist_ok=True)
        (settings.store_root / bucket / key).write_bytes(data_)
        members.append(SnapshotMember(index=i, path=name, kind="media", bucket=bucket, key=key, size=len(data_),
                                      etag=hashlib.md5(data_, usedforsecurity=False).hexdigest(),
                                      content_type="image/jpeg", source_id=f"id{i}", modified_at=T, level=0))
    header = SnapshotHeader(export_id="exp_1", tenant_id="t1", mode="blog", username="autumn", include_images=True,
                            created_at=T, archive_key="k.zip", item_counts={"images": 2}, generator="test")
    (settings.store_root / bucket / KEY).parent.mkdir(parents=True)
    (settings.store_root / bucket / KEY).write_bytes(Snapshot(header=header, members=tuple(members)).dumps())
    del store
    return data, tmp_path / "out" / "archive.zip"


def _assemble(data: Path, out: Path) -> int:
    out.parent.mkdir(exist_ok=True)
    try:
        cli.main(["assemble", "--snapshot", KEY, "--out", str(out), "--data", str(data)])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("reference")]


def _nothing_left(out: Path) -> None:
    for t in _writer_threads():  # the writing thread has ended: nothing of it can appear later
        t.join(DEADLINE_S)
        assert not t.is_alive(), "the writing thread did not end"
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no FILE, no FILE.part


def _after_the_last_block(monkeypatch: pytest.MonkeyPatch, then: Callable[[], None]) -> None:
    real = reference.ArchiveStream

    class Hooked:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.inner = real(*args, **kwargs)  # type: ignore[arg-type]

        def __iter__(self) -> Iterator[object]:
            yield from self.inner
            then()  # in the writing thread: every block has been written

    monkeypatch.setattr(reference, "ArchiveStream", Hooked)


def test_an_uninterrupted_assemble_puts_the_archive_at_out(place: tuple[Path, Path], capsys) -> None:
    data, out = place
    assert _assemble(data, out) == 0
    assert zipfile.ZipFile(out).testzip() is None
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert capsys.readouterr().out == f"{out.resolve()} {out.stat().st_size} bytes sha256={sha}\n"


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_an_interrupt_just_after_the_last_block_leaves_nothing_at_out(
        place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys, sig: signal.Signals) -> None:
    """The writing thread is held after the last block until the command has exited (the worst order:
    the interrupt handled first, the thread's rename after it)."""
    data, out = place
    exited = threading.Event()

    def interrupt_and_hold() -> None:
        signal.pthread_kill(threading.main_thread().ident or 0, sig)
        exited.wait(DEADLINE_S)

    _after_the_last_block(monkeypatch, interrupt_and_hold)
    try:
        code = _assemble(data, out)
    finally:
        exited.set()
    assert code == 130
    assert capsys.readouterr().err.endswith("grove-export: interrupted; assemble did not finish\n")
    _nothing_left(out)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_an_interrupt_as_the_success_line_is_printed_leaves_nothing_at_out(
        place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys, sig: signal.Signals) -> None:
    data, out = place

    class Interrupting(io.StringIO):
        def write(self, s: str) -> int:
            if "sha256=" in s:
                signal.raise_signal(sig)
            return super().write(s)

    monkeypatch.setattr("sys.stdout", Interrupting())
    assert _assemble(data, out) == 130
    assert capsys.readouterr().err.endswith("grove-export: interrupted; assemble did not finish\n")
    _nothing_left(out)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_an_interrupt_after_the_command_returned_to_main_leaves_nothing_at_out(
        place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys, sig: signal.Signals) -> None:
    data, out = place
    real = cli.cmd_assemble

    def then_interrupted(args: object, settings: Settings) -> None:
        real(args, settings)  # type: ignore[arg-type]
        assert out.is_file()  # it was there: the interrupt takes it back
        signal.raise_signal(sig)

    monkeypatch.setattr(cli, "cmd_assemble", then_interrupted)
    assert _assemble(data, out) == 130
    assert capsys.readouterr().err.endswith("grove-export: interrupted; assemble did not finish\n")
    _nothing_left(out)


class Full(io.StringIO):
    """stdout on a full disk (`> FILE`, `> /dev/full`): every write fails as the kernel fails it."""

    def __init__(self) -> None:
        super().__init__()
        self.fd = os.open(os.devnull, os.O_WRONLY)  # main() points it at /dev/null once it has failed

    def write(self, s: str) -> int:
        raise OSError(28, "No space left on device")

    def fileno(self) -> int:
        return self.fd


def test_a_success_line_that_cannot_be_written_is_said_as_that_and_leaves_nothing_at_out(
        place: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Seen: `grove-export assemble … > /dev/full` (and `verify`, `exports`, `token`: every command's
    output) said "NATS at nats://… failed: No space left on device" — the output's failure taken for
    the server's — and assemble left the archive at FILE with exit 1, its SHA-256 line lost."""
    data, out = place
    full = Full()
    monkeypatch.setattr("sys.stdout", full)
    try:
        assert _assemble(data, out) == 1
    finally:
        os.close(full.fd)
    assert capsys.readouterr().err == "grove-export: could not write the output of assemble: No space left on device\n"
    _nothing_left(out)  # failing, it writes nothing at FILE, as the README says of it
