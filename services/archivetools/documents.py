"""The shape of an archive's JSON documents (manifest.json, index.json, errors.json) and of a post's
or page's front matter, checked once before verify or import use them.

An archive is input from anywhere: a document of the wrong shape is refused with one line that
names the document and the place (``manifest.json: members[0] is not an object``), never a
KeyError or TypeError further on. Verify checks only what it reads (it must pass archives of older
versions); import checks every field it turns into a row.

The JSON documents are read whole, so each is refused over ``JSON_LIMIT`` bytes (64 MiB: the index
of a tenant with about 90,000 posts; a real archive's are far smaller). Posts and pages are read
whole too, for their links and front matter, under ``TEXT_LIMIT``. Every other member is streamed.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from typing import Annotated, Any, ClassVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from shared.archive.frontmatter import OPEN, parse_markdown

JSON_LIMIT = 64 * 1024 * 1024
TEXT_LIMIT = 64 * 1024 * 1024
CHUNK = 1024 * 1024


class DocumentError(ValueError):
    """A document of the archive is too large, not JSON, or not of the shape expected: one line."""


def read_limited(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A member's bytes, refused when over ``limit`` (its stated size, or what it really expands to)."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise DocumentError(f"{name}: not in the archive") from None
    if info.file_size > limit:
        raise DocumentError(f"{name}: {info.file_size} bytes, over the {limit // 2**20} MiB limit")
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise DocumentError(f"{name}: over the {limit // 2**20} MiB limit")
    return data


def parse_json(raw: bytes, name: str) -> Any:
    """The JSON document ``name`` holds; DocumentError when it is not JSON, or is nested deeper than
    the parser's stack (a few kilobytes of ``[`` are enough: a RecursionError, not a ValueError)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise DocumentError(f"{name}: nested too deep to read") from None
    except ValueError:
        raise DocumentError(f"{name}: not valid JSON") from None


def read_text_page(raw: bytes, name: str) -> tuple[dict[str, Any], str]:
    """A post's or page's front matter and body, as import reads them (and verify, for a post or page
    index.json lists); DocumentError in one line naming it when it is not UTF-8 (an export writes
    nothing else), has no front matter, or one that is not closed, not YAML (a tag such as
    ``!!python/object``, a syntax error) or not a mapping. Verify read such a file as text and passed
    the archive, which import then refused."""
    try:
        text = raw.decode()
        if not text.startswith(OPEN):
            raise ValueError("it has no front matter")
        return parse_markdown(text)
    except ValueError as e:
        raise DocumentError(f"{name}: not a post or page ({e})") from None


def where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]" if out else f"item {part}"
        else:
            out += f".{part}" if out else str(part)
    return out


_SAYS = {"missing": "is missing", "model_type": "is not an object", "dict_type": "is not an object",
         "model_attributes_type": "is not an object", "list_type": "is not a list", "string_type": "is not a string",
         "int_type": "is not an integer", "bool_type": "is not true or false", "literal_error": "is not expected",
         "string_too_short": "is empty", "extra_forbidden": "is not expected"}


def _item_models(model: type[BaseModel]) -> dict[str | None, type[BaseModel]]:
    """The fields of ``model`` that are lists of models (None: a RootModel's list), each with its item's model."""
    out: dict[str | None, type[BaseModel]] = {}
    for field_name, info in model.model_fields.items():
        args = get_args(info.annotation) if get_origin(info.annotation) is list else ()
        if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            out[None if issubclass(model, RootModel) else field_name] = args[0]
    return out


def check(model: type[BaseModel], value: Any, name: str) -> Any:
    """``value`` unchanged when it has ``model``'s shape; else DocumentError naming the first problem.
    A list of entries (index.json's sections, manifest.json's members, errors.json) is checked one
    entry at a time, up to the first problem: pydantic, given the whole document, built a model of
    every entry and an error for each one wrong, and 4 MiB of ``{},`` in index.json's media took
    verify 8.2 s and 944 MB (the JSON parser itself 0.1 s and 150 MB); 64 MiB, some 14 GB."""
    items = _item_models(model)
    if None in items and isinstance(value, list):
        for n, item in enumerate(value):
            _validate(items[None], item, name, (n,))
        return value
    if isinstance(value, dict) and items:
        for field_name, item_model in items.items():
            if isinstance(entries := value.get(field_name), list):
                for n, item in enumerate(entries):
                    _validate(item_model, item, name, (str(field_name), n))
        value_without = {k: [] if k in items and isinstance(v, list) else v for k, v in value.items()}
        _validate(model, value_without, name, ())
        return value
    _validate(model, value, name, ())
    return value


def _validate(model: type[BaseModel], value: Any, name: str, loc: tuple[int | str, ...]) -> None:
    try:
        model.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        says = _SAYS.get(first["type"]) or str(first["msg"]).removeprefix("Value error, ")
        at = where(loc + tuple(first["loc"]))
        raise DocumentError(f"{name}: {at + ' ' if at else ''}{says}") from None


def epoch_seconds(value: Any) -> int:
    """Seconds since 1970 of an ISO 8601 time (or a datetime), as the content database stores them;
    ValueError or OverflowError when it has none (year 1 with no zone, read as local time)."""
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())


def seconds(value: Any) -> int | None:
    """A time field's value as the content database stores it: None when it is empty, else its
    seconds since 1970 (:func:`epoch_seconds`)."""
    return None if value in (None, "") else epoch_seconds(value)


def time_column(entry: dict[str, Any], col: str) -> Any:
    """A time column's value: what ``unreadable`` kept as stored (the field is null then), else the
    field's time in seconds. The models below check that it is one or the other, and of a type the
    database holds."""
    kept = entry.get("unreadable") or {}
    return kept[col] if col in kept else seconds(entry.get(col))


def number_column(entry: dict[str, Any], col: str, default: int | None = None) -> Any:
    """A whole-number column's value (a size, a page's order): what ``unreadable`` kept as stored, else the field's."""
    kept = entry.get("unreadable") or {}
    if col in kept:
        return kept[col]
    value = entry.get(col)
    return default if value is None else value


def _iso_time(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("is not an ISO 8601 time")
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not an ISO 8601 time") from None
    try:
        epoch_seconds(value)  # what import stores: a time it cannot turn into seconds is refused here
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{str(value)[:40]!r} is out of range") from None
    return value


def _optional_time(value: Any) -> Any:
    return value if value in (None, "") else _iso_time(value)


def _int64(value: int) -> int:
    if not -(2**63) <= value < 2**63:  # the most a database integer column holds
        raise ValueError("is out of range")
    return value


def _size(value: int) -> int:
    if value < 0:  # a count of bytes: the 64-bit check alone let -1 through into the rows
        raise ValueError("is negative")
    return _int64(value)


def _object_key(value: str) -> str:
    if not value or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError("is empty or holds a control character")
    return value


def _as_stored(value: Any) -> Any:
    """A value kept under ``unreadable``: what the column held, text or a whole number (the catalog
    writes any other value as its text); it goes back into the column as it is."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise ValueError("is not text or a whole number")
    return _int64(value) if isinstance(value, int) else value


def _tags_as_stored(value: Any) -> Any:
    if not isinstance(value, str):  # the tags column is text
        raise ValueError("is not a string")
    return value


OptTime = Annotated[Any, AfterValidator(_optional_time)]
Key = Annotated[str, AfterValidator(_object_key)]
Int64 = Annotated[int, AfterValidator(_int64)]
Size = Annotated[int, AfterValidator(_size)]
NonEmpty = Annotated[str, Field(min_length=1)]
Stored = Annotated[Any, AfterValidator(_as_stored)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


# -- what verify reads -------------------------------------------------------------------------
class Member(_Doc):
    path: str
    sha256: str | None = None


class Manifest(_Doc):
    members: list[Member] = []


class SkippedItem(_Doc):
    pass


class Errors(RootModel[list[SkippedItem]]):
    model_config = ConfigDict(strict=True)


class IndexEntry(_Doc):
    path: str | None = None
    in_archive: bool = False


class Index(_Doc):
    posts: list[IndexEntry] = []  # a post's or page's entry: its path, and the fields of its front matter
    pages: list[IndexEntry] = []
    media: list[IndexEntry] = []
    files: list[IndexEntry] = []


# -- what import turns into rows ---------------------------------------------------------------
class ImportManifest(_Doc):
    tenant_id: NonEmpty
    username: str | None = None


class MediaLink(_Doc):
    path: str
    url: str


class TextEntry(_Doc):
    id: NonEmpty
    path: str
    media_links: list[MediaLink] = []


class _Unreadable(BaseModel):
    """``unreadable``: the columns the catalog could not read (shown as null or [] in their fields),
    each with its value as stored. Only columns that can have one: import would drop any other."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Kept(_Doc):
    """A row whose time columns may be null in their fields because ``unreadable`` holds them; a
    column in ``REQUIRED`` must then be there (the database holds no row without it)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    unreadable: _Unreadable | None = None

    @model_validator(mode="after")
    def _one_value_each(self) -> Any:
        kept = self.unreadable.model_fields_set if self.unreadable is not None else set()
        for col in kept:
            if getattr(self, col) not in (None, "", []):
                raise ValueError(f"{col} and unreadable.{col} both hold a value")
        for col in self.REQUIRED:
            if getattr(self, col) in (None, "") and col not in kept:
                raise ValueError(f"{col} is null and unreadable holds no {col}")
        return self


class _UnreadableUpload(_Unreadable):
    uploaded_at: Stored = None
    size: Stored = None  # a fraction, text or a negative number: no count of bytes


class _ObjectEntry(_Kept):
    """What a media row and a stored file have in common: an object of the store."""

    REQUIRED = ("uploaded_at",)
    id: NonEmpty
    path: str | None = None
    in_archive: bool = False
    filename: str
    original_name: str | None = None
    object_key: Key
    size: Size | None = None
    mime_type: str | None = None
    uploaded_at: OptTime
    unreadable: _UnreadableUpload | None = None


class MediaEntry(_ObjectEntry):
    source_url: str | None = None
    alt_text: str | None = None


class FileEntry(_ObjectEntry):
    category: str | None = None
    product: str | None = None


class ImportIndex(_Doc):
    posts: list[TextEntry] = []
    pages: list[TextEntry] = []
    media: list[MediaEntry] = []
    files: list[FileEntry] = []


class _UnreadablePage(_Unreadable):
    created_at: Stored = None
    updated_at: Stored = None


class _UnreadablePageOnly(_UnreadablePage):
    display_order: Stored = None  # a fraction or text


class _UnreadablePost(_UnreadablePage):
    published_at: Stored = None
    tags: Annotated[Any, AfterValidator(_tags_as_stored)] = None


class _TextMeta(_Kept):
    REQUIRED = ("created_at",)
    slug: str
    slug_original: str | None = None  # the slug as stored, where Hugo could not build it (layout.hugo_slug)
    title: str
    description: str | None = None
    created_at: OptTime
    updated_at: OptTime = None


class PostMeta(_TextMeta):
    tags: list[str] | None = None
    tags_original: list[str] | None = None  # the tags as stored, where Hugo could not build one (layout.hugo_tags)
    status: str
    featured_image_original: str | None = None
    published_at: OptTime = None
    unreadable: _UnreadablePost | None = None

    @model_validator(mode="after")
    def _tags_kept_once(self) -> Any:
        if self.tags_original is not None and self.unreadable is not None and "tags" in self.unreadable.model_fields_set:
            raise ValueError("tags_original and unreadable.tags both hold a value")
        return self


class PageMeta(_TextMeta):
    type: str | None = None
    display_order: Int64 | None = None
    unreadable: _UnreadablePageOnly | None = None


# -- what import restores of a post or page ------------------------------------------------------
# Each column import takes from a post's or page's front matter, and the fields it is read from (an
# index.json entry holds the same fields: the catalog writes one dict into both).
TEXT_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "posts": {"slug": ("slug", "slug_original"), "title": ("title",), "description": ("description",),
              "tags": ("tags", "tags_original"), "status": ("status",),
              "featured_image": ("featured_image_original",), "published_at": ("published_at",),
              "created_at": ("created_at",), "updated_at": ("updated_at",)},
    "pages": {"slug": ("slug", "slug_original"), "title": ("title",), "description": ("description",),
              "type": ("type",), "display_order": ("display_order",), "created_at": ("created_at",),
              "updated_at": ("updated_at",)},
}


def text_columns(section: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The columns import restores from a post's (``section`` "posts") or page's front matter, before
    ids, keys and URLs become the target tenant's: the one rule import and verify share. The value as
    stored where Hugo was given a stand-in (``slug_original``, ``tags_original``; an archive made
    before they existed has the stored ones in ``slug`` and ``tags``), and what ``unreadable`` kept.
    For front matter of :class:`PostMeta`'s or :class:`PageMeta`'s shape; on any other it may raise
    TypeError, ValueError, OverflowError or OSError."""
    kept = meta.get("unreadable") or {}
    out = {"slug": meta.get("slug") if meta.get("slug_original") is None else meta["slug_original"],
           "title": meta.get("title"), "description": meta.get("description")}
    if section == "posts":
        tags = meta.get("tags") if meta.get("tags_original") is None else meta["tags_original"]
        out |= {"tags": kept["tags"] if "tags" in kept else json.dumps(tags or []), "status": meta.get("status"),
                "featured_image": meta.get("featured_image_original"),
                "published_at": time_column(meta, "published_at")}
    else:
        out |= {"type": meta.get("type"), "display_order": number_column(meta, "display_order", 0)}
    return out | {"created_at": time_column(meta, "created_at"), "updated_at": time_column(meta, "updated_at")}


def declared_columns(section: str, meta: dict[str, Any]) -> set[str]:
    """The columns of :func:`text_columns` that ``meta`` (an index.json entry) gives a value for: a
    field it holds, or ``unreadable``'s value for the column."""
    kept = meta.get("unreadable")
    kept = kept if isinstance(kept, dict) else {}
    return {col for col, fields in TEXT_COLUMNS[section].items() if col in kept or any(f in meta for f in fields)}
