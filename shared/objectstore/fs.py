"""The filesystem object store: the zero-setup default, with the same contract as S3.

Layout under ``root``: ``<bucket>/<key>`` for objects, ``.uploads/<bucket>/<upload_id>/`` for
multipart uploads (a ``meta.json`` and one file per part). ETags are content hashes, so If-Match
means "the bytes did not change": an object's is the MD5 of its bytes (as S3's); a part's is its
XXH3-128 (:func:`part_etag`: the store hashes every byte of every archive; XXH3 runs at ~22 GB/s
here against SHA-256's 1.2 and MD5's 0.45 — it guards against lost or rewritten parts, not against
someone who can write the store's directory, who could rewrite the cached digest as well), and a
completed multipart object's is S3's shape over the part digests, ``md5-of-part-digests-N``. Writes
go to a temp file then ``os.replace`` — a reader never sees a half-written object, and a reader that
opened the old file keeps reading the old bytes.

A part's digest is computed once, in the thread that writes it, and kept beside it (trusted while the
file's mtime and size match). Completion renames part 1 into place after appending the other parts
to it in the kernel (``copy_file_range``: no pass through Python, no re-hashing); a journal makes
an interrupted completion undoable (part 1 is truncated back) or, once the object is in place, final.

An upload started with a ``part_size`` (the assembler's) is laid out by it instead: every part is
written straight into one file at ``(n - 1) × part_size`` (``upload.bin``; a part may not be larger),
its digest and size kept beside it (``NNNNN.staged``), and completion truncates that file to the
parts' total and renames it into place: no byte is copied again. Parts are written with O_DIRECT
where the filesystem and the buffer allow it (the assembler hands page-aligned part buffers; a last
part's final partial page goes through the page cache): on a
VM, putting every archive byte into fresh page-cache pages cost the writing threads more CPU than
both SHA-256s (perf: 1.3 CPU-s for 424 MB, against 0.04 s with O_DIRECT), and nothing reads the
parts back. If the listed parts are not all ``part_size`` long but the last, completion gathers
their ranges into a new file instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import xxhash

from shared.core.keys import KEY_BYTES, NAME_BYTES  # S3's longest key, Linux's longest file name
from shared.objectstore.port import (
    CompletedPart,
    InvalidKey,
    MultipartUpload,
    NoSuchUpload,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreRefused,
    UploadedPart,
)

UrlSigner = Callable[[str, str, int, str | None], str]
PathT = TypeVar("PathT", str, Path)
_ETAG_SUFFIX = ".etag"
_STAGED = "upload.bin"  # an upload with a part size: every part at (n - 1) * part_size
_STAGED_PART = ".staged"  # beside it, per part: "<etag> <size>"
ALIGN = 4096  # O_DIRECT: offsets, lengths and buffer addresses in multiples of this
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_ABORTING = ".aborting"  # under .uploads/: folders of aborted uploads, taken out of sight to be deleted
_CREATING = ".creating"  # under .uploads/: an upload's folder while its create writes meta.json
STALE_CREATE_S = 3600.0  # a folder left there this long is a killed create's: the next abort deletes it

# A put writes ``.<name>.<32 hex>.tmp`` first and renames it: a name longer than this has no temp file
WRITABLE_NAME_BYTES = NAME_BYTES - len(f"..{'0' * 32}.tmp")
_CUT_PUT = re.compile(r"\.(.+)\.[0-9a-f]{32}\.tmp", re.DOTALL)  # that temp file: the object's name


def _own_name(name: str) -> bool:
    """A file name the store keeps for its own files beside an object (``.<name>.etag``, its cached
    digest; ``.<name>.<hex>.tmp``, a write under way): never listed as a key, and an object put
    at one is overwritten by the store (reading ``a.jpg`` rewrites ``.a.jpg.etag``)."""
    return name.startswith(".") or name.endswith(_ETAG_SUFFIX)


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\0" in key:
        raise InvalidKey(f"unsafe key {key!r}")
    try:
        size = len(key.encode())
    except UnicodeEncodeError:  # a lone surrogate: no file name
        raise InvalidKey(f"key {key!r} is not UTF-8") from None
    if size > KEY_BYTES or (size > NAME_BYTES and any(len(p.encode()) > NAME_BYTES for p in parts)):
        raise InvalidKey(f"key {key[:64]!r}… is too long for a file name")
    return key


def _open_folder(base: Path, folder: str) -> int | None:
    """A descriptor of ``folder`` (a safe key's folder part, '' for ``base`` itself) under ``base``,
    each segment opened without following a link; None when it is missing, not a folder, or a link."""
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        for segment in folder.split("/") if folder else []:
            inner = os.open(segment, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except OSError as e:
        os.close(fd)
        if isinstance(e, FileNotFoundError | NotADirectoryError) or e.errno == errno.ELOOP:
            return None
        raise
    return fd


class FilesystemStore:
    """Object store on a local folder. Blocking file work runs in threads."""

    aligned_part_buffers = True  # the uploader hands page-aligned part buffers: O_DIRECT can take them

    def __init__(self, root: Path, url_signer: UrlSigner | None = None) -> None:
        self.root = Path(root)
        self._root = str(self.root)
        self._signer = url_signer

    # -- paths -------------------------------------------------------------------------------
    def path(self, bucket: str, key: str) -> Path:
        return self.root / _safe_key(bucket) / _safe_key(key)

    def _file(self, bucket: str, key: str) -> str:
        """:meth:`path` as a string, for the reads of every source: the same name (a safe key has no
        empty, ``.`` or ``..`` segment for ``Path`` to fold), without building a ``Path`` — a third of
        the store's own time per small file (9 of ~44 µs here; an export of 65,536 files opens each)."""
        return f"{self._root}/{_safe_key(bucket)}/{_safe_key(key)}"

    def _upload_dir(self, bucket: str, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise NoSuchUpload(upload_id)
        return self.root / ".uploads" / bucket / upload_id

    def unfit_keys(self, keys: Sequence[str]) -> str | None:
        """A key no file can have here (:func:`_safe_key`; a file name a put's temporary name would
        take past 255 bytes; a name, or a folder's, as the store names its own files), or a key that
        is a file where another needs a folder (``x`` and ``x/y``: S3 holds both, this store keeps
        each key as a file)."""
        held = set(keys)
        for key in keys:
            try:
                _safe_key(key)
            except InvalidKey as e:
                return str(e)
            parts = key.split("/")
            if any(_own_name(p) for p in parts):  # a folder so named too: '.a.jpg.etag/z' beside 'a.jpg'
                return (f"{key!r} is named as the filesystem store names its own files (a dot first, or .etag "
                        "last: '.a.jpg.etag' is where it caches the digest of 'a.jpg', and writes over what is "
                        "there), and it lists no key so named")
            if len(parts[-1].encode()) > WRITABLE_NAME_BYTES:
                return (f"key {key[:64]!r}… is too long for a file name here (a file name of at most "
                        f"{WRITABLE_NAME_BYTES} bytes: a put writes it first as .<name>.<32 hex>.tmp)")
            for n in range(1, len(parts)):
                if (folder := "/".join(parts[:n])) in held:
                    return (f"{folder!r} is a file, and {key!r} would need it to be a folder (the filesystem store "
                            "keeps each key as a file)")
        return None

    # -- objects -----------------------------------------------------------------------------
    async def put(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> str:
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        await asyncio.to_thread(self._write_object, self.path(bucket, key), [data], etag)
        return etag

    def _write_object(self, path: Path, chunks: list[bytes] | list[Path], etag: str) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")

        def write() -> None:
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    if isinstance(chunk, Path):
                        with open(chunk, "rb") as src:
                            shutil.copyfileobj(src, out, 1 << 20)
                    else:
                        out.write(chunk)

        try:
            _into_folder(path, write)
            os.replace(tmp, path)
        except BaseException:  # a full disk, a source file gone: its temp file held part of the object, for good
            tmp.unlink(missing_ok=True)
            raise
        _write_etag(path, etag)

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._head, bucket, key)

    def _head(self, bucket: str, key: str) -> ObjectInfo:
        path = self.path(bucket, key)
        fd = self._open(bucket, key, path)
        try:
            st = os.fstat(fd)
            return ObjectInfo(key, st.st_size, _read_etag(path, st, fd), _modified(st))
        finally:
            os.close(fd)

    async def check_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(_check_folder, self.root / _safe_key(bucket), bucket)

    def _open(self, bucket: str, key: str, path: str | Path) -> int:
        """A descriptor of the regular file ``key`` names in the bucket's folder, reached without
        following a symbolic link (a tenant's media folder is written by others: a link to /etc/passwd
        or to another tenant's folder is no object of this key) and opened without blocking (a FIFO
        put where a file was would hold the reader in open() for good; O_NONBLOCK does nothing to a
        regular file's reads). Anything but a regular file — a folder (only a prefix of other keys), a
        FIFO, a device, a link — is ObjectNotFound. The bucket's folder itself may be a link (a
        deployment's choice, not a key's).

        One open of the whole path, its last segment not followed, accepted when the kernel's name for
        the opened file is that path (no link on the way); else — a link below the root or in it —
        the key is walked one folder at a time (a tenth of a millisecond per file more: an export of
        65,536 small files would pay seconds for the walk alone). ``path``: :meth:`path` of the two."""
        if _PROC_FD:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                fd = -1  # the walk says what it is
            if fd >= 0:
                try:
                    direct = os.readlink(f"/proc/self/fd/{fd}") == os.path.abspath(path)
                except OSError:
                    direct = False
                if direct:
                    return _regular(fd, bucket, key)
                os.close(fd)
        return _regular(self._walk(bucket, key), bucket, key)

    def _walk(self, bucket: str, key: str) -> int:
        """:meth:`_open` one segment at a time, each opened without following a link."""
        segments = key.split("/")
        try:
            folder = os.open(self.root / bucket, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{bucket}/{key}") from None
        except PermissionError:  # the deployment's, not a file's: the step fails at once
            raise StoreRefused("the storage folder cannot be read by this service (check its permissions)",
                               f"({bucket})") from None
        try:
            for segment in segments[:-1]:
                inner = os.open(segment, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
                os.close(folder)
                folder = inner
            return os.open(segments[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(f"{bucket}/{key}") from None
        except PermissionError:  # another user's file or folder: this item's error, not the step's
            raise StoreError(f"{bucket}/{key}: this service may not read it") from None
        except OSError as e:
            if e.errno != errno.ELOOP:  # ELOOP: O_NOFOLLOW met a link
                raise
            raise ObjectNotFound(f"{bucket}/{key}") from None
        finally:
            os.close(folder)

    async def get(
        self,
        bucket: str,
        key: str,
        *,
        start: int = 0,
        end: int | None = None,
        if_match: str | None = None,
        chunk_size: int = 1 << 20,
    ) -> AsyncIterator[bytes]:
        left = None if end is None else max(0, end - start)
        size = chunk_size if left is None else min(chunk_size, left)
        # open, ETag check, seek and the first read in one hop to a thread: a small object (a
        # snapshot, a part record) is read in one, where a hop each cost ~4 of them per object
        handle, seen, chunk = await asyncio.to_thread(self._begin, bucket, key, start, size, if_match)
        try:
            while chunk:
                yield chunk
                if left is not None:
                    left -= len(chunk)
                    if left <= 0:
                        break
                elif len(chunk) < size:  # a regular file's short read is its end (a later write
                    break  # into it is caught below when the ETag was asked for)
                size = chunk_size if left is None else min(chunk_size, left)
                chunk = await asyncio.to_thread(handle.read, size)
            if if_match is not None:
                _unchanged(handle, seen, f"{bucket}/{key}")
        finally:
            handle.close()

    def _begin(self, bucket: str, key: str, start: int, size: int,
               if_match: str | None) -> tuple[BinaryIO, os.stat_result, bytes]:
        """Open ``key``, check its ETag, and read its first ``size`` bytes from ``start``."""
        handle, seen = self._opened(bucket, key, if_match)
        try:
            handle.seek(start)
            return handle, seen, handle.read(size)
        except BaseException:
            handle.close()
            raise

    def _opened(self, bucket: str, key: str, if_match: str | None) -> tuple[BinaryIO, os.stat_result]:
        """``key`` opened, its ETag checked against ``if_match`` (from the opened file's own stat: one
        path lookup fewer per member of many small files), and that stat for :func:`_unchanged`."""
        path = self._file(bucket, key)
        handle = os.fdopen(self._open(bucket, key, path), "rb")
        try:
            seen = os.fstat(handle.fileno())
            if if_match is not None and _read_etag(path, seen, handle.fileno()) != if_match.strip('"'):
                raise PreconditionFailed(f"{bucket}/{key} changed")
            return handle, seen
        except BaseException:
            handle.close()
            raise

    def get_blocking(self, bucket: str, key: str, *, start: int = 0, end: int | None = None,
                     if_match: str | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """:meth:`get` for a caller that already runs in a worker thread (the archive encoder):
        plain file reads, no hop through the event loop per chunk. Checks run before the first
        chunk, as :meth:`get` does."""
        handle, seen = self._opened(bucket, key, if_match)
        return _read_range(handle, start, end, chunk_size, seen if if_match is not None else None, f"{bucket}/{key}")

    async def read(self, bucket: str, key: str, *, if_match: str | None = None) -> bytes:
        return b"".join([c async for c in self.get(bucket, key, if_match=if_match)])

    async def delete(self, bucket: str, key: str) -> None:
        await self.delete_many(bucket, [key])

    async def delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        paths = [self.path(bucket, key) for key in keys]  # every key checked before any is deleted

        def remove() -> None:  # one thread hop for all of them
            emptied = set()
            for path in paths:
                if path.is_file():  # missing, or only a prefix of other keys: nothing to delete
                    path.unlink(missing_ok=True)
                    _etag_path(path).unlink(missing_ok=True)
                    emptied.add(path.parent)
            for folder in sorted(emptied, key=lambda f: len(f.parts), reverse=True):  # each once, deepest first
                _prune(folder, self.root / bucket)

        await asyncio.to_thread(remove)

    async def list_keys(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list_keys, bucket, prefix)

    def _list_keys(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        base = self.root / bucket
        folder = prefix[:prefix.rfind("/") + 1]  # walk only the prefix's folder, not the whole bucket
        if folder:
            try:
                _safe_key(folder[:-1])
            except InvalidKey:  # no key that _safe_key takes is under it
                return []
        start = base / folder if folder else base
        if not start.is_dir() or os.path.realpath(start) != os.path.join(os.path.realpath(base), folder.rstrip("/")):
            return []  # missing, or reached through a link: no key of this bucket is there (see _open)
        out = []
        for path in _walk(start):
            if path.is_symlink() or not path.is_file() or _own_name(path.name):
                continue
            key = path.relative_to(base).as_posix()
            if key.startswith(prefix):
                try:
                    out.append(self._head(bucket, key))
                except StoreRefused:
                    raise
                except StoreError:  # deleted since the walk saw it, a name no key can be, unreadable:
                    continue  # not listed; a HEAD of it says why
        return out

    async def remove_cut_puts(self, bucket: str, keys: Sequence[str]) -> int:
        """Delete the temp files puts of ``keys`` cut short left beside them (``.<name>.<32 hex>.tmp``:
        seen, 2 MiB of an 8 MiB image after SIGKILL, kept through every later put of the key). Each
        folder is read once, reached from the bucket's folder without following a link (that folder
        itself may be one, as :meth:`_open` allows; a key's folder reached through a link is left
        alone, as :meth:`list_keys` does); only a regular file so named is a put's — a folder or a
        link of that name is someone else's and stays."""
        by_folder: dict[str, set[str]] = {}
        for key in keys:
            folder, _, name = _safe_key(key).rpartition("/")
            by_folder.setdefault(folder, set()).add(name)
        base = self.root / _safe_key(bucket)

        def remove() -> int:
            removed = 0
            for folder, names in by_folder.items():
                if (fd := _open_folder(base, folder)) is None:
                    continue
                try:
                    for entry in os.listdir(fd):
                        if not ((cut := _CUT_PUT.fullmatch(entry)) and cut[1] in names):
                            continue
                        with contextlib.suppress(FileNotFoundError):  # gone meanwhile
                            if stat.S_ISREG(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                                os.unlink(entry, dir_fd=fd)
                                removed += 1
                finally:
                    os.close(fd)
            return removed

        return await asyncio.to_thread(remove)

    async def leftovers(self, bucket: str, prefix: str) -> list[str]:
        """Files under the folder ``prefix`` ends with (``exports/<tenant>/``) that :meth:`list_keys`
        does not show: the temp files of writes cut short (a killed process, a full disk: ``.<name>.<hex>.tmp``
        holding part of an object's bytes) and digests left beside no object. Paths relative to the
        bucket, for :meth:`remove_leftovers` (operator erase: everything under a tenant's prefix goes)."""
        return await asyncio.to_thread(self._leftovers, bucket, prefix)

    def _leftovers(self, bucket: str, prefix: str) -> list[str]:
        start = self._folder(bucket, prefix)
        if start is None:
            return []
        base = self.root / bucket
        objects = {o.key for o in self._list_keys(bucket, prefix)}
        kept = objects | {_etag_path(base / key).relative_to(base).as_posix() for key in objects}
        return [key for path in _walk(start) if path.is_file() or path.is_symlink()
                if (key := path.relative_to(base).as_posix()) not in kept]

    async def remove_leftovers(self, bucket: str, prefix: str) -> None:
        """Delete :meth:`leftovers` under the folder ``prefix`` ends with, then that folder and every
        folder in it left empty (their names are the tenant's and its exports' ids); a folder a
        writer filled meanwhile stays."""
        def remove() -> None:
            start = self._folder(bucket, prefix)
            if start is None:
                return
            for key in self._leftovers(bucket, prefix):
                (self.root / bucket / key).unlink(missing_ok=True)
            folders = sorted((d for d in _walk(start) if d.is_dir() and not d.is_symlink()),
                             key=lambda d: len(d.parts), reverse=True)  # the deepest first
            for folder in [*folders, start]:
                with contextlib.suppress(OSError):  # not empty (written meanwhile), or gone
                    folder.rmdir()

        await asyncio.to_thread(remove)

    def _folder(self, bucket: str, prefix: str) -> Path | None:
        """The folder a prefix ending in ``/`` names, when there is one and it is safe to walk."""
        if not prefix.endswith("/"):
            return None
        try:
            folder = self.root / _safe_key(bucket) / _safe_key(prefix[:-1])
        except InvalidKey:
            return None
        return folder if folder.is_dir() and not folder.is_symlink() else None

    # -- multipart ---------------------------------------------------------------------------
    async def create_multipart(self, bucket: str, key: str, content_type: str | None = None,
                               part_size: int | None = None) -> str:
        upload_id = uuid.uuid4().hex
        d = self._upload_dir(bucket, upload_id)
        meta: dict[str, object] = {"key": _safe_key(key), "initiated": datetime.now(UTC).isoformat()}
        if part_size is not None and part_size > 0 and part_size % ALIGN == 0:
            meta["part_size"] = part_size  # parts go into one file at their offsets

        def create() -> None:
            # Made out of sight, then renamed into place with its meta.json: a create killed before the
            # rename left a folder with no meta.json among the uploads, no upload to anyone (its id was
            # never handed out, so nothing could abort it) and never removed. Now such a folder is in
            # .uploads/.creating/, which the next abort empties of folders older than STALE_CREATE_S.
            staging = self.root / ".uploads" / _CREATING / f"{bucket}-{upload_id}"
            staging.mkdir(parents=True)
            try:  # whole or not at all: a write cut short leaves no meta.json, never half of one
                _write_whole(staging / "meta.json", json.dumps(meta).encode())
                d.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(d)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)  # a full disk: no folder left without its meta.json
                raise

        await asyncio.to_thread(create)
        return upload_id

    def _meta(self, bucket: str, key: str, upload_id: str) -> tuple[Path, int | None]:
        """The upload's folder and its part size (None: one file per part)."""
        d = self._upload_dir(bucket, upload_id)
        meta = _read_meta(d)
        if meta is None or meta["key"] != key:
            raise NoSuchUpload(upload_id)
        if _recover(d):
            raise NoSuchUpload(upload_id)  # it was completed: like S3, the upload id is gone
        return d, meta.get("part_size")

    async def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, data: bytes | memoryview,
                          md5: str | None = None) -> str:
        if not 1 <= part_number <= 10000:
            raise StoreError(f"part number {part_number} out of range")

        def write() -> str:  # hashing in this thread too: never on the event loop
            d, stride = self._meta(bucket, key, upload_id)
            if stride is not None:
                if len(data) > stride:
                    raise StoreError(f"part {part_number} has {len(data)} bytes, more than the upload's part size "
                                     f"{stride}")
                etag = md5 or part_etag(data)
                _write_at(d / _STAGED, data, (part_number - 1) * stride)
                _replace_text(d / f"{part_number:05d}{_STAGED_PART}", f"{etag} {len(data)}")
                return etag
            tmp = d / f".{part_number}.{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            etag = md5 or part_etag(data)
            path = d / f"{part_number:05d}.part"
            os.replace(tmp, path)
            _write_etag(path, etag)  # list_parts and completion read this instead of hashing again
            return etag

        def written() -> str:
            try:
                return write()
            except FileNotFoundError:
                if not (self._upload_dir(bucket, upload_id) / "meta.json").exists():
                    raise NoSuchUpload(upload_id) from None  # aborted while this part was being written
                raise

        return await asyncio.to_thread(written)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[UploadedPart]:
        def scan() -> list[UploadedPart]:
            d, stride = self._meta(bucket, key, upload_id)
            if stride is not None:
                return [UploadedPart(n, etag, size) for n, (etag, size) in sorted(_staged_parts(d).items())]
            parts = []
            for p in sorted(d.glob("*.part")):
                parts.append(UploadedPart(int(p.stem), _read_etag(p), p.stat().st_size))
            return parts

        return await asyncio.to_thread(scan)

    async def complete_multipart(self, bucket: str, key: str, upload_id: str, parts: list[CompletedPart]) -> str:
        def complete() -> str:
            d, stride = self._meta(bucket, key, upload_id)
            staged = _staged_parts(d) if stride is not None else {}

            def uploaded(number: int) -> str | None:  # the part's etag, in either layout
                if stride is not None:
                    return staged[number][0] if number in staged else None
                f = d / f"{number:05d}.part"
                return _read_etag(f) if f.exists() else None

            digests = []
            for i, part in enumerate(parts, start=1):
                known = uploaded(part.part_number) if part.part_number == i else None
                if known is None:
                    raise StoreError(f"invalid part list at part {part.part_number}")
                if known != part.etag.strip('"'):
                    raise StoreError(f"part {part.part_number} etag mismatch")
                digests.append(bytes.fromhex(known))
            if not digests:
                raise StoreError("a multipart upload needs at least one part")
            etag = f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(parts)}"
            target = self.path(bucket, key)
            if stride is not None:
                _complete_staged(d, stride, [staged[p.part_number][1] for p in parts], target, etag)
            else:
                _assemble(d, [d / f"{p.part_number:05d}.part" for p in parts], target, etag)
            shutil.rmtree(d, ignore_errors=True)
            return etag

        return await asyncio.to_thread(complete)

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        try:
            d = self._upload_dir(bucket, upload_id)
        except NoSuchUpload:  # a malformed id names no upload: aborting it is not an error
            return

        def abort() -> None:
            meta = _read_meta(d)
            owner = None if meta is None else meta["key"]
            if owner is not None and owner != key:
                return  # another key's upload: like S3 (NoSuchUpload), nothing is aborted
            # Gone at once, then deleted: a part write racing this sees no folder at all (and says
            # NoSuchUpload), never a half-deleted one whose meta.json is still there.
            trash = self.root / ".uploads" / _ABORTING / f"{bucket}-{upload_id}-{uuid.uuid4().hex}"
            try:
                trash.parent.mkdir(parents=True, exist_ok=True)
                d.rename(trash)
            except FileNotFoundError:
                return  # already gone
            finally:
                _empty_trash(trash.parent)  # this one, and any an abort killed before deleting it left
                _sweep_stale_creates(self.root / ".uploads" / _CREATING)

        await asyncio.to_thread(abort)

    async def list_uploads(self, bucket: str, prefix: str) -> list[MultipartUpload]:
        def scan() -> list[MultipartUpload]:
            base = self.root / ".uploads" / bucket
            out = []
            for d in sorted(base.glob("*")) if base.exists() else []:
                meta = _read_meta(d)
                if meta is not None and meta["key"].startswith(prefix):
                    out.append(MultipartUpload(meta["key"], d.name, meta["initiated"]))
            return out

        return await asyncio.to_thread(scan)

    async def signed_url(self, bucket: str, key: str, expires_in: int, filename: str | None = None) -> str:
        if self._signer is None:
            raise StoreError("this filesystem store has no URL signer configured")
        return self._signer(bucket, _safe_key(key), expires_in, filename)

    async def close(self) -> None:
        return None


def _read_meta(d: Path) -> dict[str, Any] | None:
    """An upload folder's meta.json: ``key`` (text) and ``initiated`` (a time, or None), ``part_size``
    when it has one. None when there is none that can be read — not there (aborted, completed, or its
    create was killed before the rename), or damaged (a power loss after an older version wrote it in
    place): with no key to own it, it is no upload, NoSuchUpload to every caller, as an unknown id is."""
    try:
        meta = json.loads((d / "meta.json").read_bytes())
    except (OSError, ValueError):  # FileNotFoundError, NotADirectoryError; not JSON, not UTF-8
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("key"), str):
        return None
    try:
        meta["initiated"] = datetime.fromisoformat(meta["initiated"])
    except (KeyError, TypeError, ValueError):
        meta["initiated"] = None
    if meta["initiated"] is not None and meta["initiated"].tzinfo is None:
        meta["initiated"] = None  # no zone: no time to compare with
    if not isinstance(meta.get("part_size"), int | None):
        return None
    return meta


def _write_whole(path: Path, data: bytes) -> None:
    """``data`` at ``path``, whole or not at all: into a temp file beside it, renamed over it
    (``os.replace``). A write cut short (a full disk) removes its temp file; a process killed
    mid-write leaves only that temp file, never a short ``path``. No fsync: like its parts and its
    completions, the store does not promise to outlive a power loss (three fsyncs made a create
    3.7 ms instead of 0.3 ms here); a killed process is what it must never be half-done by."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _empty_trash(aborting: Path) -> None:
    """Delete every folder in ``.uploads/.aborting/``: each is an aborted upload, out of every listing
    since its rename, so none is anyone's to read. One whose abort was killed between the rename and
    the deletion would otherwise stay for good; the next abort takes it too. Two aborts emptying it at
    once only find some of the files already gone."""
    try:
        leftovers = list(aborting.iterdir())
    except FileNotFoundError:
        return
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)


def _sweep_stale_creates(creating: Path, older_than_s: float = STALE_CREATE_S) -> None:
    """Delete the folders in ``.uploads/.creating/`` left longer than ``older_than_s`` (by their time
    of last change): a create takes well under a second there, so one that old was killed. A create
    under way is younger and left alone."""
    try:
        leftovers = list(creating.iterdir())
    except FileNotFoundError:
        return
    cutoff = time.time() - older_than_s
    for folder in leftovers:
        try:
            if folder.lstat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            continue


_FOLDER_TRIES = 20
T = TypeVar("T")


def _prune(folder: Path, bucket: Path) -> None:
    """Remove ``folder`` and its parents up to ``bucket`` while they are empty: a key's folders go
    with its last object, as S3 has no folders to leave (an expired export left
    ``exports/<tenant>/<export>/work/parts/`` behind for good, three folders an export). A folder
    written meanwhile is not empty and stays; a writer whose folder went just before it wrote makes
    it again (:func:`_into_folder`)."""
    while folder != bucket and bucket in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): its parents are not empty either
            return
        folder = folder.parent


def _into_folder(path: Path, write: Callable[[], T]) -> T:
    """``write()``, which creates a file in ``path``'s folder, after making that folder — and again
    when :func:`_prune` removed the folder in between (it removes empty folders only, so once a
    file is in it the folder stays)."""
    for attempt in range(_FOLDER_TRIES):
        last = attempt == _FOLDER_TRIES - 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, FileNotFoundError):  # a folder on the way pruned while pathlib made the next
            if last:
                raise
            continue
        try:
            return write()
        except FileNotFoundError:
            if last:
                raise  # something else is missing (a source file): the same error each time
    raise AssertionError("unreachable")


def _check_folder(folder: Path, bucket: str) -> None:
    """:meth:`FilesystemStore.check_bucket`: ``folder`` is a folder this process may write in, or is
    not there yet and the nearest path above it that is there is one (a put makes every missing folder
    on the way, as the local stack's first export makes ``exports/``). A file on the way, a link loop, or
    a folder it may not write, fails every put in the bucket: :class:`StoreRefused`, the path in its detail."""
    at = folder
    while True:
        try:
            mode = os.stat(at).st_mode  # follows a link: the bucket's folder may be one (a deployment's choice)
            break
        except (FileNotFoundError, NotADirectoryError):  # not there, or a file above it: the path above says
            if os.path.islink(at):  # a link to nothing: a put cannot make a folder there
                raise StoreRefused("the storage folder is a link to nothing", f"({bucket}: {at})") from None
            if at.parent == at:
                raise StoreRefused("the storage folder is not there", f"({bucket}: {folder})") from None
            at = at.parent
        except PermissionError:  # a folder above it this service may not enter
            raise StoreRefused("the storage folder cannot be reached by this service (check its permissions)",
                               f"({bucket}: {at})") from None
        except OSError as e:  # ELOOP: a link that leads back to itself, which no put gets through either
            if e.errno != errno.ELOOP:
                raise
            raise StoreRefused("the storage folder is a loop of links", f"({bucket}: {at})") from None
    if not stat.S_ISDIR(mode):
        raise StoreRefused("the storage folder is a file, not a folder", f"({bucket}: {at})")
    # access(2) also says EROFS: a read-only mount is a folder this service may not write
    if not os.access(at, os.R_OK | os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        if os.statvfs(at).f_flag & os.ST_RDONLY:  # no chmod helps: said as such, not as its permissions
            raise StoreRefused("the storage folder is on a read-only filesystem (mount it read-write)",
                               f"({bucket}: {at})")
        raise StoreRefused("the storage folder cannot be written by this service (check its permissions)",
                           f"({bucket}: {at})")


_PROC_FD = os.path.isdir("/proc/self/fd")  # the kernel's name of an open file (Linux); else every key is walked


def _regular(fd: int, bucket: str, key: str) -> int:
    """``fd`` when it is a regular file; else closed, and ObjectNotFound."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ObjectNotFound(f"{bucket}/{key}")
    return fd


def _modified(st: os.stat_result) -> datetime | None:
    """The file's modification time; None (unknown) past what a datetime holds — tmpfs, XFS and btrfs
    keep 64-bit times, and tar restores whatever an archive says."""
    try:
        return datetime.fromtimestamp(st.st_mtime, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _etag_path(path: PathT) -> PathT:
    head, name = os.path.split(path)
    etag = os.path.join(head, f".{name}{_ETAG_SUFFIX}")
    return Path(etag) if isinstance(path, Path) else etag  # type: ignore[return-value]


# A digest computed from a file modified this recently is not cached: a file system's clock ticks
# coarsely (a jiffy on ext4 and XFS, a second on ext3 or HFS+, two on FAT), and a same-size rewrite
# within the tick keeps the mtime, so the cache would describe bytes the file no longer holds (git's
# "racily clean" files). The next read hashes again, once the file has aged past this.
RACY_NS = 2 * 10**9


def _stamp(path: str | Path, st: os.stat_result | None = None) -> str:
    """What a cached digest is trusted by: mtime, size and inode (a sync that keeps times — rsync -t,
    cp -p — replaces a file by another of the same size and mtime, but not the same inode; a rename
    keeps it, so the store's own completions stamp before they rename)."""
    st = os.stat(path) if st is None else st
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


def _write_etag(path: Path, etag: str) -> None:
    _put_etag_text(path, f"{etag} {_stamp(path)}")


def _put_etag_text(path: str | Path, text: str) -> None:
    """Write ``path``'s cached digest: into a new file renamed over ``.<name>.etag``, so a link or a
    FIFO someone put there is replaced, never written through (or waited on)."""
    tmp = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}{_ETAG_SUFFIX}.tmp")
    try:
        with open(tmp, "x") as out:
            out.write(text)
        os.replace(tmp, _etag_path(os.fspath(path)))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _cached_etag_text(path: str | Path) -> str:
    """The text of ``path``'s cached digest; OSError when there is none that is a regular file (a
    link, a FIFO or a folder in its place is not one — and is never waited on)."""
    fd = os.open(_etag_path(os.fspath(path)), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file")
        return os.read(fd, 4096).decode()
    finally:
        os.close(fd)


def _read_etag(path: str | Path, st: os.stat_result | None = None, fd: int | None = None) -> str:
    """The content hash, cached beside the file and trusted only while mtime and size match
    (a file placed or changed by hand is hashed again). ``st``: the file's stat, when known.
    The cache is only a cache: one that cannot be read or written (a folder the service may read
    but not write, a read-only mount, a name of over 249 bytes that leaves no room for
    ``.<name>.etag``, a folder in its place) means hashing, never an error."""
    try:
        st = st if st is not None else os.fstat(fd) if fd is not None else os.stat(path)
        etag, stamp = _cached_etag_text(path).split(" ", 1)
        if stamp == _stamp(path, st):
            return etag
    except (OSError, ValueError):
        pass
    etag = _hash_file(path) if fd is None else _hash_open(fd)
    # stamped with the stat taken before hashing: a change while it hashed gives another stamp next time
    if st is not None and time.time_ns() - st.st_mtime_ns >= RACY_NS:
        with contextlib.suppress(OSError):
            _put_etag_text(path, f"{etag} {_stamp(path, st)}")
    return etag


def _hash_open(fd: int) -> str:
    """The MD5 of a source already opened (``fd``, left open and where it was): the file that will be
    read, not whatever the path names by now — a FIFO put there would hold this open() for good."""
    h = hashlib.md5(usedforsecurity=False)
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def part_etag(data: bytes | memoryview) -> str:
    """A multipart part's ETag: its XXH3-128, 32 hex digits (MD5's length)."""
    return xxhash.xxh3_128_hexdigest(data)


def _hash_file(path: str | Path) -> str:
    """The ETag of a file without a valid cached one: a part's digest for a part, else MD5."""
    h = xxhash.xxh3_128() if os.path.basename(path).endswith(".part") else hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


_JOURNAL = ".completing"  # holds part 1's size while part 1 is being grown into the object
_GROWING = ".object"


def _assemble(d: Path, files: list[Path], target: Path, etag: str) -> None:
    """Part 1 becomes the object: the other parts are appended to it in the kernel, then it is
    renamed into place. The journal, written first, lets :func:`_recover` undo or finish this."""
    first = files[0]
    journal = d / _JOURNAL
    tmp = d / f"{_JOURNAL}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(str(first.stat().st_size))
    os.replace(tmp, journal)
    growing = d / _GROWING
    os.replace(first, growing)
    with open(growing, "ab") as out:
        for f in files[1:]:
            with open(f, "rb") as src:
                _append(src.fileno(), out.fileno(), f.stat().st_size)
    _into_folder(target, lambda: _put_etag_text(target, f"{etag} {_stamp(growing)}"))  # the rename keeps
    os.replace(growing, target)  # mtime and size


def _append(src: int, dst: int, size: int) -> None:
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done)
        except OSError:  # not supported between these files: copy through user space
            os.lseek(src, done, os.SEEK_SET)
            while chunk := os.read(src, 1 << 20):
                os.write(dst, chunk)
            return
        if n == 0:
            break
        done += n


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _staged_parts(d: Path) -> dict[int, tuple[str, int]]:
    """Part number → (etag, size) of an upload laid out by part size."""
    out = {}
    for p in d.glob(f"*{_STAGED_PART}"):
        etag, size = p.read_text().split()
        out[int(p.name[:-len(_STAGED_PART)])] = (etag, int(size))
    return out


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _write_at(path: Path, data: bytes | memoryview, offset: int) -> None:
    """``data`` into ``path`` at ``offset`` (created if need be): its whole pages with O_DIRECT when
    the offset and the buffer's address allow it (EINVAL otherwise), the rest through the page cache.
    A last part is rarely a whole number of pages, and for a small export it is the whole archive:
    only its final partial page goes through the page cache (in a burst of small exports, filling
    fresh page-cache pages with every archive cost the assembler 3–5 ms of system time an export)."""
    view = memoryview(data).cast("B")
    head = len(view) - len(view) % ALIGN if _O_DIRECT and offset % ALIGN == 0 else 0
    if head:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | _O_DIRECT, 0o644)
        except OSError:  # a filesystem without O_DIRECT (tmpfs)
            fd = -1
        if fd >= 0:
            try:
                _pwrite_all(fd, view[:head], offset)
                view, offset = view[head:], offset + head
                if not view:
                    return
            except OSError as e:
                if e.errno != errno.EINVAL:  # not an alignment refusal: a real write error
                    raise
            finally:
                os.close(fd)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        _pwrite_all(fd, view, offset)
    finally:
        os.close(fd)


def _copy_range(src: int, dst: int, offset: int, size: int) -> None:
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done, offset + done)
        except OSError:  # not supported between these files: through user space
            n = os.write(dst, os.pread(src, min(size - done, 1 << 20), offset + done))
        if n == 0:
            raise StoreError("the upload's file is shorter than its parts")
        done += n


def _complete_staged(d: Path, stride: int, sizes: list[int], target: Path, etag: str) -> None:
    """The upload file becomes the object: cut to the parts' total and renamed into place when every
    part but the last is ``stride`` long; else the parts' ranges are gathered into a new file first.
    The journal, written before anything changes, lets :func:`_recover` tell a finished completion
    from an interrupted one."""
    staged = d / _STAGED
    if all(size == stride for size in sizes[:-1]):
        _replace_text(d / _JOURNAL, f"staged {stride}")
        os.truncate(staged, (len(sizes) - 1) * stride + sizes[-1])
        obj = staged
    else:
        tmp = d / f".gather.{uuid.uuid4().hex}.tmp"
        with open(staged, "rb") as src, open(tmp, "wb") as out:
            for i, size in enumerate(sizes):
                _copy_range(src.fileno(), out.fileno(), i * stride, size)
        obj = d / _GROWING
        os.replace(tmp, obj)
        _replace_text(d / _JOURNAL, "gather")
    _into_folder(target, lambda: _put_etag_text(target, f"{etag} {_stamp(obj)}"))  # the rename keeps
    os.replace(obj, target)  # mtime and size


def _recover_staged(d: Path, mode: str) -> bool:
    """:func:`_recover` for an upload laid out by part size (see :func:`_complete_staged`)."""
    journal = d / _JOURNAL
    if mode == "gather":
        growing = d / _GROWING
        if not growing.exists():
            return True  # renamed into place
        growing.unlink()
    else:
        staged = d / _STAGED
        if not staged.exists():
            return True
        stride, size = int(mode.split()[1]), staged.stat().st_size
        for number, (_, part_size) in _staged_parts(d).items():  # parts the cut reached are gone
            if (number - 1) * stride + part_size > size:
                (d / f"{number:05d}{_STAGED_PART}").unlink()
    journal.unlink()
    return False


def _recover(d: Path) -> bool:
    """After an interrupted completion: True when it had finished (the object is in place); when
    it had not, part 1 is cut back to its own bytes and the upload is as it was before."""
    journal = d / _JOURNAL
    if not journal.exists():
        return False
    mode = journal.read_text()
    if not mode.isdigit():
        return _recover_staged(d, mode)
    growing = d / _GROWING
    if not growing.exists():
        return True
    os.truncate(growing, int(journal.read_text()))
    os.replace(growing, d / f"{1:05d}.part")
    journal.unlink()
    return False


def _walk(start: Path) -> list[Path]:
    """Every folder and file under ``start``, sorted, entering no linked folder. A folder deleted
    while it is walked (another export's clean-up, a concurrent erase) is passed over: ``rglob``
    raised FileNotFoundError for it on Python 3.11, and the listing — an erase's, the janitor's —
    failed ("No such file or directory: …/exp_…/work", seen once under load)."""
    out: list[Path] = []
    for folder, dirs, files in os.walk(start):  # errors (a folder gone) are skipped: onerror None
        here = Path(folder)
        out.extend(here / name for name in dirs)
        out.extend(here / name for name in files)
    return sorted(out)


def _unchanged(handle: BinaryIO, seen: os.stat_result, what: str) -> None:
    """After a read with If-Match: the file is as it was when the ETag was checked. A write into it
    meanwhile (same size, in place) left the reader old bytes then new — a file that never existed;
    a replacement by rename is no concern (the open file keeps its bytes). Modification time and size,
    as the cached ETag trusts them: a write within the same clock tick as the last one goes unseen."""
    now = os.fstat(handle.fileno())
    if (now.st_mtime_ns, now.st_size) != (seen.st_mtime_ns, seen.st_size):
        raise PreconditionFailed(f"{what} changed while it was read")


def _read_range(handle: BinaryIO, start: int, end: int | None, chunk_size: int,
                seen: os.stat_result | None = None, what: str = "") -> Iterator[bytes]:
    """``seen``: the file's stat when its ETag was checked, for :func:`_unchanged` once read."""
    with handle:
        handle.seek(start)
        left = None if end is None else max(0, end - start)
        while left is None or left > 0:
            asked = chunk_size if left is None else min(chunk_size, left)
            chunk = handle.read(asked)
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk
            if len(chunk) < asked:  # a regular file's short read is its end (as in get: one read
                break  # fewer per small file; a write into it meanwhile is caught below with If-Match)
        if seen is not None:
            _unchanged(handle, seen, what)
