"""``grove-export verify ARCHIVE [--sha256 HEX]``: is this archive whole, and does it hold what it says?

Checks, in order: the archive's own SHA-256 (when given), the ZIP structure (a truncated or cut
archive is walked from the front to name the member that is cut off), every member's CRC-32 and the
SHA-256 that manifest.json records for it, members that are in one but not the other, and that every
image a post or page links to by a relative path, and every file index.json says is in the archive,
really is; that each post's and page's front matter gives the values its index.json entry gives for
every column import restores from it (import reads the front matter: an archive edited in one and
not the other passed verify and imported other values than index.json says); no name appears twice
(readers differ on which copy they take); no member is a symbolic link (an export holds only files,
and `unzip` would make the link on disk). Members that overlap (a zip bomb) are named before
anything is expanded, and nothing else is read; so are members encrypted or compressed otherwise
than an export is (stored or deflated). Each problem names the member. Reads nothing outside the
ZIP. A member is expanded no further than the size it states, and deflate stops near 1,032 to one:
the work is bounded by about a thousand times the archive's size.

Members are streamed through their hashes in chunks; only manifest.json, index.json and errors.json
(each under 64 MiB, read first) and each post and page (for its links and front matter, one at a
time as it is read) are held whole; one document of the wrong shape is one problem naming it (see
documents.py), never a traceback.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import posixpath
import re
import stat
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from services.archivetools.documents import (
    CHUNK,
    JSON_LIMIT,
    TEXT_COLUMNS,
    TEXT_LIMIT,
    DocumentError,
    Errors,
    Index,
    Manifest,
    check,
    declared_columns,
    parse_json,
    read_text_page,
    text_columns,
)
from shared.archive.frontmatter import CLOSE, OPEN, parse_markdown
from shared.archive.layout import (
    ERRORS_PATH,
    FEED_PATH,
    FILES,
    FRONT_MATTER_KEYS,
    GENERATED_PATHS,
    INDEX_PATH,
    MANIFEST_PATH,
    MEDIA,
    PAGES,
    POSTS,
    README_PATH,
    file_slug,
    hugo_address,
    hugo_address_before,
    hugo_misreads,
    hugo_tags,
    hugo_unsafe,
    hugo_unsafe_before,
    hugo_unsafe_tag,
    hugo_unsafe_tag_before,
    is_media,
    is_text_page,
    unwritten_keys,
)
from shared.archive.mdlinks import find_links
from shared.archive.names import is_safe_path, same_file_key
from shared.archive.ownmedia import (
    REWRITE_LIMIT,
    MediaRef,
    OwnMedia,
    links_past_scan,
    read_as_before,
    relative_link,
    release_of,
    scan_limit,
)
from shared.archive.trailer import MAX32, ZIP64_EOCD, ZIP64_EOCD_SIG, ZIP64_LOCATOR, ZIP64_LOCATOR_SIG
from shared.core.printable import printable

# The last release that gave slugs by the older reading of Hugo's addresses (layout.hugo_address_before)
ADDRESSES_BEFORE_UNTIL = (0, 2, 0)
_OPEN, _CLOSE = OPEN.encode(), CLOSE.encode()  # a post's front matter fences, as its bytes hold them
LOCAL = struct.Struct("<4sHHHHHIIIHH")
# A data descriptor after a member's data: CRC-32 and both sizes, 4 or 8 bytes each (ZIP64), with or
# without its signature. The only bytes that may lie between members; 30 could hold a local header.
DESCRIPTORS = (12, 16, 20, 24)

# Deflate itself stops near 1032 to one, so with only stored and deflated members (METHODS), none
# overlapping and none expanded past its stated size, the work of verifying or importing an archive
# stays under about a thousand times its size, in bounded memory. No ratio is refused: runs of one
# byte (a person's zero-filled or sparse file) deflate to exactly that, and such an export is sound.
# zipfile inflates bzip2 and LZMA one whole read at a time with no bound on the output (79 bytes of
# bzip2 are 64 MiB of zeros), so no limit could stop them part-way; an export never uses them.
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
_KINDS = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device", stat.S_IFIFO: "named pipe",
          stat.S_IFSOCK: "socket", stat.S_IFDIR: "directory"}
# Extra fields that give a member another name than its header's: Info-ZIP's Unicode Path (0x7075),
# which `unzip`, bsdtar and 7-Zip extract under instead, while zipfile (so every check here) reads the
# header's name. An export never writes one.
RENAMING_EXTRAS = (0x7075,)
# Extra fields that give a member an owner (Info-ZIP's Unix UID/GID, 0x7875 and 0x7855, and its older
# Unix field, 0x5855; PKWARE's Unix field, 0x000d, whose owner `unzip -X` applied from the local header
# alone, unseen): bsdtar run as root, or unzip -X, applies the owner on disk. Info-ZIP's `zip` writes 0x7875 by
# default, so an export unpacked and zipped again carries one on every member: a fact, not a problem
# (names and bytes are what was checked; import ignores owners) — the first version refused them, and
# such an archive could no longer be imported. ASi Unix (0x756e) also carries a mode and a link
# target, which zipfile does not read: a problem. An export writes none of them.
OWNER_EXTRAS = (0x7875, 0x7855, 0x5855, 0x000d)
OWNING_EXTRAS = (0x756e,)
# Extra fields that give a member its attributes again: libarchive's 'xl' field (0x6c78), whose
# external attributes bsdtar applies over the central directory's (from either header): a member
# whose mode there said a symbolic link, a directory or setuid 06777 was made one on disk, while
# every check here read the directory's 0644. An export never writes one.
ATTRIBUTE_EXTRAS = (0x6c78,)
ENCRYPTED, PATCHED_DATA, STRONG_ENCRYPTION = 0x1, 0x20, 0x40  # general purpose flag bits 0, 5 and 6
# Mode bits an export never sets and an unpacker applies: setuid, setgid and sticky (bsdtar keeps them
# when run as root: a setuid root file) and write for group or others (unzip keeps them)
UNSAFE_MODE = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH
DOS_DIRECTORY = 0x10  # FILE_ATTRIBUTE_DIRECTORY in the low byte of a member's external attributes
UTF8_NAME = 0x800  # bit 11: the name is UTF-8 (an export sets it on every member)
VMS = 2  # the system Info-ZIP's unzip reads in the upper byte of "version needed to extract" and asks about
# What manifest.json's item_counts count: the members in a folder (posts and pages: Markdown files)
COUNTED = {"posts": (f"{POSTS}/", ".md"), "pages": (f"{PAGES}/", ".md"), "images": (f"{MEDIA}/", ""),
           "files": (f"{FILES}/", "")}
# Where an export puts the file of each of index.json's sections
FOLDERS = {section: f"{section}/" for section in (POSTS, PAGES, MEDIA, FILES)}  # index.json section → folder
# The members an export makes besides the posts, pages, images and files index.json lists
OWN_DOCUMENTS = (README_PATH, INDEX_PATH, FEED_PATH, *GENERATED_PATHS)
# Flag bits a streaming reader refuses a stored or deflated member for, which zipfile ignores: enhanced
# deflating (bit 4) and a masked local header (bit 13); stream_unzip raises UnsupportedFlagsError.
REFUSED_FLAGS = 0x10 | 0x2000


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [*self.facts, *(f"PROBLEM: {p}" for p in self.problems)]
        lines.append("archive OK" if self.ok else f"archive NOT OK: {len(self.problems)} problem(s)")
        return "\n".join(printable(line) for line in lines)


Archive = Path | IO[bytes]  # a path, or a file already open (import checks the very file it then reads)


@contextmanager
def _opened(source: Archive) -> Iterator[IO[bytes]]:
    """``source`` open for reading from its first byte; a file given open is left open."""
    if isinstance(source, Path):
        with open(source, "rb") as f:
            yield f
        return
    source.seek(0)
    yield source


def verify_archive(path: Archive, sha256: str | None = None) -> Report:
    report = Report()
    if sha256:
        digest = _sha256_file(path)
        if digest != sha256.strip().lower():
            report.problems.append(f"the archive's SHA-256 is {digest}, not {sha256.strip().lower()}")
        else:
            report.facts.append("SHA-256 of the archive matches")
    try:
        zf = zipfile.ZipFile(path)  # a path, or the open file (zipfile finds its end itself)
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as e:  # a name flagged UTF-8 that is
        # not (UnicodeDecodeError), a "version needed to extract" past what zipfile knows
        report.problems.append(f"not a readable ZIP ({e}); {walk_front(path)}")
        return report
    with zf:
        if overlaps := _overlaps(zf, path):  # expanding them is what a zip bomb wants: nothing is read
            report.problems += overlaps
            return report
        if unexpandable := _unexpandable(zf):  # likewise
            report.problems += unexpandable
            return report
        report.problems += _end_record(zf, path)
        _check_members(zf, report)
    return report


def _end_record(zf: zipfile.ZipFile, path: Archive) -> list[str]:
    """The end of central directory record must say what the directory holds: its members, all on disk
    0. zipfile reads the directory by its size and offset and never compares the counts or the disk
    numbers, while unzip (exit 3, or 1 for a disk number) and 7-Zip report an archive whose end record
    says otherwise as broken: 4 bytes changed there and verify said OK. Where there is a ZIP64 end
    record, its values count (zipfile's reading), and the classic record's may say 0xFFFF instead."""
    n = len(zf.infolist())
    with _opened(path) as f:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # what zipfile read the directory by
        if end is None:  # zipfile found it a moment ago: the file changed under it
            return ["the archive's end of central directory record cannot be read again (was it written to?)"]
        at = end[zipfile._ECD_LOCATION]  # type: ignore[attr-defined]
        f.seek(at)
        classic = struct.unpack("<4x4H", f.read(12))  # disk, directory's disk, entries here, entries in all
        located = _zip64_located(f, at, end)
        after = os.fstat(f.fileno()).st_size - end[zipfile._ECD_LOCATION] - 22  # type: ignore[attr-defined]
        # zipfile reads the directory's bytes as one block, and an entry's extra field or comment said
        # to run on past it is cut short there, unseen: the lengths its entries give, added up
        records, f_at = 0, zf.start_dir
        for _ in range(n):
            f.seek(f_at + 28)
            records += 46 + sum(struct.unpack("<HHH", f.read(6)))
            f_at = zf.start_dir + records
    problems = [located] if located else []
    # zipfile takes the directory to end where the end records begin, and moves every member by as many
    # bytes as the offset the end record gives is off: further on (a self-extracting archive's prefix) is
    # bytes before the first member, a problem of its own; back, with every member's offset as far past
    # it, read as sound, while unzip refused the archive ("missing 46 bytes in zipfile", exit 12)
    if (past := end[zipfile._ECD_OFFSET] - zf.start_dir) > 0:  # type: ignore[attr-defined]
        problems.append(f"the archive's end record places its central directory at byte {end[zipfile._ECD_OFFSET]}, "  # type: ignore[attr-defined]
                        f"{past} bytes past where it is (zipfile moves it, and every member, back by as many and reads "
                        f"them there; unzip refuses the archive, missing {past} bytes; an export's end record gives "
                        "its directory's byte)")
    resolved = tuple(end[1:5])  # the same four, from the ZIP64 end record when there is one
    if resolved != (0, 0, n, n) or not all(v in (want, 0xFFFF) for v, want in zip(classic, (0, 0, n, n), strict=True)):
        problems.append(f"the archive's end of central directory record says {resolved[3]} members ({resolved[2]} on "
                        f"this disk, which it numbers {resolved[0]}), its central directory lists {n} on one disk (unzip "
                        "and 7-Zip report the archive as broken; an export's end record gives the directory's own count)")
    elif classic[2] != classic[3]:  # one of them 0xFFFF beside a ZIP64 end record: zipfile reads neither
        problems.append(f"the archive's end record says {classic[2]} members on this disk and {classic[3]} in all (7-Zip "
                        "reports the archive as broken; an export's end record gives one count twice, 0xFFFF twice "
                        "beside a ZIP64 end record)")
    # the last entry's extra field or comment running on into the end record: unzip, 7-Zip and bsdtar refuse it
    if records != end[zipfile._ECD_SIZE]:  # type: ignore[attr-defined]
        problems.append(f"the central directory's entries take {records} bytes, not the {end[zipfile._ECD_SIZE]} its "  # type: ignore[attr-defined]
                        "end record gives (an entry's extra field or comment runs on into the end record: unzip, 7-Zip "
                        "and bsdtar refuse the archive)")
    # and it takes what bytes there are for the end record's comment, whatever length it gives
    if after != end[zipfile._ECD_COMMENT_SIZE]:  # type: ignore[attr-defined]
        problems.append(f"the archive's end record gives a comment of {end[zipfile._ECD_COMMENT_SIZE]} bytes and "  # type: ignore[attr-defined]
                        f"{after} follow it (7-Zip reports the archive as broken, or warns of bytes after its end; an "
                        "export's end record is its last 22 bytes)")
    return problems


def _zip64_located(f: IO[bytes], at: int, end: list[Any]) -> str | None:
    """The problem when the ZIP64 end records locate the central directory otherwise than zipfile
    read it. zipfile (3.11; 3.12 before CVE-2025-8291's fix) takes the 56 bytes before the ZIP64 end
    locator for the ZIP64 end record, never reading where the locator says the record is nor the
    record's own length; unzip and bsdtar go where the locator points: at a record planted in a stored
    member's data, giving a directory planted there too, they extracted posts/a.md with other bytes than
    every check here read (exit 0; 7-Zip exited 2), and verify said OK. And with a ZIP64 end record zipfile
    takes the directory's size and offset from it alone: the end record's, where they are not 0xFFFFFFFF,
    must be the same (unzip exited 12 and 7-Zip 2 on other ones). An export writes its ZIP64 end record
    just before its locator, the locator giving that byte, and the end record's fields as said."""
    if at < ZIP64_LOCATOR.size:
        return None
    f.seek(at - ZIP64_LOCATOR.size)
    locator = f.read(ZIP64_LOCATOR.size)
    if locator[:4] != ZIP64_LOCATOR_SIG:
        return None
    record_at = at - ZIP64_LOCATOR.size - ZIP64_EOCD.size
    _, _, pointed, disks = ZIP64_LOCATOR.unpack(locator)
    if disks != 1:  # zipfile takes 0 or 1 (more: "span multiple disks"); unzip exited 3 on 0, reading nothing
        return (f"the archive's ZIP64 end locator says it is {disks} disks (unzip reads no member: \"attempt to seek "
                "before beginning of zipfile\"; an export is 1)")
    if end[zipfile._ECD_SIGNATURE] != ZIP64_EOCD_SIG:  # type: ignore[attr-defined]
        return None  # none where zipfile looks: it read the end record's directory, and takes the locator and the
        # bytes before it for bytes after the directory, moving every member as far (bytes before the first one)
    f.seek(record_at)
    length = ZIP64_EOCD.unpack(f.read(ZIP64_EOCD.size))[1] + 12
    if pointed != record_at or length != ZIP64_EOCD.size:
        return (f"the archive's ZIP64 end locator points at byte {pointed} for its ZIP64 end record, which is at byte "
                f"{record_at} and says it is {length} bytes long (zipfile reads the directory that record gives, "
                "unzip and bsdtar the one the byte the locator gives leads to; an export's locator gives its record, "
                f"{ZIP64_EOCD.size} bytes long)")
    f.seek(at + 12)
    size, offset = struct.unpack("<II", f.read(8))
    if size not in (end[zipfile._ECD_SIZE], MAX32) or offset not in (end[zipfile._ECD_OFFSET], MAX32):  # type: ignore[attr-defined]
        return (f"the archive's end record places its central directory at byte {offset} ({size} bytes), its ZIP64 "
                f"end record at byte {end[zipfile._ECD_OFFSET]} ({end[zipfile._ECD_SIZE]} bytes), which zipfile "  # type: ignore[attr-defined]
                "reads (unzip and 7-Zip report the archive as broken; an export's end record gives the same, or "
                "0xFFFFFFFF)")
    return None


def _unexpandable(zf: zipfile.ZipFile) -> list[str]:
    """Members encrypted or compressed otherwise than stored or deflated. zipfile expands a deflated
    member no further than the size it states (a test holds it to that) nor, deflate being what it
    is, past about 1,032 times its compressed size; and the compressed sizes of members that do not
    overlap add up to at most the archive's: so the work is bounded by about 1,000 times its size."""
    problems: list[str] = []
    for info in zf.infolist():
        # zipfile would stop for a password (a RuntimeError), or at strong encryption (bit 6) or patched
        # data (bit 5) with a NotImplementedError: neither is a problem it names
        if info.flag_bits & (ENCRYPTED | STRONG_ENCRYPTION):
            problems.append(f"{info.filename}: encrypted; an export never is, and nothing was expanded")
        elif info.flag_bits & PATCHED_DATA:
            problems.append(f"{info.filename}: compressed as patched data; an export only stores or deflates, "
                            "and nothing was expanded")
        elif info.compress_type not in METHODS:
            how = _METHOD_NAMES.get(info.compress_type, f"method {info.compress_type}")
            problems.append(f"{info.filename}: compressed with {how}; an export only stores or deflates, "
                            "and nothing was expanded")
    return problems


def _overlaps(zf: zipfile.ZipFile, path: Archive) -> list[str]:
    """Members whose bytes (local header, name, extra field and data, as the central directory
    states them) run into the next member's or the central directory: entries that point into one
    another, which is how zip bombs expand a million to one (Python 3.11's zipfile does not check).
    And bytes the directory does not account for: before the first member, between two (but for
    the data descriptor a member flags) or before the directory; a streaming reader walks the local
    headers and would read them as members that zipfile, so this check, never sees. A sound
    archive's members lie one after another from its first byte; a local header that cannot be read
    is left for the member walk to report."""
    # An offset from a ZIP64 extra field can be anything up to 2**64 - 1: seeking there failed (EINVAL past
    # the file system's largest file, which the command line read as "NATS failed"; a ValueError past 2**63)
    problems = [f"{i.filename}: the central directory places it at byte {i.header_offset}, past the members (the "
                f"directory begins at byte {zf.start_dir})" for i in zf.infolist() if i.header_offset >= zf.start_dir]
    infos = sorted((i for i in zf.infolist() if i.header_offset < zf.start_dir), key=lambda i: i.header_offset)
    end: int | None = 0  # where the previous member ends: where this one must begin
    with _opened(path) as f:
        for info, nxt in zip(infos, [*infos[1:], None][:len(infos)], strict=True):  # none: an empty archive
            if info.header_offset < 0:  # zipfile shifts offsets by what an end record says: it can lie
                problems.append(f"{info.filename}: the central directory places it before the archive's first byte")
                end = None
                continue
            if end is not None and info.header_offset != end:
                problems.append(_unaccounted(info.header_offset - end, f"before {info.filename}" if end else
                                             "before its first member"))
            f.seek(info.header_offset)
            head = f.read(LOCAL.size)
            if len(head) < LOCAL.size:
                end = None
                continue
            nlen, xlen = LOCAL.unpack(head)[-2:]
            local_name, local_extra = f.read(nlen), f.read(xlen)
            if _named_otherwise(info, LOCAL.unpack(head)[2], local_name):
                problems.append(f"{info.filename}: its local header names it otherwise ({local_name!r}: bsdtar makes "
                                "that file on disk and stream_unzip gives that name, not the one checked; an export "
                                "writes the same name in both)")
            if not _tiles(local_extra):  # zipfile never reads it; unzip (exit 2) and bsdtar refuse the member
                problems.append(f"{info.filename}: its local header's extra field is malformed (its records do not "
                                f"fill its {len(local_extra)} bytes: unzip and bsdtar refuse the archive; an export's "
                                "fill it)")
            if _renames(local_extra) and not _renames(info.extra):  # the directory's own is named below
                problems.append(_renamed(info.filename, "local header"))
            if _has(local_extra, OWNER_EXTRAS + OWNING_EXTRAS) and not _has(info.extra, OWNER_EXTRAS + OWNING_EXTRAS):
                problems.append(f"{info.filename}: its local header alone gives it an owner (an extra field the "
                                "central directory does not carry, which bsdtar run as root applies on disk)")
            if _has(local_extra, ATTRIBUTE_EXTRAS) and not _has(info.extra, ATTRIBUTE_EXTRAS):
                problems.append(_attributed(info.filename, "local header"))
            if disagree := _local_disagrees(info, head, local_extra):
                problems.append(f"{info.filename}: its local header and the central directory disagree on its "
                                f"{disagree} (a streaming reader would extract other bytes than those checked)")
            if info.compress_type == zipfile.ZIP_STORED and info.flag_bits & 0x8:
                problems.append(f"{info.filename}: stored with a data descriptor (a streaming reader finds its end by "
                                "searching its bytes for a descriptor: one inside them ends it early and the rest is "
                                "read as members; an export deflates every member)")
            end = info.header_offset + LOCAL.size + nlen + xlen + info.compress_size
            limit, what = (nxt.header_offset, nxt.filename) if nxt else (zf.start_dir, "the central directory")
            if end > limit:
                problems.append(f"{info.filename}: its data runs into {what} (members overlap, as in a zip bomb)")
                end = None
            elif info.flag_bits & 0x8:
                f.seek(end)
                if not _descriptor_agrees(info, f.read(min(limit - end, max(DESCRIPTORS)))):
                    problems.append(f"{info.filename}: its data descriptor is missing or disagrees with the central "
                                    "directory on its CRC-32 or sizes (a streaming reader checks the member against "
                                    "it: stream_unzip and bsdtar refuse the archive)")
                if limit - end in DESCRIPTORS:
                    end = limit
        if end is not None and end != zf.start_dir:
            problems.append(_unaccounted(zf.start_dir - end, "before the central directory"))
    return problems


def _descriptor_agrees(info: zipfile.ZipInfo, raw: bytes) -> bool:
    """``raw``, the bytes between a member's data and the next member (or the central directory), is
    a data descriptor giving the CRC-32 and sizes the central directory gives: 12 or 20 bytes (4- or
    8-byte sizes), 16 or 24 with its signature. Only these bytes lie outside every checked member; a
    streaming reader takes the member's CRC-32 and sizes from them, so one that lied (or was missing)
    made stream_unzip and bsdtar refuse an archive verify called OK."""
    if len(raw) in (16, 24):
        if raw[:4] != b"PK\x07\x08":
            return False
        raw = raw[4:]
    if len(raw) not in (12, 20):
        return False
    return struct.unpack("<IQQ" if len(raw) == 20 else "<III", raw) == (info.CRC, info.compress_size, info.file_size)


def _named_otherwise(info: zipfile.ZipInfo, flags: int, local_name: bytes) -> bool:
    """The local header's name is other bytes than the central directory's, or the same non-ASCII
    bytes read otherwise (flag bit 11). zipfile compares the two only as text, each decoded by its own
    flag: posts/\x82.md unmarked in the local header is code page 437's posts/é.md, which the directory
    marked UTF-8, and bsdtar (seekable or streaming) made posts/\x82.md on disk."""
    central = info.orig_filename.encode("utf-8" if info.flag_bits & UTF8_NAME else "cp437")
    return local_name != central or bool((flags ^ info.flag_bits) & UTF8_NAME and not local_name.isascii())


def _local_disagrees(info: zipfile.ZipInfo, head: bytes, extra: bytes) -> str | None:
    """What a member's local header says otherwise than the central directory, of what a streaming
    reader (which reads only the local header) needs to read its data: the method, the flags that
    change how the data is read and the CRC-32 and sizes (ZIP64 ones from the local zip64 extra field;
    0 where a data descriptor follows). zipfile reads the directory's and checks only the name."""
    _, _, flags, method, _, _, crc, csize, usize, _, _ = LOCAL.unpack(head)
    if method != info.compress_type:
        return "compression method"
    if flags != info.flag_bits:  # any bit: 7-Zip refuses a member whose two headers' flags differ at all
        return "flags"
    # With a data descriptor (flag bit 3) the CRC-32 and sizes follow the data and the header's are 0; one
    # given anyway must be right: libarchive (bsdtar, Windows' tar) holds it to the directory's and refused
    # an export with 3 there ("Inconsistent uncompressed size: 5 in central directory, 3 in local header")
    descriptor = bool(flags & 0x8)
    at, wide = 0, [usize == 0xFFFFFFFF, csize == 0xFFFFFFFF]
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        if kind == 0x0001:  # zip64: the sizes the header marks 0xFFFFFFFF, uncompressed first (a record said to run
            # on past the extra field is not read: a traceback, import's too; _tiles names the field malformed)
            whole = size >= 8 * sum(wide) and at + 4 + 8 * sum(wide) <= len(extra)
            values = iter(struct.unpack_from(f"<{sum(wide)}Q", extra, at + 4) if whole else ())
            usize = next(values, usize) if wide[0] else usize
            csize = next(values, csize) if wide[1] else csize
            break
        at += 4 + size
    if any(value != want and not (descriptor and value == 0)
           for value, want in zip((crc, csize, usize), (info.CRC, info.compress_size, info.file_size), strict=True)):
        return "CRC-32 or sizes"
    return None


def _mode_bits(mode: int) -> str:
    names = ((stat.S_ISUID, "setuid"), (stat.S_ISGID, "setgid"), (stat.S_ISVTX, "sticky"),
             (stat.S_IWGRP | stat.S_IWOTH, "write for others"))
    return ", ".join(word for bit, word in names if mode & bit)


def _renames(extra: bytes) -> bool:
    """The extra field holds one of :data:`RENAMING_EXTRAS`."""
    return _has(extra, RENAMING_EXTRAS)


def _tiles(extra: bytes) -> bool:
    """The extra field is records (a 2-byte id, a 2-byte size, that many bytes) that end where it ends."""
    at = 0
    while at + 4 <= len(extra):
        at += 4 + struct.unpack_from("<H", extra, at + 2)[0]
    return at == len(extra)


def _has(extra: bytes, ids: tuple[int, ...]) -> bool:
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, at)
        if kind in ids:
            return True
        at += 4 + size
    return False


def _owned(name: str, where: str) -> str:
    return (f"{name}: its {where} gives it an owner, a mode and maybe a link target (an ASi Unix extra field, "
            "which zipfile, so every check here, does not read; an export never writes one)")


def _attributed(name: str, where: str) -> str:
    return (f"{name}: its {where} gives it other attributes (libarchive's 'xl' extra field, whose kind and mode "
            "bsdtar applies instead of those checked: a link, a directory, setuid; an export never writes one)")


def _renamed(name: str, where: str) -> str:
    return (f"{name}: its {where} carries another name for it (a Unicode Path extra field, which unzip, bsdtar "
            "and 7-Zip extract under instead of the name checked; an export never writes one)")


def _unaccounted(size: int, where: str) -> str:
    return (f"the archive holds {size} bytes {where} that the central directory does not account for "
            "(a streaming reader would read them as members it does not list)")


def _folder_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The empty entries named for a folder (``media/``), which ``zip -r`` and 7-Zip add for each
    folder when an archive is unpacked and zipped again: said once each, as such, not also as an unsafe
    name, a directory, and a member neither index.json nor manifest.json lists (four lines a folder).
    Only an entry that is nothing else: no bytes (stored, none compressed, CRC-32 0), a directory or no
    type, its name once in the archive, and no file named as its folder (on a case-insensitive disk too)
    — any other keeps every problem a member of its name has."""
    names = Counter(zf.namelist())
    files = {same_file_key(n) for n in names if not n.endswith("/")}
    return [info for info in zf.infolist()
            if info.filename.endswith("/") and names[info.filename] == 1 and is_safe_path(info.filename[:-1])
            and info.file_size == info.compress_size == info.CRC == 0
            and stat.S_IFMT(info.external_attr >> 16) in (0, stat.S_IFDIR)
            and same_file_key(info.filename[:-1]) not in files]


def _check_members(zf: zipfile.ZipFile, report: Report) -> None:
    entries = set(_folder_entries(zf))
    folders = [info.filename for info in zf.infolist() if info in entries]  # each once in the archive (_folder_entries)
    names = [n for n in zf.namelist() if n not in folders]  # the files: what the checks below are about
    for name in folders:
        report.problems.append(f"{name}: a folder entry, not a file (`zip -r` and 7-Zip add one for each folder "
                               "when an archive is unpacked and zipped again; an export holds only files, so this "
                               "is not the archive as it was exported)")
    if zf.comment:  # unzip prints it on every extraction, escapes and all: a channel to the person's terminal
        report.problems.append(f"the archive carries a comment of {len(zf.comment)} bytes (unzip prints it, as it "
                               "is, to the terminal that unpacks it; an export has none)")
    for info in zf.infolist():
        if info.comment:  # zipinfo and unzip -v print them likewise
            report.problems.append(f"{info.filename}: carries a comment of {len(info.comment)} bytes (unzip -v "
                                   "prints it, as it is; an export writes none)")
    for name, times in Counter(zf.namelist()).items():  # zipfile reads the last of them, a streaming reader the first
        if times > 1:
            report.problems.append(f"{name}: in the archive {times} times (readers disagree on which is meant)")
    first: dict[str, str] = {}
    misread: list[str] = []  # Hugo's findings: problems, or facts in an archive of a release before 0.2.0 (_Texts.hugo)
    for name in dict.fromkeys(names):  # an export's names are safe and distinct on any disk (names.py)
        if not is_safe_path(name):
            report.problems.append(f"{name}: not a name an export makes (each part a safe file name, 1,024 bytes "
                                   "in all at most: see *What the archive holds*)")
        elif is_text_page(name) and hugo_misreads(name):  # Hugo builds other posts of its folder, or none
            misread.append(f"{name}: not a name an export gives a post or page (Hugo reads it as a folder's "
                                   "own page, a translation or a file to skip, not as one more page: it builds "
                                   "other posts, or none, of that folder)")
        if (other := first.setdefault(same_file_key(name), name)) != name:
            report.problems.append(f"{name}: the same file as {other} on a case-insensitive disk (one would "
                                   "overwrite the other)")
    report.problems += _files_over_folders(first)
    owned = 0
    for info in zf.infolist():
        if refused := info.flag_bits & REFUSED_FLAGS:
            report.problems.append(f"{info.filename}: its flags set {refused:#06x} (enhanced deflating, bit 4, or a masked "
                                   "local header, bit 13), which stream_unzip refuses (an export sets neither)")
        if info.extract_version > 46:  # zipfile reads up to 6.3; Info-ZIP's unzip refuses past its own 4.6
            report.problems.append(f"{info.filename}: its central directory entry says version "
                                   f"{info.extract_version // 10}.{info.extract_version % 10} is needed to extract it "
                                   "(unzip, which does 4.6, refuses it; a stored or deflated member needs 2.0, or 4.5 "
                                   "with ZIP64)")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            # zipfile reads a stored member's size and checks the CRC-32 of those bytes; unzip writes every
            # compressed byte (a tail the checks never read), 7-Zip and bsdtar refuse the member (fewer than
            # its size: damaged, below)
            report.problems.append(f"{info.filename}: stored, yet its entry gives {info.compress_size} bytes of data "
                                   f"for its {info.file_size} (unzip writes them all, 7-Zip and bsdtar refuse the "
                                   "archive; a stored member's data is its bytes)")
        if info.reserved == VMS:  # zipfile keeps the upper byte of "version needed to extract" unread
            report.problems.append(f"{info.filename}: its central directory entry says VMS is needed to extract it "
                                   "(unzip asks whether to extract it anyway and, with no one to answer, leaves it "
                                   "out, exit 81; an export's entries say no system there, 0)")
        if info.volume:  # zipfile ignores the disk an entry says its member starts on; 7-Zip exits 2
            report.problems.append(f"{info.filename}: its central directory entry places it on disk {info.volume} "
                                   "(7-Zip reports the archive as broken; an export is one file, disk 0)")
        if not _tiles(info.extra):  # zipfile takes 1 to 3 bytes left over without a word
            report.problems.append(f"{info.filename}: its central directory entry's extra field is malformed (its "
                                   f"records do not fill its {len(info.extra)} bytes; an export's fill it)")
        if _renames(info.extra):
            report.problems.append(_renamed(info.filename, "central directory entry"))
        if _has(info.extra, OWNING_EXTRAS):
            report.problems.append(_owned(info.filename, "central directory entry"))
        owned += _has(info.extra, OWNER_EXTRAS)
        if _has(info.extra, ATTRIBUTE_EXTRAS):
            report.problems.append(_attributed(info.filename, "central directory entry"))
        if not info.flag_bits & UTF8_NAME and not info.filename.isascii():
            report.problems.append(f"{info.filename}: a name not marked UTF-8 (zipfile reads it as code page 437, "
                                   "unzip, bsdtar and 7-Zip as UTF-8: it is another file on disk than the one "
                                   "checked; an export marks every name)")
    if owned:
        report.facts.append(f"{owned} member(s) carry a Unix owner (an Info-ZIP or PKWARE UID/GID extra field: `zip` "
                            "writes one unless given -X; an export has none): bsdtar run as root, or unzip -X, gives "
                            "the files that owner on disk — unpack as yourself, or with --no-same-owner")
    digests: dict[str, str] = {}
    kept: dict[str, bytes] = {}  # the JSON documents, each under its limit
    # The JSON documents are read first (the central directory says where they are): index.json and
    # errors.json come after the posts, and each post or page is checked against them as it is read,
    # then dropped. Every post was held to the end before, so memory grew with the blog.
    early: dict[zipfile.ZipInfo, tuple[str, bytes | None] | Exception] = {}
    for doc in (MANIFEST_PATH, ERRORS_PATH, INDEX_PATH):
        if doc in zf.NameToInfo:
            try:
                early[zf.getinfo(doc)] = got = _stream(zf, zf.getinfo(doc), JSON_LIMIT)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
                early[zf.getinfo(doc)] = e
                continue
            if got[1] is not None:
                kept[doc] = got[1]
    documents = Report()  # their problems, said after the members' as before
    errors = _document(kept, ERRORS_PATH, Errors, documents, names)
    index = _document(kept, INDEX_PATH, Index, documents, names, required=False)
    texts = _Texts(index, names, {e["path"] for e in errors or [] if isinstance(e.get("path"), str)})
    texts.hugo += misread
    for info in zf.infolist():
        name = info.filename
        kind = stat.S_IFMT(info.external_attr >> 16)  # whatever system it says made it: some reader honours it
        if info in entries:
            pass  # a folder entry: said above (its bytes, none, are still read below)
        elif kind == stat.S_IFLNK:
            report.problems.append(f"{name}: a symbolic link (an export holds only files; unzip would make "
                                   "the link on disk)")
        elif kind not in (0, stat.S_IFREG):  # bsdtar makes a device node (as root), a pipe or a directory
            report.problems.append(f"{name}: a {_KINDS.get(kind, 'special file')}, not a file (an export holds "
                                   "only files; an unpacker may make one on disk)")
        elif mode := stat.S_IMODE(info.external_attr >> 16) & UNSAFE_MODE:  # bsdtar, as root, kept a setuid bit
            report.problems.append(f"{name}: its Unix mode {oct(stat.S_IMODE(info.external_attr >> 16))} sets "
                                   f"{_mode_bits(mode)} (unpackers apply it on disk; an export's files are 0o644)")
        if info.external_attr & DOS_DIRECTORY and kind in (0, stat.S_IFREG) and info not in entries:  # DOS attributes,
            # which 7-Zip and bsdtar read as a directory when DOS or NTFS made the member (an export sets none)
            report.problems.append(f"{name}: a directory, not a file (an export holds only files; an unpacker "
                                   "may make one on disk)")
        limit = JSON_LIMIT if name in (MANIFEST_PATH, ERRORS_PATH, INDEX_PATH) else \
            TEXT_LIMIT if is_text_page(name) else None
        try:
            done = early.pop(info, None)
            if isinstance(done, Exception):
                raise done
            digests[name], data = done or _stream(zf, info, limit)  # reading to the end checks the CRC-32
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as e:
            report.problems.append(f"{name}: damaged ({e})")
            continue
        if data is None and limit is not None and is_text_page(name):
            # an export can hold a post this big: hashed, not read whole; its front matter is read from its head
            # (padded past the limit, a post's `aliases: [/login/]` verified OK and Hugo built the page)
            if zf.getinfo(name) is info:
                texts.check_head(name, _front(zf, info, limit), limit)
            report.facts.append(f"{name}: over {limit // 2**20} MiB; its checksum and front matter were checked, its "
                                "links were not")
        elif data is not None:
            if is_text_page(name) and zf.getinfo(name) is info:  # the copy zipfile reads, as import does
                texts.check(name, data)
        elif limit is not None:
            report.problems.append(f"{name}: over the {limit // 2**20} MiB limit for a document read whole")
    manifest = _document(kept, MANIFEST_PATH, Manifest, report, names)
    report.problems += documents.problems
    texts.finish(report, manifest.get("generator") if manifest is not None else None)
    if manifest is None:
        return
    listed = {m["path"]: m for m in manifest.get("members", [])}
    for member_path, times in Counter(m["path"] for m in manifest.get("members", [])).items():
        if times > 1:  # only the last entry was checked: the others could say anything (the README's checker reads them all)
            report.problems.append(f"{member_path}: listed in manifest.json {times} times")
    for member_path, entry in listed.items():
        if member_path not in zf.NameToInfo:  # a dict: `names`, a list, made this loop quadratic
            report.problems.append(f"{member_path}: listed in manifest.json but not in the archive")
        elif member_path in digests and digests[member_path] != entry.get("sha256"):
            report.problems.append(f"{member_path}: SHA-256 does not match manifest.json")
        elif member_path in digests and entry.get("size") is not None and \
                (type(entry["size"]) is not int or entry["size"] != zf.getinfo(member_path).file_size):
            # the size it states is part of its proof: a tool that reads it (to make room, to show progress,
            # the README's own listing) was told another than what is there, and verify said OK
            report.problems.append(f"{member_path}: {zf.getinfo(member_path).file_size} bytes, not the "
                                   f"{entry['size']!r} manifest.json states")
    for name in names:
        if name not in listed and name not in GENERATED_PATHS:
            report.problems.append(f"{name}: in the archive but not listed in manifest.json")
    # item_counts are "what this archive holds", the manifest says: the members of each kind, one more or
    # one fewer is an archive altered (without index.json, its only account of them). An export made
    # before 30 November counted an image the assembler then left out (errors.json lists it) too.
    # index.json and manifest.json name each row's file by one id: import restores the row under index.json's
    # (a post's id changed in one of them verified OK). A null id is "" in manifest.json, as the export writes it.
    for section in FOLDERS:
        for entry in index.get(section, []) if index is not None else []:
            if (m := listed.get(entry.get("path"))) is not None and "source_id" in m and \
                    m["source_id"] != ("" if entry.get("id") is None else entry.get("id")):
                report.problems.append(f"{entry['path']}: index.json gives it the id {entry.get('id')!r}, "
                                       f"manifest.json the source id {m['source_id']!r}")
    held, unique, present = manifest.get("item_counts"), list(dict.fromkeys(names)), set(names)
    for counted, (folder, suffix) in COUNTED.items():
        if not isinstance(held, dict) or counted not in held:
            continue
        there = sum(1 for n in unique if n.startswith(folder) and n.endswith(suffix)
                    and not n.endswith("/"))  # a folder entry (`zip -r`, 7-Zip) is a problem of its own, no item
        left = sum(1 for e in errors or [] if isinstance(e.get("path"), str) and e["path"].startswith(folder)
                   and e["path"] not in present)
        if type(held[counted]) is not int or not held[counted] - left <= there <= held[counted]:
            report.problems.append(f"{MANIFEST_PATH}: item_counts says {held[counted]!r} {counted}; the archive "
                                   f"holds {there} in {folder}")
    counts = Counter(n.split("/", 1)[0] if "/" in n else "top level" for n in names)
    report.facts.insert(0, f"{len(names)} members: " + ", ".join(f"{n} in {k}" for k, n in sorted(counts.items()))
                        + (f" (and {len(folders)} folder entries)" if folders else ""))
    report.facts.append(f"manifest.json: {len(listed)} checksums checked; item counts {manifest.get('item_counts')}")
    if errors is not None:
        reasons = Counter(str(e.get("reason", "?")).split(":")[0] for e in errors)
        report.facts.append(f"errors.json: {len(errors)} item(s) not included"
                            + (f" ({', '.join(f'{n} {r}' for r, n in reasons.items())})" if errors else ""))


def _files_over_folders(first: dict[str, str]) -> list[str]:
    """A member that is a file where another member needs a folder (``media/a.jpg`` beside
    ``media/a.jpg/b.jpg``, or ``media/A.jpg/b.jpg`` on a case-insensitive disk): an unpacker makes the
    one and cannot make the other, so an archive verify called OK did not unpack whole (the names
    allocator keeps an export's files and folders apart). ``first``: each name by its
    :func:`same_file_key`. Sorted, the members a folder holds follow its name and ``/`` at once: one
    look-up a member, whatever the number of its parts."""
    keys = sorted(first)
    problems = []
    for key, name in first.items():
        at = bisect.bisect_left(keys, key + "/")
        if at < len(keys) and keys[at].startswith(key + "/"):
            problems.append(f"{name}: a file, where {first[keys[at]]} needs a folder (an unpacker makes one of the "
                            "two and cannot make the other; an export keeps its files and folders apart)")
    return problems


def _front(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes | bytearray:
    """A post's or page's first bytes, up to and including the line that closes its front matter, read no
    further than ``limit`` bytes (all of them when it does not close there): a post too long to read whole
    has its front matter checked all the same, in the memory its front matter takes."""
    head = bytearray()
    with zf.open(info) as f:
        while len(head) < limit and (block := f.read(min(CHUNK, limit - len(head)))):
            head += block
            if not head.startswith(_OPEN):
                break  # no front matter: said so as of a post read whole
            if (end := head.find(_CLOSE, max(len(_OPEN) - 1, len(head) - len(block) - len(_CLOSE)))) >= 0:
                return bytes(head[:end + len(_CLOSE)])
    return head  # not copied: up to `limit` bytes


def _stream(zf: zipfile.ZipFile, info: zipfile.ZipInfo, keep_under: int | None) -> tuple[str, bytes | None]:
    """The member's SHA-256, read in chunks; and its bytes when ``keep_under`` is given and they fit.
    ValueError when it holds other than the size it states."""
    sha, size = hashlib.sha256(), 0
    chunks: list[bytes] = []
    keep = keep_under is not None and info.file_size <= keep_under
    with zf.open(info) as f:  # zipfile's checks of the local header; a deflated member is inflated here
        # from the file zipfile reads, never the archive's name opened again: import hands over the file it
        # then imports, and a file put at that name meanwhile was the one checked, not the one imported
        blocks = _inflated(zf.fp, info) if info.compress_type == zipfile.ZIP_DEFLATED and zf.fp is not None \
            else iter(lambda: f.read(CHUNK), b"")
        for block in blocks:
            sha.update(block)
            size += len(block)
            if keep and keep_under is not None and size > keep_under:  # it expands past what it states
                keep, chunks = False, []
            if keep:
                chunks.append(block)
    if size != info.file_size:  # zipfile stops at the end of the deflate stream and checks only the CRC-32 there
        raise ValueError(f"it holds {size} bytes, not the {info.file_size} its central directory entry states")
    return sha.hexdigest(), b"".join(chunks) if keep else None


def _inflated(fp: IO[bytes], info: zipfile.ZipInfo) -> Iterator[bytes]:
    """A deflated member's bytes, in pieces of at most :data:`CHUNK`, their CRC-32 checked at the end
    (as zipfile checks it); ValueError unless its deflate stream ends exactly at the end of the
    compressed bytes its entry states, having expanded to no more than the size it states. zipfile
    stops at the end of the stream, never reading what the entry holds after it (a streaming reader
    goes on from there, past a descriptor, and extracted a member hidden there), and at the size the
    entry states though the stream goes on (unzip and 7-Zip wrote all of it); and no further than one
    byte past that size is expanded here either."""
    fp.seek(info.header_offset)  # sought again before every read: the file is zipfile's, shared
    head = fp.read(LOCAL.size)
    if len(head) < LOCAL.size:
        raise ValueError("its local header is cut off")
    nlen, xlen = LOCAL.unpack(head)[-2:]
    at = info.header_offset + LOCAL.size + nlen + xlen
    inflate, left, out, crc = zlib.decompressobj(-zlib.MAX_WBITS), info.compress_size, 0, 0
    while left and not inflate.eof:
        fp.seek(at)
        chunk = fp.read(min(CHUNK, left))
        if not chunk:
            raise EOFError("its compressed data is cut off")
        left -= len(chunk)
        at += len(chunk)
        while not inflate.eof:
            block = inflate.decompress(chunk, min(CHUNK, info.file_size - out + 1))
            out += len(block)
            if out > info.file_size:
                raise ValueError(f"its deflate stream goes on past the {info.file_size} bytes its central "
                                 "directory entry states (unzip and 7-Zip write all of it)")
            crc = zlib.crc32(block, crc)
            yield block
            chunk = inflate.unconsumed_tail
            if not chunk and not block:  # zlib can hold output back from bytes it has taken in: asked
                break  # again with no input until it gives none, then it needs the next compressed bytes
    after = left + len(inflate.unused_data)
    if not inflate.eof:
        raise EOFError("its deflate stream is cut off")
    if after:
        raise ValueError(f"its deflate stream ends {after} bytes before the {info.compress_size} compressed bytes "
                         "its central directory entry states (a streaming reader reads those as more members)")
    if crc != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


def _document(kept: dict[str, bytes], name: str, model: type[BaseModel], report: Report, names: list[str],
              required: bool = True) -> Any:
    """The parsed document when it is there, JSON and of the shape; else None and a problem."""
    if name not in kept:
        if required and name not in names:
            report.problems.append(f"{name}: missing or unreadable")
        return None
    try:
        return check(model, parse_json(kept[name], name), name)
    except DocumentError as e:
        report.problems.append(str(e))
    return None


def _media_targets(md_path: str, meta: dict[str, Any], body: str) -> list[str]:
    """Archive paths a post or page points at by a relative link (body and featured_image)."""
    urls = [s.url for s in find_links(body)]
    if isinstance(meta.get("featured_image"), str):
        urls.append(meta["featured_image"])
    found = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or not parts.path or parts.path.startswith("/"):
            continue
        target = posixpath.normpath(posixpath.join(posixpath.dirname(md_path), unquote(parts.path)))
        if is_media(target):
            found.append(target)
    return found


def _disagreement(name: str, section: str, entry: dict[str, Any], meta: dict[str, Any]) -> str | None:
    """The problem when a post's or page's front matter (``meta``) gives other values than its
    index.json ``entry`` (in ``section``, posts or pages) for a column import restores (documents.text_columns, the rule import uses:
    Hugo's stand-ins beside ``slug_original``/``tags_original`` are the values as stored). Only the
    columns the entry gives are compared. Front matter import cannot turn into a row is left to
    import, which refuses it in one line naming the field."""
    try:
        theirs = text_columns(section, meta)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    try:
        declared: dict[str, Any] | None = text_columns(section, entry)
    except (TypeError, ValueError, OverflowError, OSError):
        declared = None
    given = declared_columns(section, entry)
    differ = [col for col in TEXT_COLUMNS[section] if col in given and (declared is None or declared[col] != theirs[col])]
    if not differ:
        return None
    return f"{name}: its front matter and index.json disagree on {', '.join(differ)} (import restores the front matter's)"


def _stand_ins(name: str, meta: Any) -> str | None:
    """The problem when a post's or page's ``draft``, ``date``, ``lastmod``, ``slug`` or ``tags`` (what Hugo
    builds the site from) says otherwise than the fields an export derives them from (catalog/render.py): ``draft`` is
    "status is not published" (always false on a page), ``date`` the ``published_at`` or ``created_at``
    (a page's ``created_at``), ``lastmod`` the ``updated_at``, a ``slug`` beside ``slug_original`` the
    file's name (:func:`_file_slug`), ``tags`` beside ``tags_original`` those of them Hugo can build
    (layout.hugo_tags, the renderer's rule). Import and index.json go by those fields:
    a post with ``status: draft`` and ``draft: false`` verified, imported as a draft and was published on
    the site Hugo built from the archive (a future ``date`` hid a published one)."""
    section = name.split("/", 1)[0]
    if not isinstance(meta, dict) or section not in (POSTS, PAGES):
        return None
    want: dict[str, tuple[Any, ...]] = {
        "draft": (meta.get("status") != "published",) if section == POSTS else (False,),
        "date": (meta.get("published_at"), meta.get("created_at")) if section == POSTS else (meta.get("created_at"),),
        "lastmod": (meta.get("updated_at"),)}
    differ = [key for key, allowed in want.items() if key in meta and
              not any(type(meta[key]) is type(v) and meta[key] == v for v in allowed)]
    if "slug" in meta and "slug_original" in meta and not _file_slug(name, meta["slug"]):
        differ.append("slug")
    original = meta.get("tags_original")  # one that is no list of tags import refuses (documents.PostMeta)
    if (isinstance(original, list) and all(isinstance(t, str) for t in original)
            # none at all is none for Hugo to build; or as 0.2.0 gave them until 6 December (it took `\x1c` for
            # whitespace): a tag Hugo cannot build among them is _unbuildable's, a fact in its archive
            and all(meta.get("tags", []) != hugo_tags(original, before) for before in (False, True))):
        differ.append("tags")
    if not differ:
        return None
    shown = ", ".join(f"{key}: {meta.get(key)!r}"[:80] for key in differ)
    return (f"{name}: its front matter's {shown} says otherwise than its other fields (Hugo builds the site from it; "
            "an export writes draft as 'status is not published', date as published_at or created_at, lastmod as "
            "updated_at, a slug beside slug_original as the file's name, tags beside tags_original as those of them "
            "Hugo can build)")


def _unbuildable(name: str, meta: Any, before: bool = False) -> str | None:
    """The problem when the ``slug`` or ``tags`` Hugo is given is one it cannot build as a page of its own
    (layout.hugo_unsafe, hugo_unsafe_tag): ``slug: ../login`` with index.json saying the same (and no
    slug_original, so no other check here held it) verified, and Hugo built the post at /login.html,
    outside its section — the page an ``aliases`` key would make, which :func:`_unwritten` refuses —, and
    ``../index`` over the site's home page; a tag ``..`` ended the build. An export gives Hugo the file's
    name (layout.hugo_slug) and the tags it can build (layout.hugo_tags), the stored ones beside.
    ``before``: by the older reading (layout.hugo_unsafe_before, hugo_unsafe_tag_before), as 0.2.0 gave slugs and
    tags until 6 December."""
    if not isinstance(meta, dict) or name.split("/", 1)[0] not in (POSTS, PAGES):
        return None
    shown = []
    if isinstance(slug := meta.get("slug"), str) and (hugo_unsafe_before if before else hugo_unsafe)(slug):
        shown.append(f"slug: {slug!r}"[:80])
    unsafe_tag = hugo_unsafe_tag_before if before else hugo_unsafe_tag
    if isinstance(tags := meta.get("tags"), list) and any(isinstance(t, str) and unsafe_tag(t) for t in tags):
        shown.append(f"tags: {tags!r}"[:80])
    if not shown:
        return None
    return (f"{name}: its front matter's {', '.join(shown)} is one Hugo cannot build as a page of its own (it would "
            "be built outside its section, over another page, or end the build: an export gives Hugo the file's "
            "name as slug, and keeps such a slug as slug_original and such tags as tags_original)")


def _featured_stand_in(name: str, meta: Any, own: OwnMedia) -> str | None:
    """The problem when a post's ``featured_image`` (what a Hugo theme shows: Ananke, Hugo's quickstart
    theme, reads it) says otherwise than its ``featured_image_original`` (what import restores): an export
    writes the path in the archive of the image the original names (``own``: index.json's media, as the
    catalog's rows), else the original (catalog/render.py). ``featured_image: https://tracker.example/p.gif``
    beside the person's own image verified, and the site built from the archive loaded that address."""
    if not isinstance(meta, dict) or not name.startswith(f"{POSTS}/") or "featured_image_original" not in meta:
        return None  # an archive made before the original was kept beside it: nothing to hold it to
    original = meta["featured_image_original"]
    hit = own.lookup(original) if original else None
    want = relative_link(name, hit[0].path) if hit and hit[0].path else original
    if type(meta.get("featured_image")) is type(want) and meta.get("featured_image") == want:
        return None
    return (f"{name}: its front matter's featured_image: {meta.get('featured_image')!r}"[:200] + " says otherwise "
            "than its featured_image_original (a theme shows it on the site built from the archive; an export writes "
            "the path in the archive of the image the original names, when it holds it, else the original)")


def _file_slug(name: str, slug: Any) -> bool:
    """Whether ``slug`` is one an export writes beside ``slug_original`` for the member ``name``: made of the
    file's name (layout.hugo_slug), with a ``-2``, ``-3``… when that address was taken. Import restores
    ``slug_original``: an archive with ``slug: login`` beside another one verified, and Hugo built the
    post at /posts/login/."""
    # or as 0.2.0 gave it until 6 December, a `-` at its ends as it is (unbuildable: _unbuildable holds it)
    return isinstance(slug, str) and any(
        re.fullmatch(re.escape(file_slug(name, trimmed)) + r"(?:-(?:[2-9]|[1-9][0-9]+))?", slug) is not None
        for trimmed in (True, False))


def _unwritten(name: str, meta: Any) -> str | None:
    """The problem when a post's or page's front matter holds a key an export never writes
    (layout.FRONT_MATTER_KEYS): a static-site generator acts on it, and the archive was altered."""
    section = name.split("/", 1)[0]
    if not isinstance(meta, dict) or section not in FRONT_MATTER_KEYS or not (keys := unwritten_keys(section, meta)):
        return None
    shown = ", ".join(repr(key[:64]) for key in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return (f"{name}: its front matter holds {shown}, which an export never writes (a static-site generator acts "
            "on it: Hugo publishes a post at its url and makes a page at each of its aliases)")


class _Texts:
    """The posts and pages, checked one at a time as they are read (none is held after its check).
    Every link into media/ the export made points at a member. With an index.json, those are the
    links to a path it gives an image: a link the person wrote themselves (``../media/old.jpg``, from
    a blog moved off a static site) is their text, left as written, and was read as a file missing
    from the archive (verify failed, and import refused, the archive the export had just made).
    A path errors.json lists (``left_out``) is missing by the archive's own account: an image that
    changed in storage after the catalog named it (and rewrote the links to it) is left out by the
    assembler and listed there, while index.json and the posts, rendered before, still name it. Such
    an export, as sound as it was made, failed verify and import.

    And each post's and page's front matter gives the values its index.json entry gives (see
    :func:`_disagreement`): import restores a row from the front matter, and an archive whose front
    matter says otherwise (edited by hand, or a writer's bug) passed verify and was imported with other
    values than index.json, the archive's own account of its rows, says. The front matter is parsed
    once, for both checks."""

    def __init__(self, index: Any, names: list[str], left_out: set[str]) -> None:
        self.index, self.order, self.names, self.left_out = index, names, set(names), left_out
        self.made = None if index is None else {e.get("path") for e in index.get("media", []) if e.get("path")}
        # the person's images as the catalog's rows gave them (a featured image's link is made by them);
        # an entry of other types than an export writes is left out here (import refuses it)
        refs = [] if index is None else [
            MediaRef(str(e.get("id")), e["object_key"], e.get("source_url"), e.get("path"))
            for e in index.get("media", []) if isinstance(e.get("object_key"), str)
            and isinstance(e.get("source_url"), str | None) and isinstance(e.get("path"), str | None)]
        self.own = None if index is None else OwnMedia(refs)
        self.own_before = OwnMedia(refs, every_name=True)  # as 0.1.0 matched them until 3 December
        # a featured_image 0.1.0 derived so: a fact in its archive, else a problem (:meth:`finish`)
        self.featured_before: list[str] = []
        self.entries = {} if index is None else {e.get("path"): (section, e) for section in TEXT_COLUMNS
                                                 for e in index.get(section, [])}
        self.problems: list[str] = []
        # What Hugo would misbuild (a slug or tag it cannot build, a file it reads as other than one more page, two
        # pages at one address): since 0.2.0 an export gives Hugo names it can build, so in an archive of 0.2.0 or
        # later (or of a generator this does not know) each is a problem; 0.1.0 wrote them as stored (:meth:`finish`)
        self.hugo: list[str] = []
        self.addresses: dict[str, dict[str, str]] = {POSTS: {}, PAGES: {}}  # Hugo's address → the file built there
        # the same by the older reading 0.2.0 gave slugs by (layout.hugo_address_before), and the lines of
        # self.hugo for two posts only today's rule builds at one address: facts in an archive of 0.2.0
        self.addresses_before: dict[str, set[str]] = {POSTS: set(), PAGES: set()}
        self.merged_before: set[str] = set()
        # and those for a slug or tag only today's reading of what Hugo cannot build finds (`-.`, `.\x1c.`)
        self.unbuilt_before: set[str] = set()
        self.checked = self.theirs = self.listed = self.texts_left_out = self.unscanned = 0

    def check(self, name: str, raw: bytes) -> None:
        listed_as = self.entries.get(name)
        links = listed_as[1].get("media_links") if listed_as is not None else None
        try:
            meta, body = read_text_page(raw, name)
        except DocumentError as e:  # import refuses it in this line: so does verify, if index.json lists it
            if listed_as is not None:
                self.problems.append(str(e))
            text, listed_as = raw.decode("utf-8", "replace"), None  # its links are checked all the same
            try:
                meta, body = parse_markdown(text)
            except ValueError:
                meta, body = {}, text
        hugo = _unwritten(name, meta) or _stand_ins(name, meta)
        if hugo:
            self.problems.append(hugo)
        elif hugo := _unbuildable(name, meta):
            self.hugo.append(hugo)
            if not _unbuildable(name, meta, before=True):
                self.unbuilt_before.add(hugo)
        if listed_as is not None and (problem := _disagreement(name, *listed_as, meta)):
            self.problems.append(problem)
        if listed_as is not None and self.own is not None and (problem := _featured_stand_in(name, meta, self.own)):
            before = _featured_stand_in(name, meta, self.own_before) is None
            (self.featured_before if before else self.problems).append(problem)
        # its address taken all the same; one line for a slug said otherwise than an export writes it
        if listed_as is not None and (built := self._built_once(name, meta)) and not hugo:
            self.hugo.append(built[0])
            if built[1]:
                self.merged_before.add(built[0])
        # Links are scanned where an export rewrites them (ownmedia.scan_limit), as import restores
        # them: every post was scanned up to 64 MiB, and 2 MiB of `[a]: b` lines took 6 s and 160 MB.
        if len(body) > scan_limit(name, links):
            if problem := links_past_scan(name, body, links):  # import refuses it in this line
                self.problems.append(problem)
            else:
                self.unscanned += 1
            body = ""
        for target in _media_targets(name, meta, body):
            if self.made is not None and target not in self.made:
                self.theirs += 1
                continue
            if target not in self.names and target in self.left_out:
                self.listed += 1
                continue
            self.checked += 1
            if target not in self.names:
                self.problems.append(f"{name}: links to {target}, which is not in the archive")

    def check_head(self, name: str, head: bytes | bytearray, limit: int) -> None:
        """A post or page longer than it is read whole: its front matter, from ``head`` (its first ``limit``
        bytes), checked as :meth:`check` checks a whole one's, with no body (links past the scan limit are
        the export's as stored: see ownmedia.scan_limit). One whose front matter does not end there is a
        problem: it could say anything, and Hugo reads it."""
        if head.startswith(_OPEN) and head.find(_CLOSE, len(_OPEN) - 1) < 0:
            self.problems.append(f"{name}: its front matter does not end in its first {limit // 2**20} MiB, as far "
                                 "as a post is read (an export's is far shorter): it could not be checked")
            return
        self.check(name, bytes(head))  # its front matter (with no body, or the first chunk of a file without one)

    def _built_once(self, name: str, meta: dict[str, Any]) -> tuple[str, bool] | None:
        """The problem when Hugo builds this post or page at the address of one read before: its slug, or
        its file's name without one, as Hugo makes an address of it (layout.hugo_address: lower-cased,
        characters it drops left out, ``-`` and ``/`` at the slug's ends trimmed). Of ``hello`` and ``Hello``
        (``-hello``, ``hello/``) it builds one page, the other post missing from the site without a word; an
        export gives the later one its file's name (layout.hugo_slug).

        And whether the older reading of those addresses (layout.hugo_address_before), by which release
        0.2.0 gave slugs until 6 December, kept the two apart: its archive holds the posts ``a`` and ``-a``
        as it made them (:meth:`finish`)."""
        section, slug = name.split("/", 1)[0], meta.get("slug")
        if section not in self.addresses:
            return None
        stem = name.rsplit("/", 1)[-1].removesuffix(".md")
        own = slug if isinstance(slug, str) and slug else stem
        before = self.addresses_before[section]
        kept_apart = (older := hugo_address_before(own)) not in before
        before.add(older)
        # as the export takes them (layout.hugo_slug): a slug that is no text (null) is given to Hugo as stored
        address = hugo_address(slug if isinstance(slug, str) else "", stem)
        if (first := self.addresses[section].setdefault(address, name)) == name or not isinstance(slug, str):
            return None
        return (f"{name}: Hugo builds it at the address of {first} (slug {own!r}"[:200] + "): one of the two is missing "
                "from the site (an export gives the later one its file's name as slug, slug_original beside)"), kept_apart

    def finish(self, report: Report, generator: object) -> None:
        """The problems found, then every post, page and file index.json says is in the archive and is
        not, and the counts. What Hugo would misbuild (:attr:`hugo`) is a fact in an archive a release before
        0.2.0 made (its manifest's ``generator``, as import reads its links: ownmedia.read_as_before): that
        release wrote slugs and file names as stored, so the archive is as it was made, and import restores
        it (refused, a person whose old archive is all that is left of a blog could not have it back). So is a
        ``featured_image`` 0.1.0 derived from a media row whose URL names no file (:attr:`featured_before`).
        And so are two posts (or pages) at one address in an archive of 0.2.0 that its older reading of Hugo's
        addresses kept apart (:attr:`merged_before`: ``a`` and ``-a``), and a slug or tag its older reading of what
        Hugo cannot build took for one it can (:attr:`unbuilt_before`: ``-.``, built over the section's list page;
        ``.\x1c.``, whose ``\x1c`` it took for whitespace):
        that release made them so."""
        report.problems += self.problems
        if read_as_before(generator):
            report.facts += [f"{line} — as {generator} wrote it (it kept slugs and names as stored); import restores "
                             "it as it is" for line in self.hugo]
            report.facts += [f"{line} — as {generator} wrote it (it matched a media row whose address names no "
                             "file); import restores featured_image_original" for line in self.featured_before]
        else:
            older = (release := release_of(generator)) is not None and release <= ADDRESSES_BEFORE_UNTIL
            report.facts += [f"{line} — as {generator} wrote it (it read Hugo's addresses by an older rule, which kept "
                             "the two apart); import restores it as it is" for line in self.hugo
                             if older and line in self.merged_before]
            report.facts += [f"{line} — as {generator} wrote it (it read what Hugo cannot build by an older rule, which "
                             "took the slug or tag for one it can); import restores it as it is" for line in self.hugo
                             if older and line in self.unbuilt_before]
            report.problems += [line for line in self.hugo
                                if not (older and (line in self.merged_before or line in self.unbuilt_before))]
            report.problems += self.featured_before
        for section in TEXT_COLUMNS:  # import restores each from its file and refuses one that is not there
            for n, entry in enumerate(self.index.get(section, []) if self.index is not None else []):
                # one errors.json lists is missing by the archive's own account: the assembler left it out
                # (its text changed or was gone in storage while the export ran), as it leaves an image out
                if entry.get("path") in self.left_out:
                    self.texts_left_out += 1
                elif entry.get("path") not in self.names:
                    report.problems.append(f"{INDEX_PATH}: {section}[{n}].path {entry.get('path')!r} is not in "
                                           "the archive")
        # Each path in its section's folder and given to one entry: import restores a row from the file at its
        # entry's path, so a second post entry at posts/a.md restored that post twice, a media entry there the
        # post as an image, and verify passed both.
        owner: dict[str, str] = {}
        for section in FOLDERS:
            ids: set[Any] = set()
            for n, entry in enumerate(self.index.get(section, []) if self.index is not None else []):
                # An id twice in a section: import refuses it in this line (a primary key holds each once;
                # a null id, which SQLite holds in any number of rows, is exported as such and left to import)
                if (row_id := entry.get("id")) is not None and _hashable(row_id) and row_id in ids:
                    report.problems.append(f"{INDEX_PATH}: {section}[{n}].id {row_id!r} appears twice in {section}")
                ids.add(row_id if _hashable(row_id) else None)
                if not isinstance(at := entry.get("path"), str):
                    continue
                if not at.startswith(FOLDERS[section]) or (section in TEXT_COLUMNS and not is_text_page(at)):
                    what = "a .md file in" if section in TEXT_COLUMNS else "in"
                    report.problems.append(f"{INDEX_PATH}: {section}[{n}].path {at!r} is not {what} {FOLDERS[section]} "
                                           "(an export puts each there; import would restore it from that file)")
                if (first := owner.setdefault(at, f"{section}[{n}]")) != f"{section}[{n}]":
                    report.problems.append(f"{INDEX_PATH}: {section}[{n}].path {at!r} is {first}'s too (an export "
                                           "gives each row a file of its own; import would restore that file twice)")
        if self.index is not None:  # and every member is one it lists, or one of the archive's own documents
            listed = {e.get("path") for section in TEXT_COLUMNS for e in self.index.get(section, [])} | \
                {e.get("path") for section in ("media", "files") for e in self.index.get(section, []) if e.get("in_archive")}
            for name in dict.fromkeys(self.order):
                if name not in listed and name not in OWN_DOCUMENTS:
                    report.problems.append(f"{name}: in the archive but not listed in index.json (an export lists "
                                           "every post, page, image and file it holds there; import would not "
                                           "restore it)")
        for section in ("media", "files"):
            for entry in self.index.get(section, []) if self.index is not None else []:
                if entry.get("in_archive") and entry.get("path") not in self.names and \
                        entry.get("path") not in self.left_out:
                    report.problems.append(f"{entry.get('path')}: index.json says it is in the archive; it is not")
        report.facts.append(f"{self.checked} links to media checked")
        if self.listed:
            report.facts.append(f"{self.listed} links to images errors.json lists as not included (left as the "
                                "export wrote them)")
        if self.texts_left_out:
            report.facts.append(f"{self.texts_left_out} posts or pages index.json lists are left out of the archive, "
                                "as errors.json says (import cannot restore this archive whole)")
        if self.unscanned:
            report.facts.append(f"{self.unscanned} posts or pages over {REWRITE_LIMIT:,} characters: their links were "
                                "not checked (an export rewrites none there; they keep their URLs)")
        if self.theirs:
            report.facts.append(f"{self.theirs} links the person wrote into media/ were not checked (no image of "
                                "the archive's; left as written)")


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def walk_front(path: Archive) -> str:
    """Walk local headers from the start (as a streaming reader does) to say where the archive breaks.
    The file is mapped, not read, and a deflated member is inflated in chunks and its output dropped:
    a cut download of any size, or deflated zeros with no directory, is walked in bounded memory (and
    in work, deflate stopping near 1,032 to one)."""
    with _opened(path) as f:
        if os.fstat(f.fileno()).st_size == 0:
            return "the file is empty (0 bytes): a download that never started, or a copy cut before its first byte"
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError:  # a file system that cannot map files (ENODEV: FUSE ones, sysfs): read where asked
            return _walk(_Positioned(f.fileno()))  # it said "NATS at … failed: No such device", exit 1
        with mapped as buf:
            return _walk(buf)


class _Positioned:
    """A file's bytes, sliced as a mapping is (``buf[a:b]``, ``len(buf)``), each slice read where it is
    asked for: the walk in bounded memory on a file that cannot be mapped."""

    def __init__(self, fd: int) -> None:
        self.fd, self.size = fd, os.fstat(fd).st_size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, at: slice) -> bytes:
        start, stop, _ = at.indices(self.size)
        return os.pread(self.fd, max(stop - start, 0), start)


def _walk(buf: bytes | mmap.mmap | _Positioned) -> str:
    pos, last = 0, None
    while buf[pos:pos + 4] == b"PK\x03\x04":
        if pos + LOCAL.size > len(buf):
            break
        _, _, flags, method, _, _, _, csize, _, nlen, xlen = LOCAL.unpack(buf[pos:pos + LOCAL.size])
        name = buf[pos + LOCAL.size:pos + LOCAL.size + nlen].decode("utf-8", "replace")
        start = pos + LOCAL.size + nlen + xlen
        end = _data_end(buf, start, method, csize, bool(flags & 8))
        if end is None:
            return f"member {name!r} is cut off at byte {len(buf)} (the archive is truncated)"
        last, pos = name, end
    after = f"after member {last!r}" if last is not None else "before its first member"
    if buf[pos:pos + 4] in (b"PK\x01\x02", b"PK\x06\x06", b"PK\x05\x06"):
        whole = "every member is whole; " if last is not None else ""
        return f"{whole}the central directory {after} is damaged or cut off"
    return f"the archive breaks at byte {pos}, {after}"


def _inflated_end(buf: bytes | mmap.mmap | _Positioned, start: int) -> int | None:
    """Where the deflate stream starting at ``start`` ends, or None when it is cut off or broken;
    fed and drained a chunk at a time (the output is only counted, never kept)."""
    d, pos = zlib.decompressobj(-15), start
    try:
        while not d.eof and pos < len(buf):
            block = buf[pos:pos + CHUNK]
            pos += len(block)
            d.decompress(block, CHUNK)
            while d.unconsumed_tail and not d.eof:
                d.decompress(d.unconsumed_tail, CHUNK)
    except zlib.error:
        return None
    return pos - len(d.unused_data) if d.eof else None


def _data_end(buf: bytes | mmap.mmap | _Positioned, start: int, method: int, csize: int, descriptor: bool) -> int | None:
    if method == 8:
        end = _inflated_end(buf, start)
        if end is None:
            return None
    elif not descriptor:
        end = start + csize
    else:
        return None
    if descriptor:  # signature, CRC and sizes: 16 bytes, 24 with ZIP64; stream-zip writes the signature
        nxt = end + (16 if buf[end + 16:end + 18] == b"PK" else 24)
        end = nxt if nxt <= len(buf) else -1
    return end if 0 <= end <= len(buf) else None


def _sha256_file(path: Archive) -> str:
    sha = hashlib.sha256()
    with _opened(path) as f:
        while block := f.read(1 << 20):
            sha.update(block)
    return sha.hexdigest()
