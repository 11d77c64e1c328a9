"""Find and rewrite link destinations in a Markdown body without touching anything else.

A careful scanner rather than a Markdown parser: a parser's output loses the source bytes, and the
rule here is that the body changes only inside the destinations we replace. What it finds, outside
code: inline links and images (`[t](url "title")`, `![a](<url>)`), reference definitions
(`[id]: url`) and the `src`/`href` of HTML `<img>` and `<a>` tags. What counts as code is chosen
generously — a fence at any indentation or after list/quote markers, an indented block after a
blank line, a backtick code span, `<pre>`/`<code>` elements — because mistaking text for code only
leaves a link unrewritten, while mistaking code for text would change code. A property test holds
the result to markdown-it-py's reading of the same body.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["inline", "reference", "html"]

_PREFIX = r"(?:[ \t>]|[-+*][ \t]|\d{1,9}[.)][ \t])*"
_FENCE_OPEN = re.compile(rf"^{_PREFIX}(`{{3,}}|~{{3,}})(.*)$")
_INTERRUPTS = re.compile(r" {0,3}(?:#{1,6}(?:[ \t]|$)|[-+*][ \t]+\S|1[.)][ \t]+\S|(?:[-*_][ \t]*){3,}$)")
_BLOCK_TAGS = ("address|article|aside|blockquote|body|details|dialog|dd|div|dl|dt|fieldset|figcaption|figure|footer|"
               "form|h[1-6]|header|hr|li|main|nav|ol|p|section|summary|table|tbody|td|tfoot|th|thead|tr|ul")
_HTML_BLOCK = re.compile(rf" {{0,3}}</?(?:{_BLOCK_TAGS})(?:[\s/>]|$)", re.IGNORECASE)  # may interrupt a paragraph
_THEMATIC = re.compile(r" {0,3}(?:[-*_=][ \t]*){3,}$")
_LIST_ITEM = re.compile(r"( *)(?:[-+*]|\d{1,9}[.)])( {1,4})(?=\S)")
_HTML_START = re.compile(r" {0,3}<")
_HEADING = re.compile(r" {0,3}#{1,6}(?:[ \t]|$)")
_REF_DEF = re.compile(r" {0,3}\[(?:[^\]\\\n]|\\.){1,999}\]:[ \t]*(?:\n[ \t]*)?")
_HTML_TAG = re.compile(r"<(img|a)\b((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>", re.IGNORECASE)
# A tag's src or href (groups 1 and 2); the other alternatives match any other attribute with its value,
# or a quoted string, whole, so a `src=…` written inside another attribute's value (alt text quoting
# markup: `alt="src=https://…"`) is that value's text, never taken for the tag's own src. An attribute
# name starts after a space, a quote or a slash only: tried at every character of a long run of them,
# the scan for its `=` was quadratic.
_HTML_ATTR = re.compile(r"""(?<![\w-])(src|href)[ \t\n]*=[ \t\n]*("[^"]*"|'[^']*'|[^\s"'=<>`]+)"""
                        r"""|(?<![^\s"'/])[^\s"'=<>`/]+[ \t\n]*=[ \t\n]*(?:"[^"]*"|'[^']*'|[^\s"'<>`]+)|"[^"]*"|'[^']*'""",
                        re.IGNORECASE)
_PRE = re.compile(r"<(pre|code|script|style|textarea)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True)
class LinkSpan:
    """A destination at ``body[start:end]``; ``url`` is what it means (HTML entities decoded)."""

    start: int
    end: int
    url: str
    kind: Kind


@dataclass(frozen=True)
class Rewrite:
    start: int  # in the original body
    end: int
    original: str  # the bytes that were there
    replacement: str
    url: str  # the destination it meant


def _indent(line: str) -> int:
    cols = 0
    for ch in line:
        if ch == " ":
            cols += 1
        elif ch == "\t":
            cols += 4 - cols % 4
        else:
            break
    return cols


def code_ranges(body: str) -> list[tuple[int, int]]:
    """Character ranges that are, or might be, code (fenced, indented, code spans, pre/code elements)."""
    ranges: list[tuple[int, int]] = []
    text_runs: list[tuple[int, int]] = []  # paragraphs-ish runs between blank lines and blocks
    pos, fence, prev_blank, prev_code, prev_para, run_quoted, run_start = 0, "", True, False, False, False, -1
    lists: list[int] = []  # content columns of the open list items
    for line in body.splitlines(keepends=True):
        end = pos + len(line)
        content = line.rstrip("\r\n")
        blank = not content.strip()
        is_code, fence_line = False, bool(fence)
        if fence:
            is_code = True
            m = _FENCE_OPEN.match(content)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not m.group(2).strip():
                fence = ""
        elif (m := _FENCE_OPEN.match(content)) and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence, is_code, fence_line = m.group(1), True, True
            while lists and _indent(content) < lists[-1]:
                lists.pop()  # a fence less indented than the item's content has left the item
        elif not blank:
            ind = _indent(content)
            lazy = prev_para and not _INTERRUPTS.match(content)  # a paragraph's lazy continuation line
            while lists and ind < lists[-1] and (prev_blank or not lazy):
                lists.pop()  # a less indented line that does not continue a paragraph has left the item
            is_code = ind >= (lists[-1] if lists else 0) + 4 and not prev_para
            if not is_code and (item := _LIST_ITEM.match(content)):
                lists = [col for col in lists if col <= ind] + [item.end()]
        elif prev_code:
            is_code = True
        quote = content.lstrip(" ").startswith(">")
        # A run (paragraph) surely ends before these; where unsure, runs go on: a run too long can
        # only make more code (a link left alone), a run too short could miss a code span.
        # a quote interrupts a plain paragraph; inside a quoted one (lazy lines included) it continues it
        interrupts = bool(_INTERRUPTS.match(content) or _HTML_BLOCK.match(content)) or (quote and not run_quoted)
        if is_code or blank or interrupts:
            if run_start >= 0:
                text_runs.append((run_start, pos))
                run_start = -1
            if is_code:
                ranges.append((pos, end))
            elif not blank:
                run_start = pos
        elif run_start < 0:
            run_start = pos
        if run_start >= 0 and (_HEADING.match(content) or _THEMATIC.match(content)):  # one line each
            text_runs.append((run_start, end))
            run_start = -1
        # after a heading, a fence or an HTML block (`</pre>`), an indented line is code, not a continuation
        # (and after a reference definition: treating one as a paragraph could let code pass as text)
        prev_para = not (blank or is_code or fence_line or _HEADING.match(content) or _HTML_START.match(content)
                         or _REF_DEF.match(content))
        if run_start == pos:
            run_quoted = quote
        prev_blank, prev_code, pos = blank, is_code, end
    if run_start >= 0:
        text_runs.append((run_start, pos))
    for start, stop in text_runs:
        ranges += _code_spans(body, start, stop)
    ranges += _elements(body)
    ranges += _comments(body)
    return _merge(ranges)


_PRE_OPEN = re.compile(r"<(pre|code|script|style|textarea)\b", re.IGNORECASE)


def _elements(body: str) -> list[tuple[int, int]]:
    """``_PRE.finditer``'s matches, without searching to the end of the body again for every opener
    that has no closer (`<pre>` repeated): once an opener spelled ``<PrE`` has none, no later one
    spelled the same has, so each spelling fails at most once."""
    out, pos, unclosed = [], 0, set()
    while (m := _PRE_OPEN.search(body, pos)) is not None:
        if m.group(1) not in unclosed:
            if (full := _PRE.match(body, m.start())) is not None:
                out.append((full.start(), full.end()))
                pos = full.end()
                continue
            unclosed.add(m.group(1))
        pos = m.start() + 1
    return out


def _comments(body: str) -> list[tuple[int, int]]:
    """``_COMMENT.finditer``'s matches: the first `<!--` without a `-->` after it ends the search (the
    regex tried every later `<!--` against the rest of the body, quadratic in `<!--` repeated)."""
    out, pos = [], 0
    while (start := body.find("<!--", pos)) >= 0 and (close := body.find("-->", start + 4)) >= 0:
        out.append((start, close + 3))
        pos = close + 3
    return out


def _code_spans(body: str, start: int, stop: int) -> list[tuple[int, int]]:
    """Backtick code spans inside one run of text; an unmatched run of backticks is literal."""
    # The closing run of an opener of length n is the next run of exactly n backticks. Looked up here
    # rather than searched for: every opener without one searched to the end of the run of text,
    # O(n^1.5) for runs of 1, 2, 3, ... backticks.
    runs: dict[int, list[int]] = {}  # length -> positions of the (whole) runs of backticks that long
    for m in _BACKTICKS.finditer(body, start, stop):
        runs.setdefault(m.end() - m.start(), []).append(m.start())
    spans, i = [], start
    while i < stop:
        j = body.find("`", i, stop)
        if j < 0:
            break
        k = j
        while k < stop and body[k] == "`":
            k += 1
        n = k - j
        backslashes = 0
        while j - backslashes - 1 >= start and body[j - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2:  # an escaped backtick opens nothing, but the rest of the run may
            i = j + 1
            continue
        close = _closing_run(runs, k, n)
        if close < 0:
            i = k
            continue
        spans.append((j, close + n))
        i = close + n
    return spans


def _closing_run(runs: dict[int, list[int]], i: int, n: int) -> int:
    """Where the first run of exactly ``n`` backticks at or after ``i`` starts (``i`` ends a run), or -1."""
    at = runs.get(n, [])
    k = bisect_left(at, i)
    return at[k] if k < len(at) else -1


_BACKTICKS = re.compile("`+")


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _inside(ranges: list[tuple[int, int]], start: int, end: int, ends: list[int] | None = None) -> bool:
    """Whether ``[start, end)`` overlaps one of ``ranges`` (sorted and disjoint, as code_ranges gives them).

    By bisection: trying every range for every link was quadratic in a body of many code spans and
    links. ``ends`` (each range's end, in order) saves building that list on every call.
    """
    if ends is None:
        ends = [e for _, e in ranges]
    k = bisect_right(ends, start)  # the first range that ends after start; those before end too early
    return k < len(ranges) and ranges[k][0] < end


def _destination(body: str, i: int) -> tuple[int, int, str] | None:
    """The link destination starting at ``body[i]`` (after optional spaces): (start, end, url)."""
    return _Destinations(body).at(i)


_DEST_STOP = re.compile(r"[\\()\s\x00-\x1f]")  # what a bare destination's walk acts on (\s is str.isspace)


class _Destinations:
    """:func:`_destination` for many starts in one body, in time linear in the body.

    A bare destination runs to the first space or control character, or to the first `)` that closes
    nothing, and must have balanced parentheses. Walking that from every `(` of `[a](` repeated made
    the scan quadratic. Instead one walk over a run (up to the space or control character that ends
    it, ignoring the `)` rule) records each parenthesis with its nesting level; the destination from
    any start inside the run then ends at the first `)` after it at the start's own level, found by
    bisection, or at the run's end when the levels there agree.
    """

    def __init__(self, body: str) -> None:
        self.body = body
        self._start, self._stop, self._end_level = -1, -1, 0
        self._parens: list[int] = []  # positions of the `(`/`)` that count, in the walk from _start
        self._levels: list[int] = []  # nesting level just before each
        self._closes: list[int] = []  # per paren: the first `)` at or after it at its level, or -1

    def at(self, i: int) -> tuple[int, int, str] | None:
        body = self.body
        while i < len(body) and body[i] in " \t":
            i += 1
        if i < len(body) and body[i] == "\n":
            i += 1
            while i < len(body) and body[i] in " \t":
                i += 1
        if i < len(body) and body[i] == "<":
            j = i + 1
            while j < len(body) and body[j] not in "<>\n":
                j += 2 if body[j] == "\\" else 1
            if j < len(body) and body[j] == ">":
                return i + 1, j, body[i + 1:j]
            return None
        if not (self._start <= i <= self._stop and self._aligned(i)):
            self._walk(i)
        k = bisect_left(self._parens, i)
        level, close = (self._levels[k], self._closes[k]) if k < len(self._parens) else (self._end_level, -1)
        if close >= 0:
            j = close  # a `)` at depth 0 ends it
        elif self._end_level == level:
            j = self._stop
        else:
            return None  # parentheses left open
        if j == i:
            return None
        return i, j, body[i:j]

    def _aligned(self, i: int) -> bool:
        """Whether the walk from _start steps on ``i`` rather than over it (as the second character of
        a backslash escape): then the walk from ``i`` is the rest of it."""
        body, count = self.body, 0
        while i - count - 1 >= self._start and body[i - count - 1] == "\\":
            count += 1
        return count % 2 == 0 or i >= len(body) or body[i].isspace()

    def _walk(self, i: int) -> None:
        body, n = self.body, len(self.body)
        parens: list[int] = []
        levels: list[int] = []
        j, depth = i, 0
        while (m := _DEST_STOP.search(body, j)) is not None:
            j = m.start()
            ch = body[j]
            if ch == "\\":
                j += 2 if j + 1 < n and not body[j + 1].isspace() else 1
                continue
            if ch == "(" or ch == ")":
                parens.append(j)
                levels.append(depth)
                depth += 1 if ch == "(" else -1
                j += 1
                continue
            break  # a space or control character ends the run
        else:
            j = n
        closes = [-1] * len(parens)
        nearest: dict[int, int] = {}
        for k in range(len(parens) - 1, -1, -1):
            if body[parens[k]] == ")":
                nearest[levels[k]] = parens[k]
            closes[k] = nearest.get(levels[k], -1)
        self._start, self._stop, self._end_level = i, j, depth
        self._parens, self._levels, self._closes = parens, levels, closes


_AUTOLINK_OR_TAG = re.compile(
    r"<(?:[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*"
    r"|[A-Za-z][A-Za-z0-9-]*(?:\s+[A-Za-z_:][\w.:-]*(?:\s*=\s*(?:[^\s\"'=<>`]+|'[^']*'|\"[^\"]*\"))?)*\s*/?"
    r"|/[A-Za-z][A-Za-z0-9-]*\s*)>")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


_SPECIAL = re.compile(r"[\\\n<\[\]]")  # what _inline_links acts on: escapes, line ends, `<`, brackets


def _inline_links(body: str, code: list[tuple[int, int]], titles: list[tuple[int, int]] | None = None) -> list[LinkSpan]:
    """CommonMark's bracket matching, enough to know which `](` close a real link text: brackets
    balance, escapes and code/HTML/autolinks hide brackets, and a link inside a link is not one.
    ``titles`` gets the range after each destination, its title's (text, never HTML)."""
    found: list[LinkSpan] = []
    stack: list[list[Any]] = []  # [position, active]
    settled = 0  # stack[:settled] holds no active opener that is not an image (see below)
    dests = _Destinations(body)
    code_ends = [e for _, e in code]
    code_at = {start: end for start, end in code}
    code_starts = sorted(code_at)
    ci, i, n = 0, 0, len(body)
    while i < n:
        # Jump to the next character that can matter (or the next code span): the same positions a
        # character-by-character walk would act on, without a Python step for every other character.
        special = _SPECIAL.search(body, i)
        nxt = special.start() if special else n
        while ci < len(code_starts) and code_starts[ci] < i:
            ci += 1
        if ci < len(code_starts) and code_starts[ci] <= nxt:
            i = code_starts[ci]
        elif special is None:
            break
        else:
            i = nxt
        if i in code_at:
            i = max(code_at[i], i + 1)
            continue
        ch = body[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "\n" and _BLANK_LINE.match(body, i):
            stack.clear()  # a paragraph ends: no link text spans it
            settled = 0
        elif ch == "<" and (m := _AUTOLINK_OR_TAG.match(body, i)):
            i = m.end()
            continue
        elif ch == "[":
            stack.append([i, True])
        elif ch == "]" and stack:
            start, active = stack.pop()
            settled = min(settled, len(stack))
            if active and body[i + 1:i + 2] == "(" and (tail := _inline_tail(body, i + 2, dests)) is not None:
                dest_start, dest_end, url, end = tail
                if not _inside(code, start, end, code_ends):
                    found.append(LinkSpan(dest_start, dest_end, url, "inline"))
                    if titles is not None:
                        titles.append((dest_end, end))
                if not _is_image(body, start):
                    # Links do not contain links (images may). The openers below `settled` were
                    # deactivated by an earlier link already: walking the whole stack for every link
                    # was quadratic in `[[[…[a](b)[a](b)…`.
                    for opener in stack[settled:]:
                        if not _is_image(body, opener[0]):
                            opener[1] = False
                    settled = len(stack)
                i = end
                continue
        i += 1
    return found


def _is_image(body: str, bracket: int) -> bool:
    return bracket > 0 and body[bracket - 1] == "!" and not _escaped(body, bracket - 1)


def _escaped(body: str, at: int) -> bool:
    count = 0
    while at - count - 1 >= 0 and body[at - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _inline_tail(body: str, i: int, dests: _Destinations | None = None) -> tuple[int, int, str, int] | None:
    """After `](`: destination, optional title, `)`. Returns (dest start, dest end, url, end after `)`)."""
    j = _skip_space(body, i)
    if j < len(body) and body[j] == ")":
        return j, j, "", j + 1
    dest = (dests or _Destinations(body)).at(j)
    if dest is None:
        return None
    start, end, url = dest
    k = end + 1 if body[end:end + 1] == ">" else end
    after = _skip_space(body, k)
    if after < len(body) and body[after] in "\"'(" and after > k:
        close = {"\"": "\"", "'": "'", "(": ")"}[body[after]]
        t = after + 1
        while t < len(body) and body[t] != close:
            if body[t] == "\\":
                t += 1
            elif body[after] == "(" and body[t] == "(":
                return None
            t += 1
        if t >= len(body) or _BLANK_LINE.search(body, after, t + 1):
            return None
        after = _skip_space(body, t + 1)
    if after < len(body) and body[after] == ")":
        return start, end, url, after + 1
    return None


def _skip_space(body: str, i: int) -> int:
    """Spaces and tabs with at most one line break among them."""
    newline = False
    while i < len(body) and body[i] in " \t\n":
        if body[i] == "\n":
            if newline:
                break
            newline = True
        i += 1
    return i


def find_links(body: str, *, before_markdown_lines: bool = False) -> list[LinkSpan]:
    """Every rewritable destination outside code, in order of position.

    CommonMark's line endings are LF, CR LF and CR; the scan below knows LF. A body with a CR (what a
    browser submits from every textarea is CR LF) is scanned as its LF twin and the positions are
    given in the body as it is: scanned as it was, ``[a](url "t\r\n\r\nu")`` (a blank line: text to
    Markdown) had its URL rewritten, and ``![a](url\r\n"t")`` (a link) did not.

    ``before_markdown_lines``: what the scanner found before it read CR LF, CR and a definition's line
    as Markdown does (:func:`_definition_ends`) — what an archive made then rewrote, which import
    reads it by when today's reading misses one of its recorded links (:func:`ownmedia.import_body`)."""
    if before_markdown_lines:
        return _find_links(body, every_definition=True)
    if "\r" not in body:
        return _find_links(body)
    lf = body.replace("\r\n", "\n").replace("\r", "\n")
    # an LF that was CR LF, at its position in ``lf``: a position after it is one more in ``body``
    joined = [m.start() - n for n, m in enumerate(re.finditer("\r\n", body))]
    spans = []
    for s in _find_links(lf):
        start, end = s.start + bisect_left(joined, s.start), s.end + bisect_left(joined, s.end)
        # a destination holds no line ending; an HTML attribute's quoted value may: read as it is
        url = html.unescape(body[start:end]) if s.kind == "html" and "\n" in lf[s.start:s.end] else s.url
        spans.append(LinkSpan(start, end, url, s.kind))
    return spans


def _find_links(body: str, every_definition: bool = False) -> list[LinkSpan]:
    """:func:`find_links` of a body whose line endings are LF (``every_definition``: see
    ``before_markdown_lines`` there)."""
    if "[" not in body and "<" not in body:
        # Every destination found below opens with one of them (a link or definition with "[", an
        # HTML tag with "<"): a body without either has none, and needs no code scan — the scan was
        # ~40% of the catalog's rendering of a small blog, most of whose posts link nothing.
        return []
    code = code_ranges(body)
    code_ends = [e for _, e in code]
    found: list[LinkSpan] = []
    titles: list[tuple[int, int]] = []  # link and definition titles: text, whatever markup they quote
    found += _inline_links(body, code, titles)
    dests = _Destinations(body)
    defined: set[int] | None = None if every_definition else set()  # where each definition's line starts
    for m in re.finditer(r"(?m)^ {0,3}\[", body):
        d = _REF_DEF.match(body, m.start())
        if d and _may_start_definition(body, m.start(), defined) and (dest := dests.at(d.end())) \
                and (every_definition or _definition_ends(body, dest[1] + (body[dest[1]:dest[1] + 1] == ">"))) \
                and not _inside(code, m.start(), dest[1], code_ends):
            found.append(LinkSpan(dest[0], dest[1], dest[2], "reference"))
            titles.append((dest[1], _definition_end(body, dest[1])))
            if defined is not None:
                defined.add(m.start())
    titles = _merged(titles)
    title_starts = [t for t, _ in titles]
    for tag in _html_tags(body):
        if _inside(code, tag.start(), tag.end(), code_ends):
            continue
        if _escaped(body, tag.start()) or ((k := bisect_right(title_starts, tag.start())) and tag.start() < titles[k - 1][1]):
            continue  # `\<img …>` is text, and so is a tag quoted in a link's title
        wanted = "src" if tag.group(1).lower() == "img" else "href"
        for attr in _HTML_ATTR.finditer(tag.group(2)):
            if attr.group(1) is None or attr.group(1).lower() != wanted:
                continue
            value = attr.group(2)
            start = tag.start(2) + attr.start(2)
            if value[0] in "\"'":
                start, value = start + 1, value[1:-1]
            found.append(LinkSpan(start, start + len(value), html.unescape(value), "html"))
    found.sort(key=lambda s: s.start)
    return [s for n, s in enumerate(found) if n == 0 or s.start >= found[n - 1].end]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges, sorted, with those that overlap made one (a link's title can lie in a definition's)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _definition_ends(body: str, at: int) -> bool:
    """Whether a reference definition whose destination ends at ``at`` is one (CommonMark): nothing
    more on its line, or a title there — after a space, closed with no blank line in it (a ``(`` one
    holding no other ``(``), nothing but spaces after it on its line. Else its line is a paragraph's
    text, and so is its URL (``[r]: URL x`` was taken for a definition and its URL rewritten). A
    title on the next line that is none only ends the definition before it, as Markdown reads it."""
    i = at
    while i < len(body) and body[i] in " \t":
        i += 1
    if i == len(body) or body[i] == "\n":
        return True
    if i == at or body[i] not in "\"'(":
        return False
    close = ")" if body[i] == "(" else body[i]
    t = i + 1
    while t < len(body) and body[t] != close:
        if body[t] == "\\":
            t += 1
        elif close == ")" and body[t] == "(":
            return False
        t += 1
    if t >= len(body) or _BLANK_LINE.search(body, i, t + 1):
        return False
    eol = body.find("\n", t + 1)
    return not body[t + 1:len(body) if eol < 0 else eol].strip(" \t")


def _definition_end(body: str, at: int) -> int:
    """Where the reference definition whose destination ends at ``at`` ends: with its line, or with
    the next when its title starts there."""
    eol = body.find("\n", at)
    if eol < 0:
        return len(body)
    if not body[at:eol].strip(" \t"):
        nxt = body.find("\n", eol + 1)
        nxt = len(body) if nxt < 0 else nxt
        if body[eol + 1:nxt].lstrip(" \t")[:1] in ("\"", "'", "("):
            return nxt
    return eol


_TAG_OPEN = re.compile(r"<(img|a)\b", re.IGNORECASE)
_TAG_STOP = re.compile(r"[>\"']")


def _html_tags(body: str) -> list[re.Match[str]]:
    """``_HTML_TAG.finditer``'s matches, in time linear in the body.

    The regex tried every `<a`/`<img` against the rest of the body when no `>` closes it (`<a `
    repeated), quadratic. Its match is deterministic: from the tag name on, skip quoted strings whole
    and stop at the first `>` outside them (a match), or at a quote that nothing closes or the end (no
    match). So a walk that reaches a quote an earlier failed walk opened — outside a quoted string,
    as here — goes the same way from there and fails too; each quote is opened by a failed walk once.
    """
    out: list[re.Match[str]] = []
    pos, failed, stops = 0, set(), None
    while (m := _TAG_OPEN.search(body, pos)) is not None:
        if stops is None:  # on the first tag only: most bodies have none
            stops = [s.start() for s in _TAG_STOP.finditer(body)]
            quotes = {q: [at for at in stops if body[at] == q] for q in "\"'"}
        x, opened, closed = m.end(), [], False
        while (k := bisect_left(stops, x)) < len(stops):
            at = stops[k]
            if body[at] == ">":
                closed = True
                break
            if at in failed:
                break
            opened.append(at)
            same = quotes[body[at]]
            n = bisect_right(same, at)
            if n == len(same):
                break  # nothing closes this quote
            x = same[n] + 1
        if closed and (tag := _HTML_TAG.match(body, m.start())) is not None:
            out.append(tag)
            pos = tag.end()
            continue
        failed.update(opened)
        pos = m.start() + 1
    return out


def _may_start_definition(body: str, at: int, defined: set[int] | None = None) -> bool:
    """A reference definition cannot interrupt a paragraph: the line before is blank, absent, another
    definition, a heading or a break (after anything else, leaving it alone is the safe mistake).

    Another definition: one found on the line before (``defined``: where the lines of those found
    start). A line that only starts as one does (``[r]: URL x``; ``[r]: URL`` after a paragraph's
    line) is a paragraph's text, and so is the next: the scanner rewrote its URL. ``defined`` None:
    any line starting as one, as the scanner read it before (``find_links(before_markdown_lines=True)``)."""
    if at == 0:
        return True
    prev_start = body.rfind("\n", 0, at - 1) + 1
    prev = body[prev_start:at - 1]
    before = _REF_DEF.match(body, prev_start) is not None if defined is None else prev_start in defined
    return (not prev.strip() or before or _HEADING.match(prev) is not None
            or _THEMATIC.match(prev) is not None)


def rewrite_links(body: str, resolve: Callable[[str, Kind], str | None], *,
                  before_markdown_lines: bool = False) -> tuple[str, list[Rewrite]]:
    """Replace each destination ``resolve`` maps to a new one; everything else stays byte for byte.

    ``resolve(url, kind)`` returns the replacement text for that position (already escaped for its
    kind) or None to leave it.
    """
    out, done, last = [], [], 0
    for span in find_links(body, before_markdown_lines=before_markdown_lines):
        new = resolve(span.url, span.kind)
        if new is None:
            continue
        out += [body[last:span.start], new]
        done.append(Rewrite(span.start, span.end, body[span.start:span.end], new, span.url))
        last = span.end
    out.append(body[last:])
    return "".join(out), done
