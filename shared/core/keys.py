"""Every object key of an export, and which keys belong to which export.

Pure string functions, in the core because the event contract uses them: an event that names an
object key must name one of its own export's (:func:`shared.core.events.decode`), so a service
user on the bus cannot point a step at another tenant's snapshot or archive. Layout of the
exports bucket::

    exports/{tenant}/{export}/grove-export-{username}-{YYYY-MM-DD}.zip   the archive (the spec's format)
    exports/{tenant}/{export}/work/snapshot-{run}.jsonl                  the frozen snapshot
    exports/{tenant}/{export}/work/texts-{run}.bin                       the rendered text members
    ({run}: a token of the catalog run that wrote them; logs written before runs had tokens name
    work/snapshot.jsonl and work/texts.bin, which still read as the export's own)
    exports/{tenant}/{export}/work/parts-{upload}/{part:05d}.json        each part's member records
    ({upload}: a token of the archive upload the part belongs to; logs written before uploads had
    tokens name work/parts/{part:05d}.json)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any
from urllib.parse import quote, unquote

EXPORTS_ROOT = "exports/"
NAME_BYTES = 255  # the longest file name Linux filesystems take (the filesystem store's bound)
KEY_BYTES = 1024  # S3's longest key
WORK = "work/"


def is_exports_key(key: object) -> bool:
    """``key`` is in the exports' own folder of the exports bucket (every tenant's archives, snapshots
    and rendered posts), read as a store or proxy that drops a leading ``/``, reads a backslash as
    one or resolves ``.`` and ``..`` segments might (``t1/../exports/t2/…``: with the prefix check
    off, :func:`is_tenant_source` takes any key). Where media or files share that bucket, no content
    row may name such a key: the tenant whose id is ``exports`` has the prefix ``exports/``."""
    if not isinstance(key, str):
        return False
    path = key.replace("\\", "/").lstrip("/")
    if path.startswith(EXPORTS_ROOT):
        return True
    resolved: list[str] = []
    for seg in path.split("/"):
        if seg == "..":
            if resolved:
                resolved.pop()
        elif seg not in ("", "."):
            resolved.append(seg)
    return len(resolved) > 1 and f"{resolved[0]}/" == EXPORTS_ROOT


def tenant_prefix(tenant_id: str) -> str:
    """Every object of every export of one tenant (operator erase)."""
    return f"{EXPORTS_ROOT}{tenant_id}/"


def export_prefix(tenant_id: str, export_id: str) -> str:
    """Every object of one export lives under this prefix of the exports bucket."""
    return f"{tenant_prefix(tenant_id)}{export_id}/"


def work_prefix(tenant_id: str, export_id: str) -> str:
    """The export's working objects (snapshot, texts, part records): removed when the export ends."""
    return f"{export_prefix(tenant_id, export_id)}{WORK}"


RUN = re.compile(r"[0-9a-f]{16}")  # a catalog run's token (secrets.token_hex(8))


def snapshot_key(tenant_id: str, export_id: str, run: str | None = None) -> str:
    """The snapshot a catalog run writes, under the run's own token: a run paused past the takeover
    of its export (a frozen replica) wrote the one key every run wrote, over the snapshot the run
    that took over had logged, and the export failed ("the frozen snapshot does not match its
    checksum"). ``run`` None: the key of logs written before runs had tokens."""
    return f"{work_prefix(tenant_id, export_id)}snapshot{'' if run is None else '-' + run}.jsonl"


def texts_key(tenant_id: str, export_id: str, run: str | None = None) -> str:
    """The rendered text members a catalog run writes beside its snapshot (see :func:`snapshot_key`)."""
    return f"{work_prefix(tenant_id, export_id)}texts{'' if run is None else '-' + run}.bin"


def is_snapshot_key_of(tenant_id: str, export_id: str, key: str) -> bool:
    """``key`` is a snapshot key of this export (any run's, or the key before runs had tokens)."""
    head, tail = f"{work_prefix(tenant_id, export_id)}snapshot", ".jsonl"
    if not (key.startswith(head) and key.endswith(tail)) or len(key) < len(head) + len(tail):
        return False
    run = key[len(head):len(key) - len(tail)]
    return run == "" or (run[:1] == "-" and RUN.fullmatch(run[1:]) is not None)


def texts_key_beside(snapshot: str) -> str:
    """The texts key written with the snapshot key ``snapshot`` (its run's, or the key before runs)."""
    head, _, tail = snapshot.rpartition("/snapshot")
    return f"{head}/texts{tail.removesuffix('.jsonl')}.bin"


def upload_token(upload_id: str) -> str:
    """The token of an archive upload in its part records' keys: the same for every run that goes on
    with that upload (a resume reads what the runs before it stored), another for every other upload."""
    return hashlib.sha256(upload_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def records_key(tenant_id: str, export_id: str, part_number: int, upload_id: str | None = None) -> str:
    """The member records of part ``part_number`` of the upload ``upload_id``, under the upload's own
    token: with one key per part number for every upload, a retry that went on from catalog wrote
    its new upload's records over the keys a paused janitor had listed as the failed attempt's, the
    thawed janitor deleted them, and the retried export failed when its assembler resumed ("…
    work/parts/00001.json" not found). ``upload_id`` None: the key of logs written before uploads
    had tokens."""
    run = "" if upload_id is None else "-" + upload_token(upload_id)
    return f"{work_prefix(tenant_id, export_id)}parts{run}/{part_number:05d}.json"


def records_prefix(tenant_id: str, export_id: str, upload_id: str) -> str:
    """Every part's member records of the upload ``upload_id`` (the folder of its :func:`records_key`)."""
    return records_key(tenant_id, export_id, 0, upload_id).rsplit("/", 1)[0] + "/"


def is_records_key_of(tenant_id: str, export_id: str, part_number: int, key: str) -> bool:
    """``key`` is the records key of this export's part ``part_number`` (any upload's, or the key
    before uploads had tokens): nothing of another export's, another part's, or outside ``work/``."""
    head, tail = f"{work_prefix(tenant_id, export_id)}parts", f"/{part_number:05d}.json"
    if not (key.startswith(head) and key.endswith(tail)) or len(key) < len(head) + len(tail):
        return False
    run = key[len(head):len(key) - len(tail)]
    return run == "" or (run[:1] == "-" and RUN.fullmatch(run[1:]) is not None)


def archive_key(tenant_id: str, export_id: str, safe_username: str, day: str) -> str:
    """The spec's key format: exports/{tenant_id}/{export_id}/grove-export-{username}-{YYYY-MM-DD}.zip"""
    return f"{export_prefix(tenant_id, export_id)}grove-export-{safe_username}-{day}.zip"


# An archive's key where a text names it: ``exports/<tenant>/<export>/grove-export-<username>-<date>.zip``,
# whatever comes before it: a store's answer quoted in an error has it as ``<Key>exports/…</Key>``, a
# line may say ``key=exports/…`` (a rule on the character before it let both through, the username kept).
_ARCHIVE_IN_TEXT = re.compile(r"(exports/[^/\s?'\"]+/[^/\s?'\"]+/)grove-export-[^/\s?'\"]*?"
                              r"-\d{4}-\d{2}-\d{2}\.zip")
ARCHIVE_SHOWN = "ARCHIVE"


def without_usernames(text: str) -> str:
    """``text`` for a log with every archive key's name as ``ARCHIVE`` (``exports/t1/exp_1/ARCHIVE``): the name
    holds the requester's username, and a log outlives ``erase-tenant``, which removes every other copy of
    it. The tenant and export ids stay, so a line still says which export; any other key is as it is."""
    return _ARCHIVE_IN_TEXT.sub(lambda m: m.group(1) + ARCHIVE_SHOWN, text)


def path_without_usernames(raw_path: str) -> str:
    """A request's path as sent (percent-encoded), for a log, with an archive's name as ``ARCHIVE`` however
    the client encoded it: the gateway serves ``…/grove%2Dexport-<username>-<date>.zip`` (the route
    decodes it) and a path's ``%2F`` are slashes to a reader, yet :func:`without_usernames` of the raw
    text met neither. Such a path is logged re-encoded from its decoded form (no control character
    comes back); any other path as sent."""
    decoded = unquote(raw_path)
    shown = without_usernames(decoded)
    if shown == decoded:
        return without_usernames(raw_path)
    return quote(shown, safe="/")


def is_archive_key_of(tenant_id: str, export_id: str, key: str | None) -> bool:
    """``key`` can only be this export's archive: one name directly under its prefix, nothing that
    climbs out or reaches into ``work/`` (the snapshot). The gateway signs, and the janitor deletes,
    only such keys, whatever an event in the log claims. And one every store can hold: a name of at
    most :data:`NAME_BYTES` and a key of at most :data:`KEY_BYTES` in UTF-8 (the archive's own name
    is under 100 bytes) — an ExportCompleted naming a longer one made the owner's every status
    request a 500 (the filesystem store refuses to sign a link to a file it could not hold)."""
    prefix = export_prefix(tenant_id, export_id)
    if not key or not key.startswith(prefix):
        return False
    name = key[len(prefix):]
    if not (bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")
            and not name.startswith(".") and name.isprintable()):
        return False
    try:
        return len(name.encode()) <= NAME_BYTES and len(key.encode()) <= KEY_BYTES
    except UnicodeEncodeError:  # a lone surrogate: no store's key
        return False


def export_of_key(key: str) -> tuple[str, str] | None:
    """(tenant, export) of any object under an export's prefix (e.g. an upload the janitor finds)."""
    parts = key.split("/")
    if len(parts) < 4 or f"{parts[0]}/" != EXPORTS_ROOT:
        return None
    return parts[1], parts[2]


def archive_owner(key: str) -> tuple[str, str] | None:
    """(tenant, export) when ``key`` is an export's archive (:func:`is_archive_key_of`), else None."""
    owner = export_of_key(key)
    if owner is None or len(key.split("/")) != 4 or not is_archive_key_of(*owner, key):
        return None
    return owner


def is_work_key(key: str) -> bool:
    """A working object (snapshot, texts, part records), not an archive."""
    owner = export_of_key(key)
    return owner is not None and key.startswith(work_prefix(*owner))


def heartbeat_key(step: str, tenant_id: str, export_id: str) -> str:
    """A running step's heartbeat in the heartbeats KV bucket. The step comes first so that a
    service user may write only its own steps' keys (``$KV.<bucket>.<step>.>``): the notifier's
    password cannot keep an assembling export alive for the janitor."""
    return f"{step}.{tenant_id}.{export_id}"


def parse_beat(data: bytes, step: str) -> dict[str, Any] | None:
    """What is under a heartbeat key, if a worker of ``step`` put it: ``{step, worker, at, ...}``
    (the workers' own fields: ``since``, ``deaths``). Anything else — not JSON, another step's, a
    PubAck or an event the server stored there as its answer to someone's request — is no beat."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # arrays nested a thousand deep: RecursionError, a traceback
        return None
    if not isinstance(value, dict) or value.get("step") != step or not isinstance(value.get("worker"), str):
        return None
    at = value.get("at")
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return None
    try:
        if not math.isfinite(at):
            return None
    except OverflowError:  # a whole number past every float (1 and 400 zeros): no time, and a traceback
        return None
    return value


def is_tenant_source(prefix_template: str, tenant_id: str, key: object) -> bool:
    """May a content row of ``tenant_id`` name the source object ``key``? Only under the tenant's
    prefix (``prefix_template`` with ``{tenant}``, ending in ``/``; empty: any key), and with no
    ``.`` or ``..`` segment after it (a backslash separating too, as import reads keys):
    ``t1/../t2/a.jpg`` starts with ``t1/``, but a store or proxy that resolves dot segments answers
    with tenant t2's object. A key that is not text is the store's and the renderer's to refuse."""
    if not prefix_template or not isinstance(key, str):
        return True
    prefix = prefix_template.replace("{tenant}", tenant_id)
    return key.startswith(prefix) and not any(
        seg in (".", "..") for seg in key[len(prefix):].replace("\\", "/").split("/"))
