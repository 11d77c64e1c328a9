"""Property: link rewriting changes only the destinations of links to archived media.

Held to an independent reader, markdown-it-py (CommonMark): parsing the body before and after
gives the same tokens — same text, same code, same structure — except that the href/src of every
link and image to the person's archived media now names the file in the archive. And the bytes
outside the rewritten destinations are the original bytes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from shared.archive.mdlinks import rewrite_links
from shared.archive.ownmedia import MediaRef, OwnMedia, relative_link

CDN = "https://cdn.example/t1/media"
OWN = OwnMedia([
    MediaRef("m1", "t1/media/cat.jpg", f"{CDN}/cat.jpg", "media/cat.jpg"),
    MediaRef("m2", "t1/media/dog (1).png", f"{CDN}/dog%20(1).png", "media/dog (1).png"),
    MediaRef("m3", "t1/media/gone.jpg", f"{CDN}/gone.jpg", None),
])
MD_PATH = "posts/p.md"
md = MarkdownIt("commonmark")

urls = st.sampled_from([
    f"{CDN}/cat.jpg", f"{CDN}/cat.jpg?w=600&h=1", f"{CDN}/cat.jpg#x", f"{CDN}/dog%20(1).png",
    f"{CDN}/gone.jpg", "https://elsewhere.example/cat.jpg", "https://cdn.example/t2/media/cat.jpg", "cat.jpg",
])
words = st.sampled_from(["moss", "fern", "a (b)", "x]y", "[z", "\\`", "*em*", "_u_", "---", "  ", "\\[", "&amp;"])


@st.composite
def inline(draw: Any) -> str:
    u = draw(urls)
    title = draw(st.sampled_from(["", ' "t (p)"', " 'q'", " (paren)"]))
    return draw(st.sampled_from([
        f"[{draw(words)}]({u}{title})", f"![{draw(words)}]({u}{title})", f"![a](<{u}>)",
        f"`![c]({u})`", f"``x ![c]({u}) ` y``", f"`{u}`", f"[r][{draw(st.sampled_from('abc'))}]",
        f'<img src="{u}" alt="a">', f"<a href='{u}'>l</a>", f"<{u}>", u, draw(words), "`", "``",
        f"[[n]]({u})", f"[a](b)]({u})",
    ]))


@st.composite
def block(draw: Any) -> str:
    line = " ".join(draw(st.lists(inline(), min_size=1, max_size=5)))
    u = draw(urls)
    fence = draw(st.sampled_from(["```", "~~~", "````"]))
    label, title = draw(st.sampled_from("abc")), draw(st.sampled_from(["", ' "t (x)"']))
    return draw(st.sampled_from([
        line, f"# {line}", f"> {line}", f"- {line}", f"1. {line}", f"{line}\n{line}",
        f"{fence}md\n![c]({u})\n[d]: {u}\n{fence}", f"    ![c]({u})\n    <img src=\"{u}\">",
        f"[{label}]: {u}{title}",
        f"- item\n\n  ```\n  ![c]({u})\n  ```", f"<div>\n<img src=\"{u}\">\n</div>", f"<pre>\n![c]({u})\n</pre>",
        f"> ```\n> ![c]({u})\n> ```",
    ]))


bodies = st.lists(block(), min_size=1, max_size=8).flatmap(
    lambda blocks: st.sampled_from(["\n\n", "\n"]).map(lambda sep: sep.join(blocks) + "\n"))


def resolve(url: str, kind: str) -> str | None:
    hit = OWN.lookup(url)
    return relative_link(MD_PATH, hit[0].path) if hit and hit[0].path else None


def tokens(text: str, expect_rewritten: bool) -> list[tuple[Any, ...]]:
    """Every token, flattened; links to archived media mapped to what the rewrite should make of them."""
    out = []

    def walk(ts: list[Any]) -> None:
        for t in ts:
            attrs = dict(t.attrs or {})
            for name in ("href", "src"):
                if name in attrs:
                    value = str(attrs[name])
                    # autolinks (`<https://…>`) stay: `<../media/x.jpg>` would not be a link at all
                    if expect_rewritten and t.markup != "autolink" and (new := resolve(value, "inline")):
                        value = new
                    attrs[name] = unquote(value)
            # raw sources: compared through their children (inline, image) or by the byte check (html)
            content = "" if t.type in ("inline", "image", "html_inline", "html_block") else t.content
            out.append((t.type, t.tag, content, tuple(sorted(attrs.items())), t.info, t.markup))
            if t.children:
                walk(t.children)

    walk(md.parse(text))
    return out


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_only_destinations_of_links_to_archived_media_change(body: str) -> None:
    new, done = rewrite_links(body, resolve)
    rebuilt, last = [], 0
    for r in done:
        assert body[r.start:r.end] == r.original and OWN.lookup(r.url) is not None
        rebuilt += [body[last:r.start], r.replacement]
        last = r.end
    assert "".join(rebuilt) + body[last:] == new  # byte-identical outside the rewritten destinations
    assert tokens(new, expect_rewritten=False) == tokens(body, expect_rewritten=True)
