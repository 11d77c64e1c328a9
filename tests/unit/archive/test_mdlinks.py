"""Links to the person's own media become file-relative paths; nothing else in a body changes."""

from __future__ import annotations

import pytest

from shared.archive import mdlinks
from shared.archive.mdlinks import find_links
from shared.archive.ownmedia import MediaRef, OwnMedia, export_body, import_body, read_as_before

CDN = "https://cdn.example/t1/media"
OWN = OwnMedia([
    MediaRef("m1", "t1/media/cat.jpg", f"{CDN}/cat.jpg", "media/cat.jpg"),
    MediaRef("m2", "t1/media/dog (1).png", f"{CDN}/dog%20(1).png", "media/dog (1).png"),
    MediaRef("m3", "t1/media/gone.jpg", f"{CDN}/gone.jpg", None),  # not in the archive
])


def rewrite(body: str) -> str:
    return export_body(body, "posts/p.md", OWN)[0]


def test_inline_images_and_links_point_into_the_archive() -> None:
    body = f"A ![cat]({CDN}/cat.jpg) and [the file]({CDN}/cat.jpg).\n"
    assert rewrite(body) == "A ![cat](../media/cat.jpg) and [the file](../media/cat.jpg).\n"


def test_titles_with_parentheses_and_angle_destinations_keep_everything_but_the_url() -> None:
    body = f'![c]({CDN}/cat.jpg "A cat (asleep)") ![c](<{CDN}/cat.jpg> \'t\') ![d]({CDN}/dog%20(1).png)\n'
    assert rewrite(body) == ('![c](../media/cat.jpg "A cat (asleep)") ![c](<../media/cat.jpg> \'t\') '
                             "![d](../media/dog%20%281%29.png)\n")


def test_query_strings_and_fragments_still_find_the_file_and_the_original_is_kept() -> None:
    body = f"![c]({CDN}/cat.jpg?w=600&h=400) [x]({CDN}/cat.jpg#top)\n"
    new, links, _ = export_body(body, "posts/p.md", OWN)
    assert new == "![c](../media/cat.jpg) [x](../media/cat.jpg)\n"
    assert [link["url"] for link in links] == [f"{CDN}/cat.jpg?w=600&h=400", f"{CDN}/cat.jpg#top"]


def test_reference_style_definitions_are_rewritten() -> None:
    body = f"See ![cat][c] and [dog][d].\n\n[c]: {CDN}/cat.jpg \"Title (x)\"\n[d]: <{CDN}/dog%20(1).png>\n"
    assert rewrite(body) == ('See ![cat][c] and [dog][d].\n\n[c]: ../media/cat.jpg "Title (x)"\n'
                             "[d]: <../media/dog%20%281%29.png>\n")


def test_html_img_and_a_tags_are_rewritten_with_entities_understood() -> None:
    body = (f'<p><img alt="cat" src="{CDN}/cat.jpg?a=1&amp;b=2" width=3>'
            f"<a class='x' href='{CDN}/cat.jpg'>big</a><img src={CDN}/cat.jpg></p>\n")
    assert rewrite(body) == ('<p><img alt="cat" src="../media/cat.jpg" width=3>'
                             "<a class='x' href='../media/cat.jpg'>big</a><img src=../media/cat.jpg></p>\n")


def test_code_blocks_and_code_spans_are_never_touched() -> None:
    body = (f"```md\n![c]({CDN}/cat.jpg)\n```\n\n    ![c]({CDN}/cat.jpg)\n\n"
            f"Inline `![c]({CDN}/cat.jpg)` and `` <img src=\"{CDN}/cat.jpg\"> ``.\n\n"
            f"~~~\n[c]: {CDN}/cat.jpg\n~~~\n<pre>![c]({CDN}/cat.jpg)</pre>\n")
    assert rewrite(body) == body


def test_links_to_other_sites_are_left_alone() -> None:
    body = "![x](https://elsewhere.example/cat.jpg) [y](https://cdn.example/t2/media/cat.jpg) [z](cat.jpg)\n"
    assert rewrite(body) == body


def test_a_link_to_an_image_missing_from_the_archive_is_left_alone_and_reported() -> None:
    body = f"![gone]({CDN}/gone.jpg) ![cat]({CDN}/cat.jpg)\n"
    new, links, left = export_body(body, "posts/p.md", OWN)
    assert new == f"![gone]({CDN}/gone.jpg) ![cat](../media/cat.jpg)\n"
    assert left == [{"url": f"{CDN}/gone.jpg", "media_id": "m3", "reason": "the image is not in this archive"}]
    assert links == [{"url": f"{CDN}/cat.jpg", "path": "media/cat.jpg"}]


def test_a_reference_definition_inside_a_paragraph_is_text_and_stays() -> None:
    body = f"para line\n[c]: {CDN}/cat.jpg\n"
    assert rewrite(body) == body


def test_import_restores_the_recorded_links_to_the_new_tenants_urls() -> None:
    body = (f"![c]({CDN}/cat.jpg?w=6) <img src=\"{CDN}/dog%20(1).png\">\n"
            "and my own [relative](../media/cat.jpg) link written by hand.\n")
    exported, links, _ = export_body(body, "posts/p.md", OWN)
    restored = import_body(exported, "posts/p.md", links,
                           lambda path, url: "https://b.example/" + path + url.partition("?")[1] + url.partition("?")[2])
    assert restored == ("![c](https://b.example/media/cat.jpg?w=6) <img src=\"https://b.example/media/dog (1).png\">\n"
                        "and my own [relative](../media/cat.jpg) link written by hand.\n")


def test_import_leaves_a_relative_link_written_by_hand_before_a_recorded_one_to_the_same_image() -> None:
    # The person's own `../media/cat.jpg` ahead of a link the export made to that same file: import
    # restored the first one it met (theirs) and left the export's relative, so the restored body
    # swapped them. The export counts such look-alikes ahead of each recorded link (`skip`).
    body = ("by hand [a](../media/cat.jpg) <img src=\"../media/cat.jpg\">\n"
            f"![c]({CDN}/cat.jpg) then [b](../media/cat.jpg) ![d]({CDN}/cat.jpg?x)\n")
    exported, links, _ = export_body(body, "posts/p.md", OWN)
    assert links == [{"url": f"{CDN}/cat.jpg", "path": "media/cat.jpg", "skip": 2},
                     {"url": f"{CDN}/cat.jpg?x", "path": "media/cat.jpg", "skip": 1}]
    restored = import_body(exported, "posts/p.md", links, lambda path, url: url.replace("/t1/", "/t2/"))
    assert restored == body.replace("/t1/", "/t2/")
    plain = f"![c]({CDN}/cat.jpg) [own](../media/cat.jpg)\n"  # after every recorded link: nothing to count
    assert export_body(plain, "posts/p.md", OWN)[1] == [{"url": f"{CDN}/cat.jpg", "path": "media/cat.jpg"}]


def test_a_body_without_brackets_or_tags_is_not_scanned_for_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(body: str) -> list[tuple[int, int]]:
        raise AssertionError("code_ranges ran for a body that cannot hold a link")

    monkeypatch.setattr(mdlinks, "code_ranges", no_scan)
    assert find_links("# Title\n\nPlain text, `code`, !(no) and (parens) (x).\n") == []
    assert find_links("    indented\n\n```\nfenced\n```\n") == []
    with pytest.raises(AssertionError):  # a body that may hold one still gets the scan
        find_links("see [x](a.png)")


@pytest.mark.parametrize("name", ["#", "/", ".", "..", "./", "https://cdn.example/", "?w=1", " / "])
def test_a_media_url_or_key_that_names_no_file_matches_no_link(name: str) -> None:
    """Seen: a media row whose url was `#` (or `/`, `.`) made every `[top](#)` or `[home](/)` link of
    the tenant's posts point at that image in the archive, and listed it as the image's link."""
    own = OwnMedia([MediaRef("m9", name, name, "media/odd.jpg"),
                    MediaRef("m1", "t1/media/cat.jpg", f"{CDN}/cat.jpg", "media/cat.jpg")])
    body = "[top](#) [home](/) [here](.) [up](..) [dir](./) [site](https://cdn.example/) [q](?w=1)\n"
    new, links, _ = export_body(body + f"![c]({CDN}/cat.jpg)\n", "posts/p.md", own)
    assert new == body + "![c](../media/cat.jpg)\n"
    assert [link["url"] for link in links] == [f"{CDN}/cat.jpg"]


def test_a_src_or_href_written_inside_another_attributes_value_is_that_value_not_a_link() -> None:
    # Alt text or a title may quote markup: `src=…` inside a value is text. The scanner took it for the
    # tag's own src and rewrote the alt text (and import "restored" it), against "nothing else changes".
    body = (f'<img alt="src={CDN}/cat.jpg" src="{CDN}/cat.jpg">'
            f"<a title='see href=\"{CDN}/cat.jpg\"' href=\"{CDN}/cat.jpg\">x</a>"
            f"<img alt=src={CDN}/cat.jpg src={CDN}/cat.jpg><img data-src={CDN}/cat.jpg src=x.png>\n")
    new, links, _ = export_body(body, "posts/p.md", OWN)
    assert new == (f'<img alt="src={CDN}/cat.jpg" src="../media/cat.jpg">'
                   f"<a title='see href=\"{CDN}/cat.jpg\"' href=\"../media/cat.jpg\">x</a>"
                   f"<img alt=src={CDN}/cat.jpg src=../media/cat.jpg><img data-src={CDN}/cat.jpg src=x.png>\n")
    assert len(links) == 3
    assert import_body(new, "posts/p.md", links, lambda path, url: url) == body


@pytest.mark.parametrize("body", [
    f'[x](https://a.example "see <img src={CDN}/cat.jpg>")\n',  # a link's title is text
    f"[x](<https://a.example> '<a href={CDN}/cat.jpg>')\n",
    f'[x]: https://a.example "see <img src={CDN}/cat.jpg>"\n',  # so is a definition's
    f'[x]: https://a.example\n  "see <img src={CDN}/cat.jpg>"\n\n[x]\n',
    f"Write \\<img src={CDN}/cat.jpg> to show it.\n",  # an escaped `<` starts no tag
])
def test_markup_written_as_text_in_a_title_or_after_a_backslash_is_left_as_written(body: str) -> None:
    # CommonMark (markdown-it) reads these as text — a title, an escaped `<` — while the scanner
    # took the tag in them for HTML and rewrote the URL in the text.
    assert rewrite(body) == body


def test_tags_beside_a_title_or_after_an_escaped_backslash_are_still_rewritten() -> None:
    body = (f'[x](https://a.example "t") <img src="{CDN}/cat.jpg">\n\n'
            f'[y]: https://a.example "t"\n<img src="{CDN}/cat.jpg">\n\n\\\\<img src="{CDN}/cat.jpg">\n')
    assert rewrite(body) == body.replace(f"{CDN}/cat.jpg", "../media/cat.jpg")


_U = "https://x/c.jpg"
# Bodies whose line endings are CR LF (what a browser submits from every textarea) or CR: to
# CommonMark (markdown-it-py) these are line endings as LF is, so each reads as its LF twin.
_CR_BODIES = [
    f"![a]({_U}\r\n\"t\")",  # a title on the next line: a link, left with its URL
    f"[r]:\r\n{_U}\r\n\r\n![x][r]",  # a definition's destination on the next line: left too
    f"[a]({_U} \"t\r\n\r\nu\")",  # a blank line in a title: no link, but its URL was rewritten
    f"[a\r\n\r\nb]({_U})",  # a blank line in the link text: no link, rewritten
    f"![a]({_U}\r\"t\")", f"[a]({_U} \"t\r\ru\")",  # lone CRs
    f"p\r\n\r\n    ![code]({_U})\r\n\r\n```\r\n![f]({_U})\r\n```\r\n![after]({_U}) <img\r\nsrc=\"{_U}\">",
]


@pytest.mark.parametrize("body", _CR_BODIES)
def test_cr_lf_and_cr_line_endings_are_read_as_markdown_reads_them(body: str) -> None:
    from markdown_it import MarkdownIt

    lf = body.replace("\r\n", "\n").replace("\r", "\n")
    spans = find_links(body)
    assert [(s.url, s.kind) for s in spans] == [(s.url, s.kind) for s in find_links(lf)]
    assert all(body[s.start:s.end] == _U for s in spans)  # positions in the body as it is
    rendered = MarkdownIt("commonmark").render(body)
    assert len(spans) == rendered.count(f'src="{_U}"') + rendered.count(f'href="{_U}"'), rendered
    new, _ = mdlinks.rewrite_links(body, lambda url, kind: "L")
    expected, last = "", 0
    for s in spans:
        expected, last = expected + body[last:s.start] + "L", s.end
    assert new == expected + body[last:]  # every other character as it was, each CR too


@pytest.mark.parametrize(("body", "links"), [
    (f"[r]: {_U} x\n\n[x][r]", 0),  # text after the destination: no definition, a paragraph
    (f"[r]: {_U} \"t\" x\n\n[x][r]", 0),  # text after the title
    (f"[r]: {_U} \"t\n\nu\"\n\n[x][r]", 0),  # a blank line in the title
    (f"[r]: {_U} (t\n\nu)\n\n[x][r]", 0),
    (f"[r]: {_U} \"unclosed\n\n[x][r]", 0),
    (f"[r]: {_U} (a(b))\n\n[x][r]", 0),  # `(` inside a ( ) title
    (f"[r]: {_U}\n\"t\" x\n\n[x][r]", 1),  # a title line that is none: the definition ends before it
    (f"[r]: {_U}\n\"t\n\nu\"\n\n[x][r]", 1),
    (f"[r]: {_U} \"t\nu\"\n\n[x][r]", 1), (f"[r]: <{_U}> 't' \n\n[x][r]", 1), (f"[r]: {_U} (t)\t\n[x][r]", 1),
    (f"[r]: {_U} \"a\\\"b\"\n[x][r]", 1), (f"[x][r]\n\n[r]: {_U}", 1), (f"[x][r]\n\n[r]: {_U} ", 1),
])
def test_a_definition_markdown_reads_as_text_is_left_as_written(body: str, links: int) -> None:
    # The scanner took `[r]: URL` followed by anything for a definition, and rewrote its URL in what
    # Markdown (markdown-it-py, CommonMark) reads as a paragraph of text.
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(body)
    assert rendered.count(f'src="{_U}"') + rendered.count(f'href="{_U}"') == links, rendered  # the premise
    assert [(s.url, s.kind) for s in find_links(body)] == [(_U, "reference")] * links


def test_import_reads_an_archive_s_links_as_its_release_found_them() -> None:
    # An archive made before the scanner read CR LF and definitions as Markdown does (release 0.1.x)
    # holds a URL rewritten in text (`[r]: URL x`, a paragraph) and records it in media_links. Read by
    # today's rules, that record held back every link after it, left relative (../media/…). Its
    # manifest's generator says which rules made it, and import reads it by those.
    exported = "[r]: ../media/cat.jpg x\n\n![d](../media/dog%20%281%29.png) ![c](../media/cat.jpg)\n"
    links = [{"url": f"{CDN}/cat.jpg", "path": "media/cat.jpg"},  # the text the old export rewrote
             {"url": f"{CDN}/dog%20(1).png", "path": "media/dog (1).png"},
             {"url": f"{CDN}/cat.jpg?w=6", "path": "media/cat.jpg"}]
    t2 = lambda path, url: url.replace("/t1/", "/t2/")  # noqa: E731
    old = read_as_before("grove-export 0.1.0")
    assert old and not read_as_before("grove-export 0.2.0") and not read_as_before("grove-export 1.0.0")
    assert not read_as_before(None) and not read_as_before("other-tool 0.0.1") and not read_as_before(7)
    restored = import_body(exported, "posts/p.md", links, t2, before_markdown_lines=old)
    assert restored == ("[r]: https://cdn.example/t2/media/cat.jpg x\n\n"
                        "![d](https://cdn.example/t2/media/dog%20%281%29.png) ![c](https://cdn.example/t2/media/cat.jpg?w=6)\n")
    crlf = "[a](../media/cat.jpg \"t\r\n\r\nu\")\r\n![d](../media/dog%20%281%29.png)\r\n"  # the same, CR LF
    assert import_body(crlf, "posts/p.md", links[:2], t2, before_markdown_lines=old) == \
        f"[a]({CDN}/cat.jpg \"t\r\n\r\nu\")\r\n![d]({CDN}/dog%20%281%29.png)\r\n".replace("/t1/", "/t2/")
    # Seen (review rvc): a hand-written `../media/cat.jpg` the two readings tell apart. Trying today's
    # reading first and the old one only when a record went unmet restored the hand-written `h` to the
    # CDN and left the export's own `c` relative: both readings met the record, at other places.
    # (Body and record as 0.1.0's export_body wrote them for `[r]: ../media/cat.jpg x`, `![c](CDN)`, `![h](../media/cat.jpg)`.)
    body = "[r]: ../media/cat.jpg x\n\n![c](../media/cat.jpg)\n\n![h](../media/cat.jpg)\n"
    made = [{"url": f"{CDN}/cat.jpg", "path": "media/cat.jpg", "skip": 1}]
    assert import_body(body, "posts/p.md", made, t2, before_markdown_lines=old) == (
        f"[r]: ../media/cat.jpg x\n\n![c]({CDN}/cat.jpg)\n\n![h](../media/cat.jpg)\n".replace("/t1/", "/t2/"))


@pytest.mark.parametrize(("body", "links"), [
    (f"[r]: {_U} x\n[s]: {_U}\n\n[x][r] [y][s]", 0),  # the first line is text: the second cannot interrupt it
    (f"p\n[r]: {_U}\n[s]: {_U}\n\n[x][r] [y][s]", 0),  # the same, after a paragraph's first line
    (f"[r]: {_U} \"t\" x\n[s]: {_U}\n\n[y][s]", 0),
    (f"[r]: {_U}\r\n[s]: {_U} x\r\n[t]: {_U}\r\n\r\n[x][r] [y][s] [z][t]", 1),  # r only: s is text, and so t
    (f"[r]: {_U}\n[s]: {_U}\n\n[x][r] [y][s]", 2), (f"# h\n[r]: {_U}\n[s]: {_U} 't'\n\n[x][r] [y][s]", 2),
])
def test_a_definition_line_after_a_line_markdown_reads_as_text_is_text(body: str, links: int) -> None:
    # A definition cannot interrupt a paragraph. The scanner let one follow any line that looked like
    # a definition's start, one Markdown reads as a paragraph's text too (`[r]: URL x`, or a
    # definition's look-alike after a paragraph's first line), and rewrote its URL in that text.
    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(body)
    assert rendered.count(f'href="{_U}"') == links, rendered  # the premise
    assert [(s.url, s.kind) for s in find_links(body)] == [(_U, "reference")] * links
