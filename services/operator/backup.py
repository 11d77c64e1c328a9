"""Back up and restore the truth: the event stream and the KV buckets (heartbeats, admission).

Uses JetStream's own snapshot and restore API, as ``nats stream backup`` / ``restore`` do (nats-py
has no wrapper, so the small request/ack flow lives here):

* ``$JS.API.STREAM.SNAPSHOT.<stream>`` with ``{"deliver_subject", "chunk_size"}`` answers with the
  stream's config and state, then sends the snapshot (a tar, s2-compressed, with the stream's
  messages and its consumers) in chunks to the deliver subject; each chunk carries a reply
  subject to acknowledge (flow control), and an empty message ends it.
* ``$JS.API.STREAM.RESTORE.<stream>`` with ``{"config", "state"}`` answers with a subject to send
  the chunks to, each as a request; an empty request ends it and is answered with the stream's info.

The backup folder holds, per stream, ``<stream>.tar.s2`` and ``<stream>.json`` (config and state),
plus ``manifest.json``. The object store (archives, snapshots, part records) is not in it: back up
the bucket with the store's own tools. Restore sends only what the set-up makes: each stream's
config and the consumers in its snapshot are held to allow-lists first
(:mod:`services.operator.restorable`, :mod:`services.operator.snapshotread`). Restore goes into a
server where the streams do not exist: it asks for every one of them first and refuses, restoring
nothing, when any is there (restoring the first, then failing on the second, would leave the server
half restored).

Errors::

    BackupError   the server refused, or the folder is not a backup: one line
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from nats.aio.client import Client

from services.operator.restorable import as_restored, foreign_consumer, foreign_stream_fields
from services.operator.snapshotread import ARCHIVE_SINCE, NotASnapshot, consumers, is_archive
from shared.bus.connect import kv_names
from shared.eventlog.jetstream import stream_config
from shared.runtime.durable import fsync_folder
from shared.runtime.regularfile import open_regular
from shared.runtime.settings import Settings

CHUNK = 128 * 1024
MAX_JSON = 64 << 20  # manifest.json and a stream's config and state: a few KiB each
API = "$JS.API.STREAM"
STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")  # a stream name goes into an API subject: no . * > or space


class BackupError(Exception):
    pass


class Refused(BackupError):
    """The server answered a restore's request with an error: it made no stream of that request (a
    restore it fails part-way it takes back itself), so a stream of that name there now is not this
    restore's — another restore's, made since this one looked."""


@dataclass(frozen=True)
class Saved:
    stream: str
    messages: int
    bytes: int
    file: str
    sha256: str


def streams(settings: Settings) -> list[str]:
    """The streams that are the truth: the event log and the KV buckets' streams."""
    return list(subjects(settings))


def subjects(settings: Settings) -> dict[str, list[str]]:
    """Each of those streams with the subjects it holds in this deployment: a backup restores into
    these streams only, each once, with these subjects (another deployment's stream would be
    restored where no service reads it, its messages under subjects no service asks for)."""
    log = stream_config(settings.stream_name, settings.subject_prefix, 1, 1)
    return {log.name or settings.stream_name: list(log.subjects or []),
            **{f"KV_{b}": [f"$KV.{b}.>"] for b in kv_names(settings)}}


STREAM_EXISTS = 10130  # "stream name already in use, cannot restore"


def _check(reply: bytes, what: str) -> dict[str, Any]:
    data = json.loads(reply)
    if "error" in data:
        err = data["error"]
        code = err.get("err_code", err.get("code"))
        since = (" — made since this restore found none: another restore (or `grove-export setup`) running at "
                 "the same time?") if code == STREAM_EXISTS else ""
        raise Refused(f"{what}: {err.get('description', err)} (code {code}){since}")
    return dict(data)


async def snapshot(nc: Client, stream: str, out: Path) -> Saved:
    """Write one stream's snapshot to ``out/<stream>.tar.s2`` and its config/state to ``<stream>.json``."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        req = {"deliver_subject": inbox, "chunk_size": CHUNK}
        meta = _check((await nc.request(f"{API}.SNAPSHOT.{stream}", json.dumps(req).encode(), timeout=10)).data,
                      f"snapshot of {stream}")
        path, sha, size = out / f"{stream}.tar.s2", hashlib.sha256(), 0
        with path.open("wb") as f:
            while True:
                msg = await sub.next_msg(timeout=60)
                if not msg.data:  # the end; a header status other than 204 would be an error
                    status = (msg.headers or {}).get("Status", "204")
                    if status not in ("204", ""):
                        raise BackupError(f"snapshot of {stream} ended with status {status}: "
                                          f"{(msg.headers or {}).get('Description', '')}")
                    break
                f.write(msg.data)
                sha.update(msg.data)
                size += len(msg.data)
                if msg.reply:
                    await nc.publish(msg.reply, b"")
            f.flush()
            os.fsync(f.fileno())
    finally:
        await sub.unsubscribe()
    _write_durably(out / f"{stream}.json", json.dumps({"config": meta["config"], "state": meta["state"]}, indent=1))
    state = meta["state"]
    return Saved(stream, int(state.get("messages", 0)), size, path.name, sha.hexdigest())


def not_for_backup(out: Path) -> str | None:
    """Why ``out`` cannot take a backup: it holds other files (the backup's would be mixed in among
    them). A folder that does not exist yet, an empty one, or one holding a backup (refused by
    :func:`backup` itself, with its own line) is not this function's to refuse."""
    if not out.is_dir() or (out / "manifest.json").exists() or next(out.iterdir(), None) is None:
        return None
    return f"{out} is not empty and holds no backup: choose an empty or a new folder"


async def backup(nc: Client, settings: Settings, out: Path) -> list[Saved]:
    with _writing(out) as made:
        names = streams(settings)
        # when the backup began, before its first snapshot: what restore names as the time it was taken
        # (erase again every tenant erased since, and every export requested since is not in it) must not
        # postdate anything it lacks. Taken after the last snapshot, an erasure or a request during a
        # large log's minutes of snapshotting fell "before" the backup, and the restore's note missed it.
        began = datetime.now(UTC)
        try:
            saved = [await snapshot(nc, name, out) for name in names]
            manifest = {"created": began.isoformat(), "chunk": CHUNK,
                        "streams": [s.__dict__ for s in saved]}
            _publish_manifest(out, json.dumps(manifest, indent=1), made)
        except BaseException:  # a server that stops answering, a full disk, Ctrl-C: no half-written backup
            _remove_partial(out, names, made)
            raise
    return saved


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[bool]:
    """The folder ``out``, made when it is not there (True: made here), held with an ``flock`` on the
    folder itself while the backup writes into it. Two backups into one folder at once (two
    operators, a cron run beside a manual one) each wrote the same files, opened on their own: both
    said "backup in …", exit 0, and the folder held a mix of both snapshots that restore refused
    ("does not match its checksum"); or one that failed took away the other's files. The second is
    now refused in one line, nothing written; the kernel drops the lock of one killed."""
    for _ in range(5):
        if (out / "manifest.json").exists():
            raise BackupError(f"{out} already holds a backup; choose an empty folder")
        if problem := not_for_backup(out):
            raise BackupError(problem)
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BackupError(f"another backup is writing into {out} right now: nothing was written; wait for "
                                  "it to end, or choose another folder") from None
            try:
                here = os.stat(out).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                here = False
            if not here:  # the backup that held it failed and removed the folder it had made: again
                continue
            if (out / "manifest.json").exists() or not_for_backup(out):  # one that held it wrote meanwhile
                continue
            yield made
            return
        finally:
            os.close(fd)
    raise BackupError(f"{out} kept changing while this backup took it (other backups into it?): nothing was written")


def _write_durably(path: Path, text: str) -> None:
    with path.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _publish_manifest(out: Path, text: str, made: bool = False) -> None:
    """The manifest last, and whole or not at all: every stream's files are on disk (fsynced) before
    it is, it is written under a temporary name, fsynced and renamed into place, and the folder
    fsynced (its parent too when the backup made it). Written in place with nothing synced, a power cut after "backup in …" could
    leave a manifest naming files the disk never got (restore refused it, but the backup was gone)."""
    tmp = out / MANIFEST_TMP
    _write_durably(tmp, text)
    os.replace(tmp, out / "manifest.json")
    fsync_folder(out)
    if made:  # its own entry too, best effort: a parent this user may write but not read cannot be
        with contextlib.suppress(OSError):  # opened, and the backup is whole all the same — failing here
            fsync_folder(out.parent)  # would have the backup's clean-up delete a complete backup



MANIFEST_TMP = ".manifest.json.tmp"


def _remove_partial(out: Path, names: list[str], made: bool) -> None:
    """Remove what a backup that did not finish wrote in ``out`` (the folder too, when it made it): its
    files without a manifest are no backup, and left there they made the same command refuse the
    folder ("not empty and holds no backup") until found and removed by hand."""
    for name in (*(f"{n}{ext}" for n in names for ext in (".tar.s2", ".json")), "manifest.json", MANIFEST_TMP):
        with contextlib.suppress(OSError):
            (out / name).unlink(missing_ok=True)
    if made:
        with contextlib.suppress(OSError):
            out.rmdir()


def _read_json(path: Path, what: str) -> Any:
    try:
        with open_regular(path) as f:
            text = f.read(MAX_JSON + 1)
        if len(text) > MAX_JSON:  # read whole, a huge one took the memory first (MemoryError, a traceback)
            raise BackupError(f"{path}: not a backup's JSON (over {MAX_JSON >> 20} MiB)")
        return json.loads(text)
    except FileNotFoundError:
        raise BackupError(f"{path} is missing; {what}") from None
    except (ValueError, OSError) as e:  # not JSON, not UTF-8, a folder, a FIFO or device, unreadable
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise BackupError(f"{path}: not readable JSON ({why})") from None
    except RecursionError:  # arrays nested thousands deep: past the parser's stack, a traceback
        raise BackupError(f"{path}: not readable JSON (nested too deep)") from None


def _snapshot_consumers(path: Path, sha256: str, check: Callable[[str, dict[str, Any]], None]) -> bool:
    """Each consumer nats-server would restore from the snapshot at ``path`` given to ``check`` as it is
    read, from the same open file as its checksum (:func:`restore_stream` takes it again from the file
    it sends: what is sent is what was read here). Whether it is a NATSARC1 archive (2.15 on), not a tar."""
    try:
        with open_regular(path) as f:
            if _sha256_of(f) != sha256:
                raise BackupError(f"{path.name} does not match its checksum in manifest.json")
            f.seek(0)
            consumers(f, check)
            f.seek(0)
            return is_archive(f)
    except OSError as e:
        raise BackupError(f"{path}: cannot be read ({e.strerror or e})") from None
    except NotASnapshot as e:
        raise BackupError(f"{path}: not a snapshot as nats-server writes it ({e}): a backup altered since it "
                          "was made? Nothing was restored") from None


def _sha256_of(f: BinaryIO) -> str:
    sha = hashlib.sha256()
    while block := f.read(1 << 20):
        sha.update(block)
    return sha.hexdigest()


def check_backup(folder: Path, settings: Settings) -> list[dict[str, Any]]:
    """The manifest's entries, each with its ``meta`` (config and state), once every entry has the
    expected shape and every snapshot its checksum, and the backup holds each of this deployment's
    streams (:func:`subjects`) once, its config naming that stream and its subjects: a folder that
    is not a whole backup of this deployment is refused in one line before anything is restored
    (restoring the first stream, then failing on the second — a stream listed twice, a config naming
    another — would leave the server half restored; one missing would restore the rest and exit 0)."""
    ours = subjects(settings)
    if not (folder / "manifest.json").is_file():
        raise BackupError(f"{folder} has no manifest.json; it is not a grove-export backup")
    manifest = _read_json(folder / "manifest.json", "it is not a grove-export backup")
    where = folder / "manifest.json"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("streams"), list):
        raise BackupError(f"{where}: not a grove-export backup manifest (no list of streams)")
    entries: list[dict[str, Any]] = []
    for n, entry in enumerate(manifest["streams"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("stream", "file", "sha256")):
            raise BackupError(f"{where}: streams[{n}] is not an object with stream, file and sha256")
        stream, file = entry["stream"], entry["file"]
        if not STREAM_NAME.fullmatch(stream):
            raise BackupError(f"{where}: streams[{n}].stream {stream!r} is not a stream name")
        if stream not in ours:
            raise BackupError(f"{where}: streams[{n}].stream {stream!r} is not one of this deployment's streams "
                              f"({', '.join(ours)}; GROVE_STREAM_NAME and GROVE_KV_PREFIX name them): a backup of "
                              "another deployment?")
        if any(e["stream"] == stream for e in entries):
            raise BackupError(f"{where}: streams[{n}]: {stream} is listed twice")
        if file in ("", ".", "..") or "/" in file or "\\" in file or "\x00" in file:
            raise BackupError(f"{where}: streams[{n}].file {file!r} is not a file name in the folder")
        meta = _read_json(folder / f"{stream}.json", "the backup is incomplete")
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "state" not in meta:
            raise BackupError(f"{folder / f'{stream}.json'}: not a stream's config and state")
        config = meta["config"]
        if config.get("name") != stream:
            raise BackupError(f"{folder / f'{stream}.json'}: its config names stream {config.get('name')!r}, "
                              f"not {stream}")
        if config.get("subjects") != ours[stream]:
            raise BackupError(f"{folder / f'{stream}.json'}: its stream holds subjects {config.get('subjects')!r}, "
                              f"this deployment's {ours[stream]!r} (GROVE_SUBJECT_PREFIX, GROVE_KV_PREFIX): "
                              "a backup of another deployment?")
        if foreign := foreign_stream_fields(stream, config, settings):
            raise BackupError(f"{folder / f'{stream}.json'}: its config holds {', '.join(foreign)} as this "
                              "deployment's set-up never makes them: a backup altered since it was made? "
                              "Nothing was restored")
        # only these two keys go to the server: it reads a "Config" beside "config" too (Go's JSON
        # matches keys whatever their case, the last one winning)
        meta = {"config": as_restored(stream, config, settings), "state": meta["state"]}

        def ours_only(name: str, consumer: dict[str, Any], stream: str = stream, file: str = file) -> None:
            if why := foreign_consumer(stream, name, consumer, settings):
                raise BackupError(f"{folder / file}: its snapshot holds {why}: a backup altered since it was "
                                  "made? Nothing was restored")

        archive = _snapshot_consumers(folder / file, entry["sha256"], ours_only)
        entries.append({**entry, "meta": meta, "archive": archive})
    if missing := [name for name in ours if not any(e["stream"] == name for e in entries)]:
        raise BackupError(f"{where}: it holds no {', '.join(missing)}: not a whole backup of this deployment "
                          f"(its streams are {', '.join(ours)}), so nothing was restored")
    return entries


async def restore_stream(nc: Client, folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Send one stream's snapshot a chunk at a time (a big stream's snapshot is never held whole). The
    file is opened once and its checksum taken before anything is sent, then again from the same
    handle as the chunks go out: what is sent is what was checked (a file replaced since
    :func:`check_backup` is refused before the server is asked; one written to in place while it is
    sent is named, and the server may have made the stream from it by then)."""
    stream, meta = entry["stream"], entry["meta"]
    with open_regular(folder / entry["file"]) as f:
        if _sha256_of(f) != entry["sha256"]:
            raise BackupError(f"{entry['file']} does not match its checksum in manifest.json")
        f.seek(0)
        answer = _check((await nc.request(f"{API}.RESTORE.{stream}", json.dumps(meta).encode(), timeout=10)).data,
                        f"restore of {stream}")
        deliver, sha = answer["deliver_subject"], hashlib.sha256()
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            await nc.request(deliver, chunk, timeout=30)
    if sha.hexdigest() != entry["sha256"]:
        raise BackupError(f"{entry['file']} was written to while it was restored: restore from an unchanged backup")
    done = _check((await nc.request(deliver, b"", timeout=300)).data, f"restore of {stream}")
    return dict(done.get("state", {}))


NOT_FOUND = 10059  # JetStream's err_code for "stream not found"


async def existing(nc: Client, names: list[str]) -> list[str]:
    """Which of the streams ``names`` the server has."""
    found = []
    for name in names:
        data = json.loads((await nc.request(f"{API}.INFO.{name}", b"", timeout=10)).data)
        err = data.get("error")
        if err is None:
            found.append(name)
        elif err.get("err_code") != NOT_FOUND:
            raise BackupError(f"asking for stream {name}: {err.get('description', err)} "
                              f"(code {err.get('err_code', err.get('code'))})")
    return found


def _replace_hint(folder: Path, data: str | None = None) -> str:
    """The command that deletes the streams the backup holds, with what they hold, and restores it: the
    line named the `nats` CLI's ``nats stream rm``, which nothing here installs (grove-export can delete).
    ``data``: the --data the restore was given, named again: without it the command asks ./var's stack,
    whose log it would delete."""
    where = f" --data {shlex.quote(data)}" if data else ""
    return f"`grove-export restore --replace {shlex.quote(str(folder))}{where}`"


def _said(e: Exception) -> str:
    return str(e) if isinstance(e, BackupError) else f"{type(e).__name__}: {e}".rstrip(": ")


async def _delete(nc: Client, name: str) -> None:
    _check((await nc.request(f"{API}.DELETE.{name}", b"", timeout=10)).data, f"deleting {name}")


async def _accepted(nc: Client, entries: list[dict[str, Any]]) -> None:
    """Each stream's config put to the server before ``--replace`` deletes anything: a stream of that
    config under a name and subject of its own, made and deleted again. A config this server refuses
    (three replicas asked of one server: "replicas > 1 not supported in non-clustered mode") was found only after the streams it replaced were deleted, and the server
    was left with neither them nor the backup's."""
    token = secrets.token_hex(6)
    for entry in entries:
        stream, probe = entry["stream"], f"grove-restore-probe-{token}"
        config = {**entry["meta"]["config"], "name": probe, "subjects": [f"_grove_restore_probe.{token}"]}
        try:
            _check((await nc.request(f"{API}.CREATE.{probe}", json.dumps(config).encode(), timeout=10)).data,
                   f"this server refuses the config {stream} would be restored with")
        except Exception as e:  # noqa: BLE001 - refused, or no answer: nothing deleted yet
            said = _said(e) + (" (this deployment's GROVE_STREAM_REPLICAS)" if "replica" in _said(e).lower() else "")
            raise BackupError(f"{said}; nothing was deleted or restored") from None
        finally:
            with contextlib.suppress(Exception):  # not made (refused), or made: either way not left there
                await _delete(nc, probe)


async def _undo(nc: Client, folder: Path, names: list[str], why: str, replaced: list[str],
                data: str | None = None) -> str:
    """Delete the streams of ``names`` the server has now: the ones this restore made (those it
    restored, and the one it was restoring unless the server refused that one) — a restore that failed
    part-way leaves the server without them, not half restored. Never another stream of the backup: a
    second restore run at the same time made it, and deleting it left that one, which went on and
    exited 0, without it. The line to end with, naming any it could not delete."""
    gone = (f" (the streams it replaced, {', '.join(replaced)}, were deleted before: restore them from this "
            "backup)") if replaced else ""
    try:
        made = await existing(nc, names)
    except Exception as e:  # noqa: BLE001 - the server is gone too: say what may be left
        return (f"{why}; the streams restored before it may be left ({_said(e)}){gone}: run "
                f"{_replace_hint(folder, data)} once the server answers")
    kept = []
    for name in made:
        try:
            await _delete(nc, name)
        except Exception:  # noqa: BLE001 - named below
            kept.append(name)
    if kept:
        return (f"{why}; already restored: {', '.join(kept)}{gone} (run {_replace_hint(folder, data)} to delete them and "
                "restore again)")
    undone = f" ({', '.join(made)} deleted again)" if made else ""
    return f"{why}; nothing was restored{undone}{gone}: run restore again once that is fixed"


def _server_version(nc: Client) -> tuple[int, int, int] | None:
    """The connected nats-server's version, None when it did not say one."""
    try:
        version = nc.connected_server_version
        return (version.major, version.minor, version.patch) if version.major else None
    except (ValueError, TypeError):  # not a semantic version: not known
        return None


def unreadable_here(version: tuple[int, int, int] | None, archives: list[str]) -> str | None:
    """The line refusing a restore of NATSARC1 snapshots (``archives``: their streams) into a server
    before 2.15, which restores tars only: it refused the first with "restore failed: archive/tar: invalid
    tar header", and the line said to run restore again "once that is fixed" — a Debian operator's
    `nats-server` is 2.9 (the README's fresh server, started without the project's virtualenv)."""
    if version is None or not archives or version[:2] >= ARCHIVE_SINCE:
        return None
    since = ".".join(map(str, ARCHIVE_SINCE))
    return (f"this server runs nats-server {'.'.join(map(str, version))}, which restores only the snapshot format "
            f"of servers before {since}; the backup's snapshots of {', '.join(archives)} are in the format of "
            f"{since} and later (NATSARC1), which it refuses (archive/tar: invalid tar header): restore into "
            f"nats-server {since} or later (the project's own is .venv/bin/nats-server); nothing was deleted or "
            "restored")


async def restore(nc: Client, folder: Path, settings: Settings, entries: list[dict[str, Any]] | None = None,
                  restored: Callable[[str, int], None] | None = None, *, replace: bool = False,
                  deleted: Callable[[str], None] | None = None,
                  interrupted: Callable[[str], None] | None = None, data: str | None = None) -> list[tuple[str, int]]:
    """Restore every stream of the backup; ``entries`` from :func:`check_backup` when already checked,
    ``restored(stream, messages)`` called as each one is done (so a failure part-way shows what was).
    ``replace``: the backup's streams the server has are deleted first, with what they hold
    (``deleted(stream)`` called for each); without it, any of them there refuses the whole restore.
    Cut short while restoring (Ctrl-C: the task is cancelled), the streams it made are deleted as after
    a failure, ``interrupted(line)`` is told what was undone, and the interruption goes on."""
    entries = entries if entries is not None else check_backup(folder, settings)
    names = [e["stream"] for e in entries]
    if line := unreadable_here(_server_version(nc), [e["stream"] for e in entries if e.get("archive")]):
        raise BackupError(line)
    there = await existing(nc, names)
    if there and not replace:
        raise BackupError(
            f"the server already has stream{'s' if len(there) > 1 else ''} {', '.join(there)}: restore only "
            "creates streams that do not exist, so nothing was restored. Restore before `grove-export setup` "
            "creates them (in Kubernetes, before the grove-setup Job), or replace them, deleting what they "
            f"hold: {_replace_hint(folder, data)}")
    if there:
        await _accepted(nc, entries)
    gone: list[str] = []
    for name in there:
        try:
            await _delete(nc, name)
        except Exception as e:  # noqa: BLE001 - the server refused or did not answer: nothing restored yet
            before = (f"; {', '.join(gone)} {'was' if len(gone) == 1 else 'were'} deleted before it, with what "
                      f"{'it' if len(gone) == 1 else 'they'} held: run {_replace_hint(folder, data)} again once that "
                      "is fixed") if gone else ""
            raise BackupError(f"{_said(e)}; nothing was restored{before}") from None
        gone.append(name)
        if deleted is not None:
            deleted(name)
    out: list[tuple[str, int]] = []
    for entry in entries:
        made = [s for s, _ in out]  # restored by this command; the one under way is added unless refused
        try:
            state = await restore_stream(nc, folder, entry)
            out.append((entry["stream"], int(state.get("messages", 0))))
            made = [s for s, _ in out]
            if restored is not None:  # telling it is part of the step: a reader gone (`| head`) stops it too
                restored(*out[-1])
        except Exception as e:  # noqa: BLE001 - the server's refusal, a timeout, a read error: undo, then say it
            mine = made if isinstance(e, Refused) or entry["stream"] in made else [*made, entry["stream"]]
            raise BackupError(await _undo(nc, folder, mine, _said(e), there, data)) from None
        except BaseException:  # Ctrl-C: undone the same way (it left the first streams restored, the rest not)
            mine = made if entry["stream"] in made else [*made, entry["stream"]]
            line = await _undo(nc, folder, mine, "interrupted", there, data)
            if interrupted is not None:
                try:
                    interrupted(line)
                except OSError:  # stderr gone (SIGHUP from a lost terminal: EIO): the undo is done, and
                    pass  # the interruption goes on (the error replaced it: exit 1, as if restore had failed)
            raise
    return out
