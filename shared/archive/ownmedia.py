"""The person's own media as links see it: which URLs and object keys are theirs, and where each
file sits in the archive. Export rewrites those links to file-relative paths; import turns them
back into URLs of the tenant the archive is restored into.

A link matches a media row when its destination equals the row's URL or object key, or does after
dropping a query string or fragment (``…/cat.jpg?w=600`` is the same file at another size). The
original URL of every rewritten link is kept (in index.json), so import can restore it exactly,
query string included.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from shared.archive.mdlinks import Kind, Rewrite, rewrite_links

# Bodies longer than this (in characters: 2 MiB of ASCII text, some 350,000 words) are exported
# exactly as stored, their links not rewritten. The link scan costs ~0.4–2.3 s and 17–62 bytes of
# memory per character of body (a body of nothing but links, code spans or tags is the worst case):
# unbounded, one tenant's 100 MB post took the shared catalog 166 s and ~1 GB per attempt. Up to
# the limit a post costs at most ~5 s and ~130 MB; past it a copy or two of its bytes.
REWRITE_LIMIT = 2 * 1024 * 1024
NOT_REWRITTEN = (f"the body is longer than {REWRITE_LIMIT:,} characters: it is exported exactly as stored, "
                 "its links keep their URLs")


@dataclass(frozen=True)
class MediaRef:
    source_id: str
    key: str
    url: str | None
    path: str | None  # in the archive, e.g. "media/cat.jpg"; None when the file is not in it


def names_a_file(name: str) -> bool:
    """A media row's URL or key can be a link's: its path, without query string or fragment, ends
    in a file name. A row whose URL was ``#``, ``/`` or ``.`` (a platform's placeholder) made every
    ``[top](#)`` or ``[home](/)`` link of the tenant's posts point at that image."""
    base = name.strip().split("#", 1)[0].split("?", 1)[0]
    return base.rsplit("/", 1)[-1] not in ("", ".", "..")


class OwnMedia:
    def __init__(self, refs: Iterable[MediaRef], every_name: bool = False) -> None:
        """``every_name``: a row whose URL or key names no file is matched too, as release 0.1.0 matched
        them until 3 December (:func:`names_a_file`): what verify holds such an archive's
        ``featured_image`` to."""
        self._by: dict[str, MediaRef] = {}
        for ref in refs:
            for name in (ref.key, ref.url):
                if name and (every_name or names_a_file(name)):
                    self._by.setdefault(name, ref)

    def __bool__(self) -> bool:
        """False when no link can be theirs (no media, or an export without images)."""
        return bool(self._by)

    def lookup(self, link: object) -> tuple[MediaRef, str] | None:
        """(the media row, the part of ``link`` after the row's URL or key), or None: not theirs. A value
        that is not text (a platform's ``featured_image`` holding its media row's id as a number) is no
        link: it failed the tenant's every export here (AttributeError on ``strip``)."""
        if not isinstance(link, str):
            return None
        link = link.strip()
        for base in (link, link.split("#", 1)[0], link.split("#", 1)[0].split("?", 1)[0]):
            for candidate in (base, unquote(base)):
                if candidate and (ref := self._by.get(candidate)):
                    return ref, link[len(base):]
        return None


def relative_link(from_file: str, target: str) -> str:
    """``posts/a.md`` → ``media/b c.jpg`` gives ``../media/b%20c.jpg``: safe in Markdown and HTML alike.
    A lone surrogate (no name an export makes holds one; an archive's index.json can spell one,
    ``"\\ud800"``) is quoted as its bytes would be, not a UnicodeEncodeError: verify ended in a
    traceback on such a path in a post's ``media_links``."""
    return quote(_relpath(target, posixpath.dirname(from_file)), safe="/-._~", errors="surrogatepass")


def _relpath(path: str, start: str) -> str:
    """``posixpath.relpath`` for archive paths, computed without the working directory (relpath calls
    ``os.getcwd()`` twice per link: most of a small export's link rewriting, and cwd has no say here)."""
    start_list = [x for x in posixpath.normpath("/" + start).split("/") if x]
    path_list = [x for x in posixpath.normpath("/" + path).split("/") if x]
    i = 0
    while i < min(len(start_list), len(path_list)) and start_list[i] == path_list[i]:
        i += 1
    rel = [".."] * (len(start_list) - i) + path_list[i:]
    return "/".join(rel) if rel else "."


def escape_for(kind: Kind, url: str) -> str:
    if kind == "html":
        return html.escape(url, quote=True)
    if kind in ("inline", "reference") and any(c in url for c in " <>()\n\t"):
        return quote(url, safe="/-._~!$&'*+,;=:@%?#")
    return url


def export_body(body: str, md_path: str, own: OwnMedia) -> tuple[str, list[dict[str, str]], list[dict[str, str]]]:
    """(body with links to archived media made file-relative, rewritten links, links left alone);
    a body longer than :data:`REWRITE_LIMIT` comes back as it is (see :func:`export_bodies`)."""
    (new_body,), rewritten, left = export_bodies(body, (md_path,), own)
    return new_body, rewritten, left


def rewrites(body: str) -> bool:
    """Whether :func:`export_bodies` rewrites the links of ``body`` (it is not over the limit)."""
    return len(body) <= REWRITE_LIMIT


def scan_limit(md_path: str, links: Any) -> int:
    """The longest body (in characters) of the file at ``md_path`` in which an export can have
    rewritten the links ``links`` (its index.json entry's ``media_links``): :data:`REWRITE_LIMIT`, the
    body as stored, plus at most each rewritten link's relative path, which replaced a URL of at
    least one character. A longer body is one whose links the export left as they were: verify and
    import scan none of its links (the scan costs up to ~60 bytes of memory and ~3 µs a character:
    64 MiB of ``[a]: b`` lines, which deflate to a few kilobytes, would take minutes and gigabytes),
    and one with ``links`` an export never wrote. Entries that are not ``{"path": text}`` add nothing."""
    extra = 0
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and isinstance(path := link.get("path"), str):
            extra += len(relative_link(md_path, path))
    return REWRITE_LIMIT + extra


def links_past_scan(md_path: str, body: str, links: Any) -> str | None:
    """Why a body cannot be what an export wrote, when index.json lists links rewritten in it
    (``links``) past :func:`scan_limit`: verify reports it, import refuses in this line. None otherwise."""
    if not links or len(body) <= (most := scan_limit(md_path, links)):
        return None
    return (f"{md_path}: its body is {len(body):,} characters, over the {most:,} an export rewrites links in, "
            "yet index.json lists links rewritten in it (media_links)")


def export_bodies(body: str, md_paths: Sequence[str], own: OwnMedia) -> tuple[list[str], list[dict[str, str]],
                                                                               list[dict[str, str]]]:
    """:func:`export_body` for the same body in several files (a post's Markdown file and feed.json)
    from one scan of its links: the scan is nearly all of the cost (~1 s and ~25 bytes per byte of
    a body full of links), and only the relative paths differ between the files. The rewritten and
    left links are the first file's (the other files' are the same links). Without media of the
    person's (an export without images) no link can be rewritten: no scan at all; nor in a body
    longer than :data:`REWRITE_LIMIT` (the caller says so: :func:`rewrites`)."""
    if not own or not rewrites(body):
        return [body for _ in md_paths], [], []
    rewritten: list[dict[str, Any]] = []
    left: list[dict[str, str]] = []
    order: list[dict[str, Any] | str] = []  # the rewritten links and the body's other links, in order

    def resolve(url: str, kind: Kind) -> str | None:
        hit = own.lookup(url)
        if hit is None or hit[0].path is None:
            if hit is not None:
                left.append({"url": url, "media_id": hit[0].source_id, "reason": "the image is not in this archive"})
            order.append(url)
            return None
        entry = {"url": url, "path": hit[0].path}
        rewritten.append(entry)
        order.append(entry)
        return relative_link(md_paths[0], entry["path"])

    first, done = rewrite_links(body, resolve)
    if rewritten:
        _count_lookalikes(order, rewritten, md_paths[0])
    return [first, *(_splice(body, done, [relative_link(p, r["path"]) for r in rewritten]) for p in md_paths[1:])], \
        rewritten, left


def _count_lookalikes(order: list[dict[str, Any] | str], rewritten: list[dict[str, Any]], md_path: str) -> None:
    """Mark each rewritten link with how many links the person wrote by hand ahead of it (after the
    one before it) that read exactly as it does once rewritten (their own ``../media/cat.jpg``):
    :func:`import_body` matches recorded links in order by that text, so it restored theirs and left
    the export's relative. Only then is ``skip`` there: every other index entry stays as it was."""
    at, skip = 0, 0
    for item in order:
        if isinstance(item, dict):
            if skip:
                item["skip"] = skip
            at, skip = at + 1, 0
        elif at < len(rewritten):
            rel = relative_link(md_path, rewritten[at]["path"])
            skip += item in (rel, unquote(rel))


def _splice(body: str, done: list[Rewrite], replacements: list[str]) -> str:
    """``body`` with each rewrite's span replaced by the replacement at its place in the list."""
    out, last = [], 0
    for rewrite, new in zip(done, replacements, strict=True):
        out += [body[last:rewrite.start], new]
        last = rewrite.end
    out.append(body[last:])
    return "".join(out)


def _skip(link: dict[str, Any]) -> int:
    n = link.get("skip", 0)
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


# The first release whose export finds links as Markdown reads a line (CR LF and CR end one; a
# definition's line Markdown reads as a paragraph is text): archives an earlier one made recorded the
# URLs it rewrote by the rules before (mdlinks ``before_markdown_lines``), so they are read by those.
MARKDOWN_LINES_SINCE = (0, 2, 0)
_GENERATOR = re.compile(r"grove-export (\d{1,9})\.(\d{1,9})\.(\d{1,9})")


def read_as_before(generator: object) -> bool:
    """Whether an archive whose manifest says ``generator`` (``grove-export 0.1.0``) was made by a
    release before :data:`MARKDOWN_LINES_SINCE`, so its posts' links are found as that release found
    them. Each reading restores exactly what its release wrote; neither can be told from the body
    alone (the same bytes come out of both from different originals, review rvc). A generator this
    does not know (another tool's, none) is read by today's rules."""
    release = release_of(generator)
    return release is not None and release < MARKDOWN_LINES_SINCE


def release_of(generator: object) -> tuple[int, ...] | None:
    """The release of Grove Export that made an archive whose manifest says ``generator``
    (``grove-export 0.1.0``: (0, 1, 0)), or None for a generator this does not know (another tool's, none)."""
    m = _GENERATOR.fullmatch(generator) if isinstance(generator, str) else None
    return None if m is None else tuple(int(g) for g in m.groups())


def import_body(body: str, md_path: str, links: list[dict[str, str]], url_for: Callable[[str, str], str | None],
                before_markdown_lines: bool = False) -> str:
    """Undo :func:`export_body`: the recorded links, in order, get ``url_for(archive_path, original_url)``,
    the links found as the archive's release found them (:func:`read_as_before`)."""
    if not links:
        return body  # nothing to restore (no links of theirs, or a body over the limit): no scan
    return _import_body(body, md_path, links, url_for, before_markdown_lines)


def _import_body(body: str, md_path: str, links: list[dict[str, str]], url_for: Callable[[str, str], str | None],
                 before_markdown_lines: bool) -> str:
    """:func:`import_body` with links found as ``mdlinks.find_links`` is told."""
    pending = deque(links)  # taken from the front: list.pop(0) moved the rest of the list each time
    skipped = [0]  # look-alikes the person wrote by hand passed over ahead of pending[0] (its `skip`)

    def resolve(url: str, kind: Kind) -> str | None:
        if not pending or (url != unquote(relative_link(md_path, pending[0]["path"])) and \
                url != relative_link(md_path, pending[0]["path"])):
            return None
        if skipped[0] < _skip(pending[0]):
            skipped[0] += 1
            return None
        skipped[0] = 0
        link = pending.popleft()
        new = url_for(link["path"], link["url"])
        return None if new is None else escape_for(kind, new)

    new_body, _ = rewrite_links(body, resolve, before_markdown_lines=before_markdown_lines)
    return new_body
