"""``grove-export import ARCHIVE --tenant ID``: restore an archive into an empty tenant.

The operator-side first step of import, and the proof of fidelity: export A → import into B →
export B gives the same archive but for ids and times of the export. The archive is verified
first (any problem refuses it); rows come from index.json and the Markdown files (a post's or
page's fields from its front matter, :func:`documents.text_columns`, the rule verify holds to its
index.json entry), object bytes from the members. Row ids and object keys that carry the source tenant's id carry the target's
instead (others get a derived id: ids are unique across tenants); links the export made
file-relative get the target tenant's media URLs (``GROVE_MEDIA_URL_TEMPLATE``), query string and
fragment of the original kept. A value the catalog could not read (``unreadable``: shown as null
or [] in its field) goes back into its column as it was stored. Media whose file is not in the
archive are not restored (a row without its file would be a broken image): they are reported.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, overload
from urllib.parse import quote, unquote

from services.archivetools.documents import (
    JSON_LIMIT,
    TEXT_LIMIT,
    DocumentError,
    ImportIndex,
    ImportManifest,
    PageMeta,
    PostMeta,
    check,
    number_column,
    parse_json,
    read_limited,
    read_text_page,
    text_columns,
    time_column,
)
from shared.archive.layout import ERRORS_PATH, INDEX_PATH, MANIFEST_PATH
from shared.archive.ownmedia import MediaRef, OwnMedia, import_body, links_past_scan, read_as_before
from shared.content.port import ClaimHeld, ContentRejected, ContentSource, Row
from shared.content.restore import (
    TenantNotEmpty,
    check_restore,
    content_counts,
    restore_tenant,
    rows_name_files,
)
from shared.core.printable import archived_username_problem
from shared.objectstore import CompletedPart, ObjectNotFound, ObjectStore

# A member larger than this goes to the store as a multipart upload, one part read at a time (S3
# needs parts of at least 5 MiB): importing a 4 GB video holds one part in memory, not the video.
IMPORT_PART = 8 << 20


class ImportRefused(Exception):
    """The archive or the target tenant is not fit for an import; nothing was written."""


@dataclass
class Restore:
    tables: dict[str, Sequence[Row]] = field(default_factory=dict)  # posts and pages: TextRows
    objects: list[tuple[str, str, str, str]] = field(default_factory=list)  # (bucket, key, member, type)
    notes: list[str] = field(default_factory=list)
    kept: int = 0  # keys the store held with the archive's bytes already: not put (a killed import's)

    def summary(self) -> str:
        counts = ", ".join(f"{len(rows)} {table}" for table, rows in self.tables.items())
        kept = f" ({self.kept} already there with the archive's bytes, kept as they were)" if self.kept else ""
        return f"restored {counts}; {len(self.objects)} files put in the store{kept}"


# A media type as a Content-Type header can carry it: type/subtype (RFC 6838 names), then parameters
# in printable ASCII, 255 characters at most.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}(;[ -~]*)?")


def object_type(mime_type: Any) -> str:
    """The Content-Type a restored file is put with: its row's MIME type when that is one, else
    ``application/octet-stream``. The row's column is the tenant's own text and is restored as it is;
    as a header, a line break or control character in it made S3 refuse the put ("Forbidden control
    character detected in headers"), which failed the import."""
    if isinstance(mime_type, str) and len(mime_type) <= 255 and _MEDIA_TYPE.fullmatch(mime_type):
        return mime_type
    return "application/octet-stream"


def media_url(template: str, key: str) -> str:
    """The platform's URL of an object: the template with the percent-encoded key."""
    return template.replace("{key}", quote(key, safe="/"))


@dataclass(frozen=True)
class Rekey:
    source: str
    target: str

    def id(self, old: str) -> str:
        """The target's id for the archive's ``old`` one: the source tenant id in it replaced once
        (the archive chooses that id: a one-letter one is in every id, and replacing each occurrence
        multiplied a 64 MiB index by the target id's length), else ``imp_{target}_{old}``: unique to
        the target and in the order of the old ids (ties of the content source's order are broken by
        id, and the archive's names follow that order; a digest here shuffled them, so the restored
        tenant's export named another of two same-slug posts `same.md`)."""
        if self.source in old:
            return old.replace(self.source, self.target, 1)
        return f"imp_{self.target}_{old}"

    def key(self, old: str) -> str:
        """The target's object key for the archive's ``old`` one, always under ``target/``: a key
        with an empty, ``.`` or ``..`` segment is refused, since a store or a proxy that normalises
        the path would put its bytes elsewhere (``..``: under another tenant's keys). A backslash
        separates segments too here (stores and proxies on Windows, and some that mimic them, read it
        so), while one inside a name is left as it is."""
        if "\x00" in old or any("\ud800" <= c <= "\udfff" for c in old):  # a lone surrogate: JSON spells one
            raise ImportRefused(f"the archive names an unsafe object key {old!r}")
        prefix = f"{self.source}/"
        rest = old[len(prefix):] if old.startswith(prefix) else f"imported/{old}"
        if any(seg in ("", ".", "..") for seg in rest.replace("\\", "/").split("/")):
            raise ImportRefused(f"the archive names an unsafe object key {old!r}")
        return self.target + "/" + rest


def _document(zf: zipfile.ZipFile, name: str) -> Any:
    try:
        return parse_json(read_limited(zf, name, JSON_LIMIT), name)
    except DocumentError as e:
        raise ImportRefused(str(e)) from None


def plan_restore(zf: zipfile.ZipFile, target: str, url_template: str, images: str, amber: str) -> Restore:
    """Pure but for reading members: the rows and objects that restore this archive into ``target``.
    Every document and row is checked here (shape, types, required fields, ids unique per table):
    a plan that comes back is one the content database takes whole."""
    manifest = _document(zf, MANIFEST_PATH)
    index = _document(zf, INDEX_PATH) if INDEX_PATH in zf.namelist() else None
    if not isinstance(index, dict) or index.get("format") != "grove-export-index":
        raise ImportRefused("the archive has no index.json (made before import existed?)")
    try:
        check(ImportManifest, manifest, MANIFEST_PATH)
        check(ImportIndex, index, INDEX_PATH)
    except DocumentError as e:
        raise ImportRefused(str(e)) from None
    if manifest.get("username") is not None and (problem := archived_username_problem(manifest["username"])):
        # the tenant row's username and display name: held to what a request is (the gateway's rule for a
        # new token has grown since archives were made; one made before must still import)
        raise ImportRefused(f"{MANIFEST_PATH}: username {problem}")
    names = set(zf.namelist())
    # What errors.json lists as left out and the archive does not hold: an image or file that changed
    # in storage after the catalog named it (index.json, rendered before, still says in_archive). It is
    # not restored, as one index.json says is not in the archive; its links get their URLs back.
    errors = _document(zf, ERRORS_PATH) if ERRORS_PATH in names else []
    absent = {e["path"] for e in errors if isinstance(e, dict) and isinstance(e.get("path"), str)} - names \
        if isinstance(errors, list) else set()
    for section in ("posts", "pages", "media", "files"):
        ids: set[str] = set()
        for n, entry in enumerate(index.get(section, [])):
            if entry["id"] in ids:
                raise ImportRefused(f"{INDEX_PATH}: {section}[{n}].id {entry['id']!r} appears twice in {section}")
            ids.add(entry["id"])
            if (section in ("posts", "pages") or (entry.get("in_archive") and entry.get("path") not in absent)) \
                    and entry.get("path") not in names:
                why = " (the export left it out: errors.json says why; a post or page is not restored in part)" \
                    if entry.get("path") in absent else ""
                raise ImportRefused(f"{INDEX_PATH}: {section}[{n}].path {entry.get('path')!r} is not in the archive{why}")
    rk, out = Rekey(manifest["tenant_id"], target), Restore()
    new_keys: dict[str, str] = {}  # archive path → target object key
    media: list[Row] = []
    out.tables["media"] = media
    for m in index.get("media", []):
        if not m.get("in_archive") or m["path"] in absent:
            out.notes.append(f"media {m['id']} not restored: its file is not in the archive")
            continue
        key = new_keys[m["path"]] = rk.key(m["object_key"])
        out.objects.append((images, key, m["path"], object_type(m.get("mime_type"))))
        media.append({
            "id": rk.id(m["id"]), "tenant_id": target, "filename": m["filename"], "original_name": m["original_name"],
            "r2_key": key, "url": media_url(url_template, key) if m.get("source_url") is not None else None,
            "size": number_column(m, "size"), "mime_type": m["mime_type"], "alt_text": m["alt_text"],
            "uploaded_at": time_column(m, "uploaded_at")})
    own = OwnMedia(MediaRef(m["id"], m["object_key"], m.get("source_url"), m.get("path")) for m in index.get("media", []))

    def url_for(path: str, original: str) -> str | None:
        if path in absent:
            return original  # the export made it relative to a file it then left out: as the person wrote it
        hit = own.lookup(original)
        return media_url(url_template, new_keys[path]) + hit[1] if hit and path in new_keys else None

    def featured(value: str | None) -> str | None:
        """The new tenant's URL (or key, as the person wrote a key) for their image, with the space
        around it as they typed it (``lookup`` finds the image through it; it is theirs)."""
        hit = own.lookup(value) if value else None
        if not value or not hit or hit[0].path not in new_keys:
            return value
        ref, rest = hit
        link = value.strip()
        lead, trail = value[:len(value) - len(value.lstrip())], value[len(value.rstrip()):]
        base, new = link[: len(link) - len(rest)], new_keys[str(ref.path)]
        return lead + (new + rest if ref.key in (base, unquote(base)) else media_url(url_template, new) + rest) + trail

    for section, table in (("posts", "posts"), ("pages", "pages")):
        rows = TextRows(section, index.get(section, []), zf, rk, target, url_for, featured,
                        read_as_before(manifest.get("generator")))
        for _ in rows:  # each checked now, refused before anything is written; none is kept
            pass
        out.tables[table] = rows
    if "files" in index:
        files: list[Row] = []
        out.tables["amber_files"] = files
        for f in index["files"]:
            if not f.get("in_archive") or f["path"] in absent:
                out.notes.append(f"file {f['id']} not restored: it is not in the archive")
                continue
            key = rk.key(f["object_key"])
            out.objects.append((amber, key, f["path"], object_type(f.get("mime_type"))))
            files.append({
                "id": rk.id(f["id"]), "tenant_id": target, "filename": f["filename"],
                "original_name": f["original_name"], "r2_key": key, "size": number_column(f, "size"), "mime_type": f["mime_type"],
                "category": f["category"], "product": f["product"], "uploaded_at": time_column(f, "uploaded_at")})
    out.tables = {t: rows for t, rows in out.tables.items() if rows or t in ("posts", "pages", "media")}
    _one_file_per_key(zf, manifest, out.objects)
    for table, table_rows in out.tables.items():
        seen: set[str] = set()
        for row_id in table_rows.ids() if isinstance(table_rows, TextRows) else (row["id"] for row in table_rows):
            if row_id in seen:
                raise ImportRefused(f"{INDEX_PATH}: two {table} rows would have the id {row_id!r}")
            seen.add(row_id)
    return out


class TextRows(Sequence[Row]):
    """The posts' (or pages') rows, each built from its file when it is reached and not kept: a post's
    row holds its whole text, and a list of them held every post of the archive at once (a 1 MB archive
    of 64 posts of 16 MiB of one letter took import 1.17 GB). plan_restore reads them once to check
    every one before anything is written; the content database reads them again as it writes them."""

    def __init__(self, section: str, entries: list[dict[str, Any]], zf: zipfile.ZipFile, rk: Rekey, target: str,
                 url_for: Any, featured: Any, as_before: bool = False) -> None:
        self.section, self.entries, self.zf, self.rk, self.target = section, entries, zf, rk, target
        self.url_for, self.featured = url_for, featured
        self.as_before = as_before  # links found as the archive's release found them (ownmedia.read_as_before)
        # Called once the rows are read again as they are written (and when one cannot be read): raises
        # when the archive was written to meanwhile, as import checks once it has put the files
        self.unchanged: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self.entries)

    @overload
    def __getitem__(self, i: int) -> Row: ...
    @overload
    def __getitem__(self, i: slice) -> list[Row]: ...
    def __getitem__(self, i: int | slice) -> Row | list[Row]:
        if isinstance(i, slice):
            return [self[n] for n in range(len(self))[i]]
        return self._row(self.entries[i])

    def __iter__(self) -> Iterator[Row]:
        for entry in self.entries:
            yield self._row(entry)
        self.unchanged()

    def _row(self, entry: dict[str, Any]) -> Row:
        try:
            return _text_row(self.section, entry, self.zf, self.rk, self.target, self.url_for, self.featured,
                             self.as_before)
        except Exception:  # checked before, unreadable now (a CRC-32, a zlib stream, a cut file): changed?
            self.unchanged()  # raises "written to while it was imported" when so
            raise

    def ids(self) -> list[str]:
        return [self.rk.id(entry["id"]) for entry in self.entries]


def member_digests(manifest: dict[str, Any]) -> dict[str, str]:
    """Each member's SHA-256 (hex) as manifest.json gives it (verify has held every member to it)."""
    return {m["path"]: m["sha256"] for m in manifest.get("members", [])
            if isinstance(m, dict) and isinstance(m.get("path"), str) and isinstance(m.get("sha256"), str)}


def _one_file_per_key(zf: zipfile.ZipFile, manifest: dict[str, Any],
                      objects: list[tuple[str, str, str, str]]) -> None:
    """ImportRefused when two files of other bytes would be put at one object key (two entries with one
    object key, or ``t1/imported/x`` beside ``x``, which both become ``t2/imported/x``): the one put last
    replaced the other, both rows showed it, and import said it restored both. An export gives two rows
    one key only when they share the object: the same bytes, which may be put twice."""
    digests = member_digests(manifest)
    first: dict[tuple[str, str], str] = {}
    for bucket, key, member, _ in objects:
        other = first.setdefault((bucket, key), member)
        if other != member and (digests.get(other), zf.getinfo(other).file_size, zf.getinfo(other).CRC) != \
                (digests.get(member), zf.getinfo(member).file_size, zf.getinfo(member).CRC):
            raise ImportRefused(f"{INDEX_PATH}: {other} and {member} would both be put at the object key {key!r}, "
                                "with other bytes (the one put last would replace the other)")


def _text_row(section: str, entry: dict[str, Any], zf: zipfile.ZipFile, rk: Rekey, target: str,
              url_for: Any, featured: Any, as_before: bool) -> Row:
    path = entry["path"]
    try:  # not UTF-8, or no front matter it can read: verify has refused it already, in the same line
        meta, body = read_text_page(read_limited(zf, path, TEXT_LIMIT), path)
        check(PostMeta if section == "posts" else PageMeta, meta, f"{path}: front matter")
    except DocumentError as e:
        raise ImportRefused(str(e)) from None
    links = entry.get("media_links", [])
    if problem := links_past_scan(path, body, links):  # verify refuses it in this line
        raise ImportRefused(problem)
    body = import_body(body, path, links, url_for, before_markdown_lines=as_before)
    columns = text_columns(section, meta)  # verify held them to index.json's
    row: Row = {"id": rk.id(entry["id"]), "tenant_id": target, **columns, "markdown_content": body}
    if section == "posts":
        row["featured_image"] = featured(columns["featured_image"])
    return row


async def import_archive(path: Path, tenant: str, db: ContentSource, store: ObjectStore, *, url_template: str,
                         images_bucket: str, amber_bucket: str) -> Restore:
    """Verify, check the tenant is empty, put the files, insert the rows; undo the files on failure."""
    # One open file for the check and the import: by name, the file verified and the one then read
    # could differ (another put in its place between the two opens would be imported unchecked).
    with open(path, "rb") as archive:
        return await _import_checked(archive, tenant, db, store, url_template=url_template,
                                     images_bucket=images_bucket, amber_bucket=amber_bucket)


async def _import_checked(archive: IO[bytes], tenant: str, db: ContentSource, store: ObjectStore, *,
                          url_template: str, images_bucket: str, amber_bucket: str) -> Restore:
    from services.archivetools.verify import verify_archive
    from shared.core.printable import printable

    before = _identity(archive)
    report = verify_archive(archive)
    if not report.ok:
        raise ImportRefused(f"the archive does not verify: {printable(report.problems[0])}")
    archive.seek(0)
    try:
        async with db.import_claim(tenant):  # one import into a tenant at a time: check, put, undo
            existing = {t: n for t, n in (await content_counts(db, tenant)).items() if n}
            if existing:
                held = ", ".join(f"{n} {t}" for t, n in existing.items())
                raise ImportRefused(f"tenant {tenant!r} is not empty ({held}): import restores into a tenant "
                                    "without content only, never adding to or replacing one's: pass --tenant with "
                                    "an id that holds none; nothing was written")
            with zipfile.ZipFile(archive) as zf:
                plan = plan_restore(zf, tenant, url_template, images_bucket, amber_bucket)
                _store_holds(store, plan.objects)
                manifest = _document(zf, MANIFEST_PATH)
                await _keep_what_is_there(store, tenant, plan, zf, member_digests(manifest))
                username = manifest.get("username") or tenant
                try:  # what the database would refuse, refused before a file is put
                    await check_restore(db, tenant, username, plan.tables)
                except ContentRejected as e:
                    raise ImportRefused(f"the content database would refuse these rows: {e}; nothing was "
                                        "written") from None
                put: list[tuple[str, str]] = []
                writing = False
                try:
                    await abort_left_uploads(store, tenant, plan.objects)
                    for bucket, key, member, ctype in plan.objects:
                        put.append((bucket, key))  # before the put: a put cut short may have left it too
                        await put_member(store, bucket, key, zf, member, ctype)
                    def unchanged() -> None:  # were the bytes read the ones checked?
                        if _changed(before, _identity(archive)):
                            raise ImportRefused("the archive was written to while it was imported (another program "
                                                "changing it in place): nothing was restored; import it again once "
                                                "it is whole")

                    unchanged()  # the files are read; the posts and pages are read again as their rows are written
                    for rows in plan.tables.values():
                        if isinstance(rows, TextRows):
                            rows.unchanged = unchanged
                    writing = True
                    await restore_tenant(db, tenant, username, plan.tables)
                except BaseException as e:
                    if writing and not isinstance(e, TenantNotEmpty) and put and \
                            await rows_name_files(db, tenant, {key for _, key in put}):
                        raise  # committed, then cut short: the tenant is whole and its files stay
                    for bucket, key in put:
                        await store.delete(bucket, key)  # deleting a key that is not there is no error
                    if isinstance(e, TenantNotEmpty):
                        raise ImportRefused(str(e)) from None
                    raise
    except ClaimHeld:
        raise ImportRefused(f"another import into tenant {tenant!r} is under way; try again once it has "
                            "finished") from None
    return plan


async def abort_left_uploads(store: ObjectStore, tenant: str, objects: list[tuple[str, str, str, str]]) -> int:
    """Abort the multipart uploads still open at the keys this import puts: an import killed outright
    (SIGKILL, the out-of-memory killer) while it put a large file could not abort its upload, which
    kept the parts sent so far — the person's file, up to its last part — in the store, listed by no
    object listing, through every later import. Run with the tenant's import claim held and the
    tenant empty: an upload at one of these keys is a killed import's, and the put that follows
    replaces the key anyway. One listing per bucket, under the tenant's prefix. The temp files of
    single puts cut short at these keys go too (the filesystem's ``.<name>.<hex>.tmp``: part of the
    file, no listing shows it, and the put that follows did not replace it). Returns how many uploads."""
    aborted = 0
    for bucket, keys in _by_bucket(objects).items():
        await store.remove_cut_puts(bucket, keys)
        wanted = set(keys)
        for upload in await store.list_uploads(bucket, f"{tenant}/"):
            if upload.key in wanted:
                await store.abort_multipart(bucket, upload.key, upload.upload_id)
                aborted += 1
    return aborted


def _by_bucket(objects: list[tuple[str, str, str, str]]) -> dict[str, list[str]]:
    """The keys a plan puts (``(bucket, key, …)``), by bucket."""
    out: dict[str, list[str]] = {}
    for bucket, key, _, _ in objects:
        out.setdefault(bucket, []).append(key)
    return out


def _store_holds(store: ObjectStore, objects: list[tuple[str, str, str, str]]) -> None:
    """ImportRefused when the store cannot hold the keys the plan puts, before any is put: a key too
    long for it (on the filesystem store a segment over 255 bytes; the target's id in front of the
    key can take one over), or, on the filesystem store, ``x`` beside ``x/y``. They were put one by
    one until the store failed, and the failure read as the machine's ("check GROVE_STORE_ROOT",
    "Not a directory: …"), exit 1, for what the archive holds."""
    for keys in _by_bucket(objects).values():
        if problem := store.unfit_keys(keys):
            raise ImportRefused(f"the store cannot hold the files this archive names: {problem}; nothing was written")


async def _keep_what_is_there(store: ObjectStore, tenant: str, plan: Restore, zf: zipfile.ZipFile,
                              digests: dict[str, str]) -> None:
    """Import never replaces or deletes a file it did not put. The tenant's rows are empty, but its
    folder in the store need not be (the operator's files, another program's, a killed import's):
    the undo deleted every key the plan puts, a file there before the import with it. Before anything
    is put: a key the store holds with the member's bytes (a killed import's, the same file) is left
    as it is and taken off the plan — not put, never deleted; one holding other bytes refuses the
    import (ImportRefused, nothing written). One listing per bucket under the tenant's prefix; only a
    key listed at the member's size is read, to compare its SHA-256 with manifest.json's."""
    held: dict[tuple[str, str], int] = {}
    for bucket, keys in _by_bucket(plan.objects).items():
        listed = {o.key: o.size for o in await store.list_keys(bucket, f"{tenant}/")}  # Rekey.key: under it
        if (there := _in_the_way(keys, listed)) and (problem := store.unfit_keys([*keys, *there])):
            raise ImportRefused(f"the store cannot hold the files this archive names beside those it holds already: "
                                f"{problem}; import never replaces a file it did not put: move it away or import "
                                "into another tenant; nothing was written")
        held |= {(bucket, key): size for key, size in listed.items()}
    kept: set[tuple[str, str, str, str]] = set()  # a list made the filter below quadratic in the files kept
    for obj in plan.objects:
        bucket, key, member, _ = obj
        if (bucket, key) not in held:
            continue
        if held[(bucket, key)] == zf.getinfo(member).file_size:
            try:
                same = await _sha256(store, bucket, key) == digests.get(member)
            except ObjectNotFound:  # deleted since it was listed: put, as any key not there
                continue
        if held[(bucket, key)] != zf.getinfo(member).file_size or not same:
            others = len({(b, k) for b, k, _, _ in plan.objects if (b, k) in held}) - 1
            more = f" (and {others} more key{'s' if others != 1 else ''} it restores)" if others > 0 else ""
            raise ImportRefused(f"the store already holds a file at {key!r} in bucket {bucket!r}{more}, with other "
                                "bytes than the archive's: import never replaces a file it did not put; move it "
                                "away or import into another tenant; nothing was written")
        kept.add(obj)
    plan.objects = [obj for obj in plan.objects if obj not in kept]
    plan.kept = len({(b, k) for b, k, _, _ in kept})


def _in_the_way(keys: list[str], held: Iterable[str]) -> list[str]:
    """The keys of ``held`` (the store's, under the tenant's prefix) that are a folder of a key the plan
    puts, or under one: ``t/media`` beside the archive's ``t/media/a.jpg``, ``t/a.jpg/old.jpg`` beside
    its ``t/a.jpg``. S3 holds both; the filesystem store cannot (:meth:`unfit_keys` says so), and its
    put failed part-way as the machine's error ("Not a directory: …/.a.jpg.<hex>.tmp", exit 1)."""
    puts, folders = set(keys), {folder for key in keys for folder in _folders(key)}
    return [h for h in held if h in folders or any(folder in puts for folder in _folders(h))]


def _folders(key: str) -> Iterator[str]:
    """The folders a key is in, as keys: ``a``, ``a/b`` of ``a/b/c``."""
    at = key.find("/")
    while at != -1:
        yield key[:at]
        at = key.find("/", at + 1)


async def _sha256(store: ObjectStore, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    async for chunk in store.get(bucket, key):
        digest.update(chunk)
    return digest.hexdigest()


def _identity(f: IO[bytes]) -> tuple[int, int, int, int | None]:
    """What changes when a file is written to in place (one open file keeps out a file put in its
    place, not a writer of this one): size, modification time, and the change time while its
    links are as they were (a file put at its name unlinks this one, which changes only that: the
    bytes this open file reads are the same)."""
    st = os.fstat(f.fileno())
    return st.st_size, st.st_mtime_ns, st.st_nlink, st.st_ctime_ns if st.st_nlink else None


def _changed(before: tuple[int, int, int, int | None], now: tuple[int, int, int, int | None]) -> bool:
    size, mtime, links, ctime = before
    return (size, mtime) != now[:2] or (links == now[2] and ctime != now[3])


async def put_member(store: ObjectStore, bucket: str, key: str, zf: zipfile.ZipFile, member: str,
                     content_type: str, part_size: int = IMPORT_PART) -> None:
    """Put one archive member into the store: at once when it fits one part, else as a multipart
    upload read part by part from the archive (aborted if anything fails on the way)."""
    if zf.getinfo(member).file_size <= part_size:
        await store.put(bucket, key, zf.read(member), content_type)
        return
    upload_id = await store.create_multipart(bucket, key, content_type, part_size)
    try:
        parts: list[CompletedPart] = []
        with zf.open(member) as f:
            while chunk := f.read(part_size):
                number = len(parts) + 1
                parts.append(CompletedPart(number, await store.upload_part(bucket, key, upload_id, number, chunk)))
                del chunk  # one part in memory at a time
        await store.complete_multipart(bucket, key, upload_id, parts)
    except BaseException:
        await store.abort_multipart(bucket, key, upload_id)
        raise
