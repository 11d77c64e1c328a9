"""Shared by the archive end-to-end tests: run exports on a module's stack from sync fixtures, and
check a finished archive with every reader we promise it opens in.

Readers (issue 8): Python ``zipfile`` (central directory + CRC), Info-ZIP ``unzip -t``, libarchive
``bsdtar -xOf``, 7-Zip ``7z t``, and ``stream_unzip`` (reads members from the front, never the
central directory). Each reader also lists or extracts the names, compared with ``zipfile``'s.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
import unicodedata
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from stream_unzip import stream_unzip

from shared.bus.connect import Bus, connect
from shared.content.factory import content_source
from shared.content.port import ContentSource
from shared.core.lifecycle import ExportState
from shared.objectstore import ObjectStore
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.support.env import build
from tests.support.pipeline import request_export, wait_status
from tests.unit.archive.tools import require_tool

T = TypeVar("T")
READERS = ("zipfile", "unzip", "bsdtar", "7z", "stream_unzip")
PACKAGES = {"unzip": "unzip", "bsdtar": "libarchive-tools", "7z": "p7zip-full"}
ENV = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
CHUNK = 1 << 20


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a fresh event loop in its own thread, so module-scoped sync
    fixtures can drive the bus without touching the loop pytest-asyncio gives each test."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(make())  # type: ignore[arg-type]
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, name="archive-e2e")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass(repr=False)
class Exported:
    """A finished export whose archive was copied out of the store to ``path``."""

    settings: Settings
    state: ExportState
    tenant_id: str
    export_id: str
    path: Path
    seconds: float
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return f"Exported({self.export_id}, {self.state.status}, {self.path})"

    def manifest(self) -> dict[str, Any]:
        with zipfile.ZipFile(self.path) as zf:
            return json.loads(zf.read("manifest.json"))

    def errors(self) -> list[dict[str, Any]]:
        with zipfile.ZipFile(self.path) as zf:
            return json.loads(zf.read("errors.json"))


Prepare = Callable[[ContentSource, ObjectStore, Settings], Awaitable[tuple[str, dict[str, Any]]]]
During = Callable[[Bus, ObjectStore, Settings, str, str, dict[str, Any]], Awaitable[None]]


def export_through_stack(values: dict[str, Any], out: Path, prepare: Prepare, *, mode: str = "blog",
                         include_images: bool = True, during: During | None = None,
                         timeout: float = 120.0, copy_out: bool = True) -> Exported:
    """Seed with ``prepare`` (returns tenant id and anything the test wants back), publish
    ExportRequested, optionally act while it runs (``during``), wait for an outcome and copy the
    archive to ``out`` (or, for multi-GiB archives, link to the store's file: ``copy_out=False``)."""
    settings = build(values)

    async def go() -> Exported:
        store = await open_store(settings, create_buckets=True)
        bus = await connect(settings, "archive-e2e", ensure=True)
        try:
            content = content_source(settings)
            await content.init()
            try:
                tenant_id, info = await prepare(content, store, settings)
            finally:
                await content.close()
            started = time.monotonic()
            export_id = await request_export(bus, tenant_id, mode=mode, include_images=include_images)
            if during is not None:
                await during(bus, store, settings, tenant_id, export_id, info)
            state = await wait_status(bus, tenant_id, export_id, timeout=timeout)
            took = time.monotonic() - started
            assert state.status == "complete", f"{state.status}: {state.failure} {state.last_step_error}"
            assert state.completed is not None
            if copy_out:
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("wb") as f:
                    async for chunk in store.get(settings.buckets.exports, state.completed.archive_key,
                                                 chunk_size=4 << 20):
                        f.write(chunk)
                path = out
            else:
                path = Path(settings.store_root) / settings.buckets.exports / state.completed.archive_key
            assert path.stat().st_size == state.completed.size_bytes
            return Exported(settings, state, tenant_id, export_id, path, took, info)
        finally:
            await bus.close()
            await store.close()

    return run_async(go)


# -- readers ----------------------------------------------------------------------------------------

def file_chunks(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def zipfile_digests(path: Path, *, testzip: bool = True) -> list[tuple[str, int, str]]:
    """(name, size, sha256) of every member through the central directory; CRCs are checked."""
    out = []
    with zipfile.ZipFile(path) as zf:
        if testzip:
            assert zf.testzip() is None
        for info in zf.infolist():
            sha = hashlib.sha256()
            with zf.open(info) as member:  # ZipExtFile checks the CRC-32 at the end
                while block := member.read(CHUNK):
                    sha.update(block)
            out.append((info.filename, info.file_size, sha.hexdigest()))
    return out


def stream_unzip_digests(path: Path) -> list[tuple[str, int, str]]:
    """(name, size, sha256) of every member read from the front, ignoring the central directory."""
    out = []
    for raw_name, _size, chunks in stream_unzip(file_chunks(path)):
        sha = hashlib.sha256()
        n = 0
        for chunk in chunks:
            sha.update(chunk)
            n += len(chunk)
        out.append((raw_name.decode("utf-8"), n, sha.hexdigest()))
    return out


def _run(argv: list[str], timeout: float, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=ENV, timeout=timeout, check=False)


def cli_test(reader: str, path: Path, timeout: float = 120.0) -> float:
    """The reader's own integrity test; fails on a non-zero exit or a warning. Returns seconds."""
    require_tool(reader, PACKAGES[reader])
    started = time.monotonic()
    if reader == "unzip":
        done = _run(["unzip", "-t", str(path)], timeout)
        ok = b"No errors detected in compressed data" in done.stdout
    elif reader == "bsdtar":  # extract every member to stdout: decompresses and checks every CRC
        done = _run(["bsdtar", "-xOf", str(path)], timeout, stdout=subprocess.DEVNULL)
        ok = not done.stderr.strip()
    else:
        done = _run(["7z", "t", "-bd", str(path)], timeout)
        ok = b"Everything is Ok" in done.stdout and b"WARNING" not in done.stdout.upper()
    took = time.monotonic() - started
    if done.returncode != 0 or not ok:
        out = (done.stdout or b"")[-3000:].decode(errors="replace")
        pytest.fail(f"{reader} rejected {path.name} (exit {done.returncode}):\n{out}\n{done.stderr.decode()[-3000:]}")
    return took


def cli_names(reader: str, path: Path, timeout: float = 120.0) -> list[str]:
    """Member names as the reader lists them."""
    require_tool(reader, PACKAGES[reader])
    if reader == "unzip":
        done = _run(["unzip", "-Z1", str(path)], timeout)
        names = done.stdout.decode("utf-8").splitlines()
    elif reader == "bsdtar":
        done = _run(["bsdtar", "-tf", str(path)], timeout)
        names = done.stdout.decode("utf-8").splitlines()
    else:
        done = _run(["7z", "l", "-slt", "-ba", str(path)], timeout)
        names = [line[len("Path = "):] for line in done.stdout.decode("utf-8").splitlines()
                 if line.startswith("Path = ")]
    assert done.returncode == 0, done.stderr.decode()
    return names


def cli_extract(reader: str, path: Path, into: Path, timeout: float = 120.0) -> None:
    require_tool(reader, PACKAGES[reader])
    into.mkdir(parents=True)
    argv = {
        "unzip": ["unzip", "-q", str(path), "-d", str(into)],
        "bsdtar": ["bsdtar", "-xf", str(path), "-C", str(into)],
        "7z": ["7z", "x", "-bd", "-y", f"-o{into}", str(path)],
    }[reader]
    done = _run(argv, timeout)
    assert done.returncode == 0, f"{reader} extraction failed: {done.stdout!r} {done.stderr!r}"


def tree_digests(root: Path) -> dict[str, str]:
    """relative POSIX path -> sha256 of every regular file under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def check_every_reader(path: Path, reader: str) -> None:
    """One cell of the compatibility matrix: ``reader`` accepts the archive and sees exactly the
    members, names and bytes Python's zipfile sees."""
    expected = zipfile_digests(path)
    if reader == "zipfile":
        assert expected, "no members"
    elif reader == "stream_unzip":
        assert stream_unzip_digests(path) == expected
    else:
        cli_test(reader, path)
        assert cli_names(reader, path) == [name for name, _, _ in expected]


# -- names ------------------------------------------------------------------------------------------

WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"{p}{n}" for p in ("COM", "LPT") for n in "0123456789¹²³")}


def name_problems(name: str) -> list[str]:
    """Why a member name is unsafe to extract on Linux, macOS or Windows (empty when it is safe).
    Written independently of shared/archive/names.py on purpose."""
    problems = []
    if name.startswith("/"):
        problems.append("absolute")
    if "\\" in name:
        problems.append("backslash")
    for comp in name.split("/"):
        if comp in ("", ".", ".."):
            problems.append(f"component {comp!r}")
            continue
        bad = [c for c in comp if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
        if bad:
            problems.append(f"control/bidi/format characters {bad!r}")
        if not unicodedata.is_normalized("NFC", comp):
            problems.append("not NFC")
        if len(comp.encode("utf-8")) > 255:
            problems.append(f"component of {len(comp.encode('utf-8'))} bytes")
        if comp != comp.strip(" .") or comp != comp.strip():
            problems.append("leading/trailing dot or space")
        if comp.split(".", 1)[0].strip().upper() in WINDOWS_DEVICES:
            problems.append("Windows device name")
        if any(c in ':*?"<>|' for c in comp):
            problems.append("character Windows forbids")
    return problems


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9
