"""The archive's layout, in one place: where every member goes, in which order, and what the
special members hold.

Archive, top to bottom::

    README.md                       the catalog renders it (services/catalog/readme.py)
    posts/{slug}.md                 one per post, in the content source's order (never index.md
                                    or _index.md: see SSG_RESERVED)
    pages/{slug}.md                 one per page (idem)
    index.json                      every row and where it is in here (services/catalog/index.py)
    feed.json                       blog only: the posts as a JSON Feed 1.1
    media/{filename}                blog with images, byte for byte
    files/{category}/{filename}     storage mode, byte for byte
    manifest.json                   written by the assembler after the snapshot's members
    errors.json                     idem
    central directory

The snapshot holds the members up to the last file, already in this order; the encoder writes
the members it is given, in the order given, then :data:`GENERATED`, then the central directory.
Every object key of an export (the exports bucket's layout) is in :mod:`shared.core.keys`.

Pure: no I/O. Errors::

    LayoutError   two members would share a path (a bug upstream: never write such an archive)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from shared.archive import jsontext
from shared.archive.levels import level_for
from shared.archive.names import NameAllocator, safe_component, same_file_key
from shared.core.snapshot import Snapshot, SnapshotMember


class LayoutError(ValueError):
    """The members do not make a valid archive layout."""


def file_name(key: str) -> str:
    """The archive's file name as the person downloads it: the key's last component."""
    return key.rsplit("/", 1)[-1]


# ---- member paths --------------------------------------------------------------------------------

README_PATH = "README.md"
INDEX_PATH = "index.json"
FEED_PATH = "feed.json"
MANIFEST_PATH = "manifest.json"
ERRORS_PATH = "errors.json"
POSTS, PAGES, MEDIA, FILES = "posts", "pages", "media", "files"
TEXT_LEVEL = 6  # README, posts, pages and the JSON members: deflate level 6
JSON_TYPE = "application/json"
MARKDOWN_TYPE = "text/markdown; charset=utf-8"


def text_content_type(path: str) -> str:
    return JSON_TYPE if path.endswith(".json") else MARKDOWN_TYPE


def keep_extension(filename: str, fallback_stem: str) -> str:
    """``"   .jpg"`` or ``"..jpg"`` keep their extension: the stem falls back, not the whole name."""
    stem, dot, ext = filename.rpartition(".")
    if not dot or not ext or "/" in ext or "\\" in ext or len(ext) > 10:
        return filename
    if not stem.strip(" .\t\r\n"):  # nothing usable left of the stem
        return f"{fallback_stem}.{ext}"
    return filename


# Each allocates from the export's one NameAllocator, so paths are unique (case-insensitively) and
# the same rows always give the same paths. Blog: media first, so posts can link to their images.
def media_path(names: NameAllocator, row_id: str, filename: str | None) -> str:
    return names.allocate(MEDIA, keep_extension(filename or "", f"media-{row_id}"), f"media-{row_id}")


# Every key a post's or a page's front matter may hold: the ones an export writes (services/catalog/
# render.py; tests/unit/test_front_matter_keys.py holds the renderer to them). A static-site generator
# acts on keys an export never writes — Hugo publishes a post at its `url` (`url: /` over the site's home
# page), makes a redirect page at each of its `aliases` (`/login/` sending readers elsewhere), takes
# `outputs`, `build`, `cascade`, `layout` —, so a front matter with any other key was made by hand after the
# export: verify refuses it (:func:`unwritten_keys`), and import with it, as an archive altered after it
# was made.
FRONT_MATTER_KEYS: dict[str, frozenset[str]] = {
    POSTS: frozenset({"title", "description", "slug", "slug_original", "tags", "tags_original", "status",
                      "featured_image", "featured_image_original", "published_at", "created_at", "updated_at",
                      "date", "lastmod", "draft", "unreadable"}),
    PAGES: frozenset({"title", "description", "slug", "slug_original", "type", "display_order", "created_at",
                      "updated_at", "date", "lastmod", "draft", "unreadable"}),
}


# Tags one row may have. Each costs the catalog some 270 bytes while its post is rendered (front
# matter, index.json, feed.json) and, past plain ASCII words, ~15 us of YAML: a tags column of 6 MB
# ("é,é,…", 2.1 million tags) took 29 s and 570 MiB over the catalog's usual RSS, past its 512 MiB
# limit. A row with more is kept as stored under ``unreadable``, like tags that are no list of words
# (services/catalog/render.py).
TAGS_LIMIT = 10_000
# The most YAML values (nodes: a mapping, a key, a value, a list's item) a post's or page's front matter
# holds as an export writes it: two per key (unreadable's keys too, one per column at most) and the items
# of tags and tags_original, at most TAGS_LIMIT each. PyYAML builds some 20,000 nodes a second, each ~900
# bytes until the document is read: a post of 4 MiB of `- é` lines (a few KB deflated) took verify 52 s
# and 700 MB, one of 64 MiB some 14 minutes and 11 GB. frontmatter.parse_markdown stops past this many.
FRONT_MATTER_NODES = 2 * TAGS_LIMIT + 4 * max(len(keys) for keys in FRONT_MATTER_KEYS.values())


def unwritten_keys(section: str, meta: dict[Any, Any]) -> list[str]:
    """The keys of a post's (``section`` "posts") or page's front matter that an export never writes
    (:data:`FRONT_MATTER_KEYS`), as text, in the order given."""
    return [str(key) for key in meta if key not in FRONT_MATTER_KEYS[section]]


# Names a static-site generator reads as the folder's own page, not as one more post: Hugo takes a
# folder holding `index.md` for a leaf bundle (every other post in it stops being a page) and
# `_index.md` for the section's list page. A post or page with such a slug gets the name a collision
# gives (`index-2.md`), case-insensitively like every name; its slug stays in its front matter.
SSG_RESERVED = ("index.md", "_index.md")


def _not_a_bundle(stem: str) -> str:
    """Hugo reads any ``index.<anything>.md`` as the leaf bundle's index too (a language or output
    format before the extension: ``index.json.md``, slug "index.json", built that post and no other
    in its folder) and ``_index.<anything>.md`` as the section's page: the first dot becomes a dash."""
    return stem.replace(".", "-", 1) if stem.split(".", 1)[0].casefold() in ("index", "_index") else stem


def _not_ignored(stem: str) -> str:
    """Hugo skips a content file whose name starts with ``#`` (an editor's autosave file): the post
    with the slug ``#tag`` was in the archive and missing from the site, without a word. That ``#``
    becomes ``_``."""
    return "_" + stem[1:] if stem.startswith("#") else stem


def _not_a_translation(stem: str) -> str:
    """Hugo reads ``name.en.md`` as the English (its default language's) version of ``name.md``: of
    the posts with the slugs "notes" and "notes.en" it built one, and the other was missing from the
    site without a word. That last dot becomes a dash (``notes-en.md``)."""
    base, dot, language = stem.rpartition(".")
    return f"{base}-{language}" if dot and base and language == "en" else stem


def _hugo_stem(stem: str) -> str:
    """A post's or page's file name without ``.md``, as Hugo builds every one of them."""
    return _not_a_bundle(_not_a_translation(_not_ignored(stem)))


def hugo_misreads(path: str) -> bool:
    """Whether Hugo reads the post or page file at ``path`` as other than one more page of its folder:
    a leaf bundle's or the section's own page (``index.md``, ``_index.md`` in any case, ``index.<x>.md``),
    a file it skips (``#…``) or the English version of another (``….en.md``). An export never names one
    so (:func:`_hugo_stem`, :data:`SSG_RESERVED`); verify refuses an archive that does."""
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    return _hugo_stem(stem) != stem or stem.casefold() in ("index", "_index")


# Hugo builds a post at ``<section>/<slug>`` and a tag's page at ``tags/<tag>``, reading ``/`` as a
# folder: what it made of these (Debian's Hugo 0.111, with and without ``uglyURLs``) is in hugo_unsafe.
HUGO_LIST_FILES = ("index.html", "index.xml")  # what a section's or a tag's list page writes in its folder
# Hugo writes a page at ``<part>/…/<last part>.html`` (uglyURLs) or ``…/<last part>/index.html``: a part
# of a slug or tag longer than a file name may be (255 bytes on Linux, less ``.html``) ended the whole
# build ("file name too long"). The longest part it is given, in UTF-8 bytes, with room to spare.
HUGO_PART_BYTES = 240
HUGO_PATH_BYTES = 1024  # and of the whole (many short parts: a path past the system's 4,096 bytes ended it too)


def hugo_unsafe(value: str) -> bool:
    """Whether Hugo cannot build the slug ``value`` as a page of its own: what it writes the page at
    (Hugo's rule, as :func:`hugo_address` follows it: the slug without the ``-`` at its ends, joined to its
    section's ``/``, less the characters it drops) has a part (between ``/``) ``.``, ``..``, ``index.html`` or
    ``index.xml`` (any case) or longer than :data:`HUGO_PART_BYTES`, is longer than :data:`HUGO_PATH_BYTES`,
    or is nothing but dots and slashes — the section's own folder. A ``..`` part took a post out of its
    section (``../c``: public/c.html, over whatever was there) or built no page for it (``..``,
    ``../../tags``); ``.`` or ``/`` put it on the section's list page (posts/index.html), and so did ``-.``,
    ``/-``, ``-!`` and ``\\x1c`` (Go's IsSpace takes it for no whitespace: it is dropped), which the older
    reading (:func:`hugo_unsafe_before`) took for pages of their own: the post was missing and, alone in its
    section, over the list page. ``..-`` built no page, ``-index.html`` ended the whole build ("is a
    directory"). The slug ``index`` itself (``-index``; not ``Index``, ``index!`` or ``x/index``, built at
    posts/index/) Hugo wrote, without uglyURLs, at posts/index.html, and the section's list page over it. A
    slug of nothing but ``-`` is built at its file's name. A backslash, ``%2e%2e`` or ``a/b``
    are plain characters to Hugo; a slug ending in a dot is built as it is."""
    base = value.strip("-")
    if not base:  # Hugo builds the post at its file's name
        return False
    if base == "index":  # without uglyURLs Hugo writes it at posts/index.html: the list page wrote over it
        return True
    if _PLAIN.fullmatch(base):  # most slugs: kept whole by Hugo, no dot or slash
        return len(base) > HUGO_PART_BYTES
    # between the section's `/` and the page file's: whitespace at the slug's ends is a `-`, as Hugo writes it
    text = hugo_path_text(f"/{base}/")[1:-1]
    return not _path_clean(text) or _unsafe_parts(text)


def hugo_unsafe_before(value: str) -> bool:
    """The older reading of :func:`hugo_unsafe`, by which release 0.2.0 gave slugs until 6 December (verify
    reads an archive of 0.1.0 or 0.2.0 by it too): :func:`_unsafe_reading` of what it took Hugo to keep of the
    slug (:func:`_hugo_path_text_before`). It missed the ``-`` Hugo trims at a slug's ends and the section's
    ``/`` before it (``-.``, ``/-``, ``-!``), and Go's whitespace (``.\\x1c.`` is ``..`` to Hugo, ``.-.`` to it)."""
    return _unsafe_reading(value, _hugo_path_text_before(value))


def _unsafe_reading(value: str, text: str) -> bool:
    """Whether Hugo cannot build ``value``, a tag (or by the older reading a slug), whose characters Hugo keeps
    are ``text``: a part (between ``/``) of it is ``.``, ``..``, ``index.html`` or ``index.xml`` (any case) or
    too long, or it is nothing but dots and slashes (a tag of whitespace, as Python reads it, not counted). A
    ``..`` tag ended the build ("missing taxonomy: tags"), ``../x`` was built as public/x.html, and ``./x``
    on tag x's page; ``.``, ``/`` and ``...`` had no page. Hugo trims a tag (``" .. "`` is ``..``), and drops
    characters (:func:`hugo_path_text`: ``.!.`` is ``..``, ``!`` is nothing), so the check is on what is left."""
    if _PLAIN.fullmatch(value):  # most tags: kept whole by Hugo, no dot or slash
        return len(value) > HUGO_PART_BYTES
    if value.strip() and not text.strip("/."):
        return True
    return _unsafe_parts(text)


def _unsafe_parts(text: str) -> bool:
    """Whether Hugo cannot write the path ``text`` (what it keeps of a slug or tag): it is longer than
    :data:`HUGO_PATH_BYTES`, or a part is longer than :data:`HUGO_PART_BYTES` (a 300-byte slug or tag ended
    the build: "file name too long"), ``.``, ``..``, ``index.html`` or ``index.xml``."""
    if len(text.encode()) > HUGO_PATH_BYTES or any(len(part.lower().encode()) > HUGO_PART_BYTES
                                                   for part in text.split("/")):
        return True
    return any(part in (".", "..") or part.casefold() in HUGO_LIST_FILES for part in text.split("/"))


def hugo_unsafe_tag(tag: str) -> bool:
    """Whether Hugo cannot build a page of its own for ``tag``: :func:`_unsafe_reading` of what Hugo keeps of
    it (:func:`hugo_path_text`; Hugo trims no ``-`` of a tag: ``-a`` is built at tags/-a/), or the last
    character Hugo keeps of it is a dot. The tag ``etc.`` (``a/b.``, ``x..``,
    ``w.!``, `` v1. ``) got a page, tags/etc./, listing no post; with tag ``etc`` beside it Hugo built
    that one page for both, so ``etc``'s posts were listed on none (Debian's Hugo 0.111, with and
    without ``uglyURLs``). A slug ending in a dot is built as it is (posts/etc./ beside posts/etc/), so
    this is for tags alone."""
    return _unsafe_tag_reading(tag, hugo_path_text)


def hugo_unsafe_tag_before(tag: str) -> bool:
    """The older reading of :func:`hugo_unsafe_tag`, by which release 0.2.0 gave tags until 6 December (verify
    reads an archive of 0.1.0 or 0.2.0 by it too): what it took Hugo to keep of the tag read whitespace as
    Python does (:func:`_hugo_path_text_before`), so ``/\\x1c/`` was ``/-/`` to it, ``//`` to Hugo (no page)."""
    return _unsafe_tag_reading(tag, _hugo_path_text_before)


def _unsafe_tag_reading(tag: str, kept: Callable[[str], str]) -> bool:
    return _unsafe_reading(tag, text := kept(tag)) or (not _PLAIN.fullmatch(tag) and text.endswith("."))


_PLAIN = re.compile(r"[A-Za-z0-9_-]+")  # characters hugo_path_text keeps as they are, none a dot or slash
_HUGO_KEPT = frozenset("./\\_#+~-@")
_HEX = frozenset("0123456789abcdefABCDEF")


def _hugo_keeps(value: str, i: int) -> bool:
    c = value[i]
    cat = unicodedata.category(c)
    return (c in _HUGO_KEPT or cat[0] in "LM" or cat == "Nd"
            or (c == "%" and i + 2 < len(value) and value[i + 1] in _HEX and value[i + 2] in _HEX))


def hugo_path_text(value: str) -> str:
    """What Hugo makes of a slug or tag before it is a path (its ``UnicodeSanitize``, helpers/path.go):
    letters, marks, digits, ``./\\_#+~-@`` and a ``%`` before two hex digits are kept, every other
    character is dropped — so ``.!.`` is ``..`` to it (the slug ``x/.!./.!./y`` built public/y.html, the tag
    ``..!`` ended the build), and ``!`` is nothing —, and whitespace after a kept character is one ``-``
    before the next, none beside a ``-`` (``d -e``, ``d- e`` and ``d - e`` are ``d-e``). Whitespace is
    Go's (``unicode.IsSpace``): ``\\x1c``–``\\x1f``, which Python's ``isspace`` takes for some, are dropped."""
    kept: list[str] = []
    hyphen = was_hyphen = False  # a `-` is due before the next kept character; the last one kept is a `-`
    for i, c in enumerate(value):
        if _hugo_keeps(value, i):
            was_hyphen = c == "-"
            if hyphen and not was_hyphen:
                kept.append("-")
            hyphen = False
            kept.append(c)
        elif kept and not was_hyphen and c in _GO_SPACE:
            hyphen = True
    return "".join(kept)


# Go's unicode.IsSpace: Unicode's White_Space. Python's str.isspace takes \x1c-\x1f too, which Hugo drops
# (the slug `u\x1cv` was built at posts/uv/).
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                      "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def hugo_address(slug: str, stem: str = "") -> str:
    """The address Hugo builds a post or page at in its section (its folder of public/, ``.html`` added
    with uglyURLs), from the ``slug`` in its front matter ("" for none) or, when that is none or nothing
    but ``-``, from its file's name without ``.md`` (``stem``). Two posts (or pages) with one address are
    one page in Hugo's output: the last one built, the other missing from the site without a word.

    Hugo's rule (0.111: hugolib/page__meta.go, resources/page/page_paths.go ``CreateTargetPaths``,
    helpers/path.go ``MakePathSanitized``), step by step: a slug loses every ``-`` at its ends (``-a`` and
    ``a-`` are ``a``; a file's name keeps them); it is joined to its section's path with Go's ``path.Join``,
    which drops empty and ``.`` parts (``/x``, ``x/`` and ``x//.`` are ``x``); what it keeps of that path
    (:func:`hugo_path_text`) — after the section's ``/``, so whitespace at the slug's start is a ``-`` too
    (`` c`` is ``-c``, ``e `` is ``e-``) — is the page file's path, whose disk drops the empty and ``.``
    parts the characters Hugo drops leave (``a/!`` is ``a/``: posts/a/index.html, ``a``'s page; with
    uglyURLs it was posts/a/.html, but the site may be built without them); and it is lower-cased,
    as Hugo lower-cases every address. A ``..`` part is left as it is (:func:`hugo_unsafe`: an export never
    gives Hugo one).

    Lower-cased as Go does, a character at a time (:func:`_go_lower`), and in NFC: the page files of
    ``é`` and ``e`` with a combining accent are one file on macOS, the second overwriting the first."""
    base = slug.strip("-") or stem
    # between the section's `/` and the page file's `/index.html` (or `.html`)
    text = _path_clean(hugo_path_text(f"/{_path_clean(base)}/"))
    return unicodedata.normalize("NFC", text.lower() if text.isascii() else _go_lower(text))


def _path_clean(path: str) -> str:
    """``path`` without empty or ``.`` parts, nor a ``/`` at either end (Go's ``path.Clean``, but for
    ``..``, which is left as it is)."""
    return "/".join(part for part in path.split("/") if part not in ("", "."))


def hugo_address_before(value: str) -> str:
    """The older reading of :func:`hugo_address`, by which release 0.2.0 gave slugs until 6 December (and
    verify read them): the characters Hugo keeps, whitespace a ``-``, lower-cased — with no ``-`` trimmed,
    no ``-`` spared beside a ``-``, no empty part dropped and whitespace at either end dropped. It kept
    apart slugs Hugo builds at one address (``a`` and ``-a``, ``a - b`` and ``a-b``, ``x`` and ``/x``,
    ``y/z`` and ``y/z/``): verify reads an archive of 0.1.0 or 0.2.0 by it too, to tell such a pair, as
    that release wrote it, from two posts it would have told apart (``_Texts._built_once``)."""
    text = _hugo_path_text_before(value)
    return unicodedata.normalize("NFC", text.lower() if text.isascii() else _go_lower(text))


def _hugo_path_text_before(value: str) -> str:
    """The older reading of :func:`hugo_path_text`, by which release 0.2.0 gave slugs and tags until 6 December:
    whitespace as Python's ``isspace`` reads it (``\\x1c``-``\\x1f`` too), one ``-`` after a kept character
    even beside a ``-``."""
    kept: list[str] = []
    hyphen = False
    for i, c in enumerate(value):
        if _hugo_keeps(value, i):
            if hyphen:
                kept.append("-")
                hyphen = False
            kept.append(c)
        elif kept and c.isspace():
            hyphen = True
    return "".join(kept)


def _go_lower(text: str) -> str:
    """Go's ``strings.ToLower``: each character's own lower case. Python's ``str.lower`` reads
    context and full mappings: a final ``Σ`` is ``ς`` (Go: ``σ``, so Hugo built ``ασ`` and ``ΑΣ`` on
    one page) and ``İ`` is ``i`` with a combining dot (Go: ``i``, one page with ``i``)."""
    return "".join("i" if c == "\u0130" else c.lower() for c in text)


def hugo_slug(slug: Any, path: str, taken: set[str] | None = None) -> Any:
    """The ``slug`` Hugo is given for the post or page at ``path``: the slug itself, or, when Hugo
    cannot build it (:func:`hugo_unsafe`), the file's name without ``.md`` (what Hugo uses for a post
    without a slug: :func:`_hugo_stem`, ``safe_component``) with every character Hugo would drop
    (:func:`hugo_path_text`) percent-encoded, cut to :data:`HUGO_PART_BYTES`, so that it is never unsafe either. The slug as
    stored then goes beside it as ``slug_original``, which import restores.

    ``taken``: the addresses (:func:`hugo_address`) of the section's posts or pages given before
    this one, to which this one's is added. A post whose address is taken — a slug another post has
    too, or has but for case, or but for characters Hugo drops (``Hello``, ``hello!``, ``hello``), or
    for a ``-`` or ``/`` it trims (``-hello``, ``hello/``) — was missing from the site, without a word: it
    gets the file's name as above (with ``-2``, ``-3``… while that is taken too), the first one keeps its
    slug. (A post without a slug, or with an empty one or one of nothing but ``-``, is built at its file's
    name, which then is taken.)"""
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    if not (isinstance(slug, str) and hugo_unsafe(slug)):
        own = hugo_address(slug if isinstance(slug, str) else "", stem)
        if taken is None or not isinstance(slug, str) or own not in taken:
            if taken is not None:
                taken.add(own)
            return slug
    safe = file_slug(path)
    given, n = safe, 1
    while taken is not None and hugo_address(given, stem) in taken:
        n += 1
        given = f"{safe}-{n}"
    if taken is not None:
        taken.add(hugo_address(given, stem))
    return given


def file_slug(path: str, trimmed: bool = True) -> str:
    """The ``slug`` made of the file's name at ``path`` that :func:`hugo_slug` gives when the stored one
    cannot be used (before a ``-2``, ``-3``… it may add while that is taken). A ``-`` at its ends, which Hugo
    trims, is percent-encoded when Hugo could not build it trimmed (:func:`hugo_unsafe`: ``-.-.md`` is
    ``%2D.%2D``, not ``.``); ``trimmed=False``: as release 0.2.0 gave it until 6 December, ends as they are."""
    stem = path.rsplit("/", 1)[-1].removesuffix(".md")
    # a character Hugo would drop is percent-encoded, which it keeps as it is: the file `!.md` (the
    # slug `..!`) is `%21` to it, not nothing, and `x_.!._.!._y.md` is not `x_.._.._y.md`'s page
    safe, size = "", 0
    for i, c in enumerate(stem):
        piece = c if _hugo_keeps(stem, i) else "".join(f"%{b:02X}" for b in c.encode())
        size += max(len(piece.encode()), len(piece.lower().encode()))  # hugo_unsafe counts it lower-cased
        if size > HUGO_PART_BYTES - 8:  # a file name of 200 bytes is up to 600 encoded (`🌲` is %F0%9F%8C%B2);
            break  # cut to what Hugo can write, with room for a `-2`, `-3`…
        safe += piece
    if trimmed and hugo_unsafe(safe):  # Hugo trims the `-` at its ends: the file `-.-.md` is `.` to it, the list page
        core = safe.strip("-")
        return f"{'%2D' * safe.index(core)}{core}{'%2D' * (len(safe) - len(core) - safe.index(core))}"
    return safe


def hugo_tags(tags: list[str], before: bool = False) -> list[str]:
    """The tags Hugo can build a page for (:func:`hugo_unsafe_tag`); when one is left out, the tags as
    stored go beside them as ``tags_original``, which import restores. ``before``: as release 0.2.0 gave
    them until 6 December (:func:`hugo_unsafe_tag_before`: it kept ``/\\x1c/``, which Hugo builds no page for)."""
    unsafe = hugo_unsafe_tag_before if before else hugo_unsafe_tag
    return [t for t in tags if not unsafe(t)]


def _text_stem(names: NameAllocator, slug: str | None, fallback: str) -> str:
    """A post's or page's file name without ``.md``: the slug made safe and cut to leave room for ``.md``
    under the allocator's cap, then given Hugo's rules (:func:`_hugo_stem`), so that the allocator has no
    more to cut. Cut after them, a slug of 194 letters and ``.enzzz`` became ``….en.md``, which Hugo reads
    as the English version of the post with the 194 letters as its slug: it built one of the two."""
    return _hugo_stem(safe_component(slug or "", fallback, names.max_component_bytes - len(".md")))


def post_path(names: NameAllocator, row_id: str, slug: str | None) -> str:
    stem = _text_stem(names, slug, f"post-{row_id}")  # clean and cut first, then add .md
    names.reserve(POSTS, *SSG_RESERVED)
    return names.allocate(POSTS, f"{stem}.md", f"post-{row_id}.md")


def page_path(names: NameAllocator, row_id: str, slug: str | None) -> str:
    stem = _text_stem(names, slug, f"page-{row_id}")
    names.reserve(PAGES, *SSG_RESERVED)
    return names.allocate(PAGES, f"{stem}.md", f"page-{row_id}.md")


def file_path(names: NameAllocator, row_id: str, filename: str | None, category: str | None) -> str:
    folder = f"{FILES}/{safe_component(category or 'uncategorized', 'uncategorized')}"
    return names.allocate(folder, keep_extension(filename or "", f"file-{row_id}"), f"file-{row_id}")


def is_text_page(path: str) -> bool:
    """A post or page (Markdown whose relative links point at media)."""
    return path.endswith(".md") and path.startswith((f"{POSTS}/", f"{PAGES}/"))


def is_media(path: str) -> bool:
    return path.startswith(f"{MEDIA}/")


# ---- members and their order ---------------------------------------------------------------------

class TextsReader(Protocol):
    """The texts object as it is being written (the catalog's spool): bytes read back by range."""

    def read(self, start: int, size: int) -> bytes: ...


@dataclass(slots=True)
class TextMember:
    """A member rendered by the catalog: its bytes are ``[start, start + size)`` of the export's
    texts object, written into ``texts`` as it was rendered (no member's bytes are held here)."""

    path: str
    kind: str
    source_id: str
    modified_at: datetime
    start: int
    size: int
    texts: TextsReader = field(repr=False, compare=False)

    @property
    def content_type(self) -> str:
        return text_content_type(self.path)

    @property
    def data(self) -> bytes:
        """Its bytes, read back from ``texts`` (checks and tests; the catalog never reads them)."""
        return self.texts.read(self.start, self.size)


@dataclass
class ObjectMember:
    """A member copied byte for byte from a source object (an image, a stored file)."""

    path: str
    kind: str
    source_id: str
    modified_at: datetime
    bucket: str
    key: str
    content_type: str
    declared_size: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    head: tuple[int, str] | None = None  # (size, ETag) from the catalog's HEAD


# The archive's order, by section; within a section, the catalog's order (the content source's).
ORDER = (README_PATH, "post", "page", INDEX_PATH, FEED_PATH, "media", "file")


def rank(path: str, kind: str) -> int:
    """Position of a member's section in :data:`ORDER` (special members by path, others by kind)."""
    return ORDER.index(path) if path in ORDER else ORDER.index(kind)


M = TypeVar("M", bound=TextMember | ObjectMember)


def in_archive_order(members: Iterable[M]) -> list[M]:
    return sorted(members, key=lambda m: rank(m.path, m.kind))  # stable: keeps the catalog's order


@dataclass(frozen=True)
class TextsObject:
    """Where the catalog stored the text members' bytes (each member's ``start`` and ``size``)."""

    bucket: str
    key: str
    etag: str


def snapshot_members(texts: Sequence[TextMember], objects: Sequence[ObjectMember],
                     stored: TextsObject) -> list[SnapshotMember]:
    """The snapshot's members in archive order (:data:`ORDER`): a text member is read from its byte
    range of the texts object (wherever it lies there), an object member from its source. Indexes are
    positions; no two members share a path, whatever the case."""
    return list(iter_snapshot_members(texts, objects, stored))


def iter_snapshot_members(texts: Sequence[TextMember], objects: Sequence[ObjectMember],
                          stored: TextsObject) -> Iterator[SnapshotMember]:
    """:func:`snapshot_members` one at a time (a big export's are written to the snapshot as they come,
    never all held as models); the paths are checked before the first is given."""
    every: list[TextMember | ObjectMember] = in_archive_order([*texts, *objects])
    for o in every:
        if isinstance(o, ObjectMember) and o.head is None:
            raise LayoutError(f"{o.path}: an object member without the HEAD that found it")
    check_unique(m.path for m in every)
    for index, m in enumerate(every):
        if isinstance(m, TextMember):
            yield SnapshotMember(
                index=index, path=m.path, kind=m.kind, bucket=stored.bucket, key=stored.key,  # type: ignore[arg-type]
                start=m.start, size=m.size, etag=stored.etag, content_type=m.content_type,
                source_id=m.source_id, modified_at=m.modified_at, level=TEXT_LEVEL,
            )
            continue
        obj = m
        assert obj.head is not None
        size, etag = obj.head
        yield SnapshotMember(
            index=index, path=obj.path, kind=obj.kind, bucket=obj.bucket, key=obj.key,  # type: ignore[arg-type]
            size=size, etag=etag, content_type=obj.content_type, source_id=obj.source_id,
            modified_at=obj.modified_at, level=level_for(obj.content_type, obj.path), meta=obj.meta,
        )


def check_unique(paths: Iterable[str]) -> None:
    """Raise :class:`LayoutError` when two paths (or a path and a generated member) are the same
    on a case-insensitive file system."""
    seen = {same_file_key(p): p for p in GENERATED_PATHS}
    for path in paths:
        if (other := seen.get(same_file_key(path))) is not None:
            raise LayoutError(f"{path!r} and {other!r} would be the same file in the archive")
        seen[same_file_key(path)] = path


# ---- the members the assembler writes after the snapshot's ---------------------------------------

class Record(Protocol):
    """What manifest.json and errors.json read of a member record (the assembler's MemberRecord)."""

    @property
    def index(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def content_type(self) -> str: ...


COUNTED = {"post": "posts", "page": "pages", "media": "images", "file": "files"}


def held_counts(snapshot: Snapshot, records: Iterable[Record]) -> dict[str, int]:
    """The header's counts, lowered by members skipped while assembling: what the archive really holds."""
    counts = dict(snapshot.header.item_counts)
    for r in records:
        kind = COUNTED.get(snapshot.members[r.index].kind) if r.index < len(snapshot.members) else None
        if r.status == "skipped" and kind in counts:
            counts[kind] -= 1
    return counts


def error_count(snapshot: Snapshot, records: Iterable[Record]) -> int:
    return len(snapshot.errors) + sum(1 for r in records if r.status == "skipped")


def utc_text(t: datetime) -> str:
    """``2026-11-29T10:30:00Z``: the export's time as the archive writes it (manifest.json's
    ``created_at``; its first ten characters name the archive's day, README.md shows both) — ISO 8601
    in UTC with a four-digit year. ``strftime("%Y")`` writes year 5 as ``5`` on glibc, and a request's
    time is its publisher's clock (any year from 1): ``5-03-01T12:00:00Z`` is no ISO 8601."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def manifest_json(snapshot: Snapshot, records: Sequence[Record]) -> bytes:
    """Every member written so far (not the generated ones) with its size and SHA-256."""
    h = snapshot.header
    doc = {
        "export_id": h.export_id, "tenant_id": h.tenant_id, "mode": h.mode, "username": h.username,
        "created_at": utc_text(h.created_at), "generator": h.generator,
        "format_version": 1, "item_counts": held_counts(snapshot, records),
        "members": [manifest_entry(snapshot, r) for r in records if r.status == "ok"],
        "notes": f"Checksums are SHA-256 of each file's bytes. {MANIFEST_PATH} and {ERRORS_PATH} are not listed. "
                 f"item_counts are what this archive holds; {ERRORS_PATH} lists what it does not.",
    }
    return jsontext.pretty(doc)


def manifest_entry(snapshot: Snapshot, r: Record) -> dict[str, Any]:
    """One member's entry in manifest.json (also streamed entry by entry by the assembler's spill)."""
    entry: dict[str, Any] = {"path": r.path, "size": r.size, "sha256": r.sha256, "content_type": r.content_type,
                             "source_id": r.source_id}
    meta = snapshot.members[r.index].meta if r.index < len(snapshot.members) else None
    if meta:
        entry["metadata"] = meta
    return entry


def errors_json(snapshot: Snapshot, records: Sequence[Record]) -> bytes:
    """What the catalog could not include, then what the assembler skipped, with the reason."""
    errors: list[dict[str, str | None]] = [
        {"source_id": e.source_id, "path": e.path, "reason": e.reason} for e in snapshot.errors]
    errors += [{"source_id": r.source_id, "path": r.path, "reason": r.reason}
               for r in records if r.status == "skipped"]
    return jsontext.pretty(errors)


@dataclass(frozen=True)
class Generated:
    """A member the assembler renders from the snapshot and the records of the members before it."""

    path: str
    render: Callable[[Snapshot, Sequence[Record]], bytes]
    content_type: str = JSON_TYPE
    level: int = TEXT_LEVEL

    @staticmethod
    def modified_at(snapshot: Snapshot) -> datetime:
        return snapshot.header.created_at


GENERATED: tuple[Generated, ...] = (Generated(MANIFEST_PATH, manifest_json), Generated(ERRORS_PATH, errors_json))
GENERATED_PATHS = tuple(g.path for g in GENERATED)


# ---- what README.md says is inside ---------------------------------------------------------------

README_LISTING = {
    "blog": ("posts/{slug}.md      one file per post: YAML front matter (title, description, tags,\n"
             "                     status, dates, featured image) then the Markdown body\n"
             "pages/{slug}.md      one file per page, same format\n"
             "media/{filename}     your images, byte for byte as uploaded\n"
             "index.json           every post, page and image with all its details (alt text, original\n"
             "                     file name, original URL, type, upload time) and where it is in here\n"
             "feed.json            your posts as a JSON Feed 1.1 (jsonfeed.org), for feed readers and tools\n"),
    "storage": ("files/{category}/{filename}   every stored file, byte for byte as uploaded\n"
                "index.json           every file with all its details (original name, type, category,\n"
                "                     product, upload time) and where it is in here\n"),
}


def readme_listing(mode: str, include_images: bool = True) -> str:
    """The "What is inside" block of README.md: every kind of member and what it holds. A blog export
    without images holds no media/: its listing names none (it said "your images, byte for byte")."""
    listed = README_LISTING[mode]
    if not include_images:
        listed = "".join(line for line in listed.splitlines(keepends=True) if not line.startswith("media/"))
    return (f"{README_PATH}            this file\n{listed}"
            f"{MANIFEST_PATH}        every file in this archive with its size and SHA-256 checksum\n"
            f"{ERRORS_PATH}          everything that could NOT be included, and why (an empty list when nothing)\n")
