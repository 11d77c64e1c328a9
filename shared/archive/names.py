"""Safe, unique, stable member names.

Titles, slugs, file names and categories come from users, and the archive is unpacked on Windows,
macOS and Linux by tools that trust member names. So a name component is NFC, has no control or
bidi/format characters, none of `/ \\ : * ? " < > |`, no leading/trailing space or dot, is never
`.`/`..`/empty, never a Windows device name, and fits a UTF-8 byte cap. Uniqueness is decided
case-insensitively (the default on Windows and macOS) and deterministically, because a resumed
assembly must produce the very same names.
"""

from __future__ import annotations

import re
import unicodedata

_FORBIDDEN = str.maketrans({c: "_" for c in '/\\:*?"<>|'})
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})  # controls, bidi/format, line separators
_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{d}{n}" for d in ("COM", "LPT") for n in [*"0123456789", "\u00b9", "\u00b2", "\u00b3"]]
)
_MAX_EXTENSION_BYTES = 16
_ALLOWED_MIN_BYTES = 8
_USERNAME = re.compile(r"[^A-Za-z0-9_-]+")
# Plain ASCII (letters, digits, _ and -, with dots and spaces only inside): already NFC, nothing to
# drop or replace, nothing to trim. Most slugs and file names are this; they skip the per-character
# Unicode checks (~20% of rendering a small blog's members).
_PLAIN = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9 ._-]*[A-Za-z0-9_-])?")


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _truncate(text: str, max_bytes: int) -> str:
    """Longest prefix of `text` that fits `max_bytes` UTF-8 bytes, never splitting a character."""
    return text.encode("utf-8")[:max(max_bytes, 0)].decode("utf-8", "ignore")


def _trim(text: str) -> str:
    """Without leading/trailing whitespace or dots (Windows silently drops trailing ones)."""
    start, end = 0, len(text)
    while start < end and (text[start] == "." or text[start].isspace()):
        start += 1
    while end > start and (text[end - 1] == "." or text[end - 1].isspace()):
        end -= 1
    return text[start:end]


def _split_extension(name: str) -> tuple[str, str]:
    dot = name.rfind(".")
    if dot <= 0 or _utf8_len(name[dot:]) > _MAX_EXTENSION_BYTES:
        return name, ""
    return name[:dot], name[dot:]


def _fit(name: str, max_bytes: int) -> str:
    """Cap the byte length, cutting the stem so the extension survives when it can."""
    if _utf8_len(name) <= max_bytes:
        return name
    stem, extension = _split_extension(name)
    stem = _trim(_truncate(stem, max_bytes - _utf8_len(extension)))
    return stem + extension if stem else _trim(_truncate(name, max_bytes))


def _is_reserved(name: str) -> bool:
    return name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED


def _clean(name: str, max_bytes: int) -> str:
    if len(name) <= max_bytes and _PLAIN.fullmatch(name) and not _is_reserved(name):
        return name  # what the steps below return for it, unchanged
    text = "".join(c for c in name if unicodedata.category(c) not in _DROP_CATEGORIES)
    text = _trim(unicodedata.normalize("NFC", text).translate(_FORBIDDEN))
    for _ in range(4):  # each pass can only shorten; reaching a fixpoint takes one or two
        before = text
        text = _fit(text, max_bytes)
        if _is_reserved(text):
            text = _fit("_" + text, max_bytes)
        text = _trim(unicodedata.normalize("NFC", text))
        if text == before:
            break
    return text if is_safe_component(text, max_bytes) else ""


def is_safe_component(name: str, max_bytes: int = 200) -> bool:
    """True when `name` is a single safe path component (what `safe_component` guarantees)."""
    return (
        bool(name)
        and not any(c in '/\\:*?"<>|' or unicodedata.category(c) in _DROP_CATEGORIES for c in name)
        and name not in (".", "..")
        and _utf8_len(name) <= max_bytes  # safe to encode: lone surrogates (Cs) were refused above
        and name == _trim(name)
        and unicodedata.is_normalized("NFC", name)
        and not _is_reserved(name)
    )


def is_safe_path(path: str, max_component_bytes: int = 200, max_path_bytes: int = 1024) -> bool:
    """True when every `/`-separated part of `path` is a safe component and the whole fits
    `max_path_bytes` (:class:`NameAllocator`'s cap): a member name an export makes (what verify asks of
    an archive's names: no `..`, empty or absolute part, no backslash, none too long to unpack — a
    name of 5,011 bytes in parts of 199 unzip wrote under a name cut short, and 7-Zip not at all)."""
    return all(is_safe_component(part, max_component_bytes) for part in path.split("/")) \
        and _utf8_len(path) <= max_path_bytes  # safe to encode: every part was


def safe_component(name: str, fallback: str, max_bytes: int = 200) -> str:
    """One safe path component made from `name`, else from `fallback`, else "file"."""
    if max_bytes < _ALLOWED_MIN_BYTES:
        raise ValueError(f"max_bytes must be at least {_ALLOWED_MIN_BYTES}")
    return _clean(name, max_bytes) or _clean(fallback, max_bytes) or "file"


def with_counter(name: str, counter: int, max_bytes: int) -> str:
    """`photo.jpg` -> `photo-2.jpg`, still inside the byte cap and still safe."""
    stem, extension = _split_extension(name)
    suffix = f"-{counter}"
    stem = _trim(_truncate(stem, max_bytes - _utf8_len(suffix + extension)))
    return safe_component(stem + suffix + extension, f"file{suffix}", max_bytes)


def sanitize_for_path(username: str) -> str:
    """ASCII letters, digits, `-` and `_` only, 1..64 chars: safe in a file name and a header."""
    ascii_text = unicodedata.normalize("NFKD", username).encode("ascii", "ignore").decode("ascii")
    cleaned = _USERNAME.sub("-", ascii_text).strip("-")[:64].strip("-")
    return cleaned or "user"


class NameAllocator:
    """Hands out unique member paths, deterministically: the same calls give the same paths.

    Uniqueness is case-insensitive (`Photo.jpg` and `photo.JPG` collide on Windows and macOS) and
    covers folders too, so a file can never take a path that is also a folder. Folders asked for with
    different case are the same folder (first spelling wins).
    """

    def __init__(self, max_component_bytes: int = 200, max_path_bytes: int = 1024) -> None:
        self.max_component_bytes = max_component_bytes
        self.max_path_bytes = max_path_bytes
        self._taken: set[str] = set()
        self._folders: dict[str, str] = {}
        self._next_counter: dict[str, int] = {}
        # What _folder gave for a folder as asked for, and the reservations made: asked again (every
        # post asks for "posts" and reserves its two names there) they are the same, and were
        # about half of the work of naming a small export's members.
        self._resolved: dict[str, str] = {}
        self._reserved: set[tuple[str, tuple[str, ...]]] = set()

    def reserve(self, folder: str, *names: str) -> None:
        """Keep ``names`` in ``folder`` from ever being handed out (case-insensitively, as every
        name): asking for one gives the de-duplicated name a collision gives (``index-2.md``).
        Idempotent; the same reservations before the same calls give the same paths."""
        if (folder, names) in self._reserved:
            return
        resolved = self._folder(folder)
        for name in names:
            self._taken.add(_allocation_key(_join(resolved, name)))
        self._reserved.add((folder, names))

    def allocate(self, folder: str, name: str, fallback: str) -> str:
        """`folder/<safe unique name>`; `folder` is split on `/` and each part made safe too."""
        return self._unique(self._folder(folder), name, fallback)

    def _folder(self, folder: str) -> str:
        if (known := self._resolved.get(folder)) is not None:
            return known
        resolved = ""
        for part in folder.replace("\\", "/").split("/"):
            if not part.strip():
                continue
            key = _allocation_key(_join(resolved, safe_component(part, "folder", self._cap(resolved))))
            if key not in self._folders:
                self._folders[key] = self._unique(resolved, part, "folder")
            resolved = self._folders[key]
        self._resolved[folder] = resolved
        return resolved

    def _cap(self, parent: str) -> int:
        room = self.max_path_bytes - (_utf8_len(parent) + 1 if parent else 0)
        cap = min(self.max_component_bytes, room)
        if cap < _ALLOWED_MIN_BYTES:
            raise ValueError(f"folder {parent!r} leaves no room for names under {self.max_path_bytes} bytes")
        return cap

    def _unique(self, parent: str, name: str, fallback: str) -> str:
        cap = self._cap(parent)
        base = safe_component(name, fallback, cap)
        candidate = base
        base_key = _allocation_key(_join(parent, base))
        if base_key in self._taken:
            counter = self._next_counter.get(base_key, 2)
            while _allocation_key(_join(parent, candidate := with_counter(base, counter, cap))) in self._taken:
                counter += 1
            self._next_counter[base_key] = counter + 1
        path = _join(parent, candidate)
        self._taken.add(_allocation_key(path))
        return path


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def same_file_key(path: str) -> str:
    """Equal for two paths that are one file on a case-insensitive (Windows, macOS) file system."""
    return unicodedata.normalize("NFC", path.casefold())


def _allocation_key(path: str) -> str:
    """:func:`same_file_key`, and equal for two paths Hugo reads as one content file: it lower-cases
    a file's path as Go does, ``İ`` as ``i`` (``casefold`` gives ``i`` and a combining dot), and of
    the posts ``posts/i.md`` and ``posts/İ.md`` built one, the other missing from the site. Only the
    allocator's: the two are two files on every disk, and verify holds an archive to that alone."""
    key = same_file_key(path)
    return key.replace("i\u0307", "i") if "\u0307" in key else key
