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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from shared.archive.mdlinks import Kind, rewrite_links


@dataclass(frozen=True)
class MediaRef:
    source_id: str
    key: str
    url: str | None
    path: str | None  # in the archive, e.g. "media/cat.jpg"; None when the file is not in it


class OwnMedia:
    def __init__(self, refs: Iterable[MediaRef]) -> None:
        self._by: dict[str, MediaRef] = {}
        for ref in refs:
            for name in (ref.key, ref.url):
                if name:
                    self._by.setdefault(name, ref)

    def lookup(self, link: str) -> tuple[MediaRef, str] | None:
        """(the media row, the part of ``link`` after the row's URL or key), or None: not theirs."""
        link = link.strip()
        for base in (link, link.split("#", 1)[0], link.split("#", 1)[0].split("?", 1)[0]):
            for candidate in (base, unquote(base)):
                if candidate and (ref := self._by.get(candidate)):
                    return ref, link[len(base):]
        return None


def relative_link(from_file: str, target: str) -> str:
    """``posts/a.md`` → ``media/b c.jpg`` gives ``../media/b%20c.jpg``: safe in Markdown and HTML alike."""
    return quote(_relpath(target, posixpath.dirname(from_file)), safe="/-._~")


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
    """(body with links to archived media made file-relative, rewritten links, links left alone)."""
    rewritten: list[dict[str, str]] = []
    left: list[dict[str, str]] = []

    def resolve(url: str, kind: Kind) -> str | None:
        hit = own.lookup(url)
        if hit is None:
            return None
        ref, _ = hit
        if ref.path is None:
            left.append({"url": url, "media_id": ref.source_id, "reason": "the image is not in this archive"})
            return None
        rewritten.append({"url": url, "path": ref.path})
        return relative_link(md_path, ref.path)

    new_body, _ = rewrite_links(body, resolve)
    return new_body, rewritten, left


def import_body(body: str, md_path: str, links: list[dict[str, str]], url_for: Callable[[str, str], str | None]) -> str:
    """Undo :func:`export_body`: the recorded links, in order, get ``url_for(archive_path, original_url)``."""
    pending = deque(links)  # taken from the front: list.pop(0) moved the rest of the list each time

    def resolve(url: str, kind: Kind) -> str | None:
        if not pending or (url != unquote(relative_link(md_path, pending[0]["path"])) and \
                url != relative_link(md_path, pending[0]["path"])):
            return None
        link = pending.popleft()
        new = url_for(link["path"], link["url"])
        return None if new is None else escape_for(kind, new)

    new_body, _ = rewrite_links(body, resolve)
    return new_body
