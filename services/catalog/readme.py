"""The README.md that opens every archive: what it is, what is inside, how to verify it."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from shared.archive.layout import readme_listing, utc_text
from shared.core.verifying import checksum_phrase

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PUNCTUATION = frozenset("!\"#$%'()*+,-./:;=?@[\\]^_`{|}~")
_JOINERS = frozenset("\u200c\u200d")  # inside emoji and some scripts' words: kept


def markdown_text(text: str) -> str:
    """``text`` as Markdown that renders as exactly that text, never as markup: ``& < >`` become HTML
    entities (no tag, no ``<img onerror=…>``, no autolink), every other ASCII punctuation character
    is backslash-escaped (no emphasis, link, image, code span or heading; CommonMark and GFM read
    the escape as the character), and line breaks, other control characters and bidi/format characters (but the
    joiners emoji use) become a space: no new block starts inside the line, no text reads reversed."""
    out = []
    for c in text:
        if c in _ENTITIES:
            out.append(_ENTITIES[c])
        elif c in _PUNCTUATION:
            out.append("\\" + c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") and c not in _JOINERS:
            out.append(" ")
        else:
            out.append(c)
    return "".join(out)


# The lines a person adds to a new Hugo site's hugo.toml (top-level keys; README.md names them, the
# Hugo tests build with exactly these): file-relative image links resolve with ugly URLs, and Hugo's
# Markdown renderer leaves raw HTML out unless told it is safe, so a post's own `<img>` (rewritten to
# ../media/ like any other link) or `<div>` was missing from the site without a word.
HUGO_SETTINGS = ("uglyURLs = true", "markup.goldmark.renderer.unsafe = true")

BLOG_INTRO = """
Posts and pages are plain Markdown with YAML front matter, readable by any text editor and
importable by most static-site generators (Hugo, Jekyll, Eleventy, Astro).{media} This copy is yours to keep.
"""
MEDIA_ORIGINALS = """ Media files are the
original uploads."""

# A storage export holds stored files only: no posts, pages, media or front matter to speak of.
STORAGE_USE = """
Every file under `files/` is the original upload, byte for byte, in a folder named after its
category (`files/documents/report.pdf`). `index.json` gives each one's original name, type,
category, product and upload time. This copy is yours to keep.
"""

# With includeImages false the archive has no media/ and the links keep their URLs: the README says
# so, and its Hugo steps copy no media/ (it told the person links pointed at copies that are not there).
LINKS_TO_MEDIA = """Links in your posts and pages that showed your own images now point at the copies in `media/`,
by a path relative to the Markdown file (`../media/photo.jpg`), so they work offline in any
Markdown viewer (GitHub, Obsidian, VS Code). The original addresses are kept in `index.json`
(`media_links`)."""
LINKS_KEPT = """Images were not requested for this export, so it holds none: links in your posts and pages
that showed your images keep their original addresses, which work while those addresses do.
`index.json` lists every image with its details."""
HUGO_MEDIA = """ and `media/`
into `mysite/static/`"""

BLOG_USE = f"""
{{links}} Front matter has the fields static-site generators read (`date`, `lastmod`,
`draft`) beside Grove's own (`status`, `published_at`, `created_at`, `updated_at`).

**Hugo:** `hugo new site mysite`, copy `posts/` and `pages/` into `mysite/content/`{{hugo_media}}, add a theme, and add these two lines at the top of `hugo.toml` (`config.toml` in a site
made by Hugo before 0.112, such as Debian's), before any `[section]` line:
`{HUGO_SETTINGS[0]}` so that file-relative image links resolve, and
`{HUGO_SETTINGS[1]}` so that the HTML in your posts (an `<img>`, a `<div>`)
is shown: Hugo leaves it out otherwise (a `hugo.toml` with a `[markup]` table takes
`goldmark.renderer.unsafe = true` under it instead). Drafts stay drafts (`hugo -D` shows them). A post whose
slug is `index` or `_index` is in a file such as `index-2.md` (Hugo reads those two names as a
folder's own page); its `slug` in the front matter is the original.
"""


def render_readme(*, username: str, tenant_id: str, export_id: str, mode: str, created_at: datetime,
                  counts: dict[str, int], include_images: bool, generator: str, missing: int = 0) -> str:
    what = ", ".join(f"{n} {k}" for k, n in counts.items())
    if mode == "blog" and not include_images:
        what += " (images were not requested for this export)"
    if missing:
        what += f"; {missing} item{'s' if missing != 1 else ''} could not be included (see errors.json)"
    return f"""# Your Grove export

This archive holds a copy of your data from Grove, made for **{markdown_text(username)}**
(site `{tenant_id}`) on {utc_text(created_at)[:10]} at {utc_text(created_at)[11:16]} UTC.

- Export id: `{export_id}`
- Mode: {mode}
- Contents: {what}
- Made by: {generator}

## What is inside

```
{readme_listing(mode, include_images)}```

## How to check that nothing was lost or damaged

1. The archive's own SHA-256 checksum is in the "export ready" email and on the export page.
   Compare it with what one of these commands prints for the file you downloaded:
   {checksum_phrase()}.
2. `manifest.json` lists every file with its size and SHA-256. After unzipping, check each file,
   for example: `python3 -c "import json,hashlib;[print('OK' if hashlib.sha256(open(m['path'],'rb').read()).hexdigest()==m['sha256'] else 'BAD', m['path']) for m in json.load(open('manifest.json'))['members']]"`
3. With the Grove Export command-line tool, one command checks all of it — the ZIP's structure,
   every checksum in `manifest.json`, and that every image a post or page links to is in here:
   `grove-export verify grove-export-….zip --sha256 <the SHA-256 from the email>`.
   It prints a short report and exits with 0 when everything is sound, 1 when something is not,
   naming the file that is damaged or missing.
4. `errors.json` lists items that existed in your account but could not be put in the archive
   (the file was missing from storage, changed while the export ran, or could not be read),
   each with its id and the reason. If it is not empty, you can run a new export later, or
   contact support with the export id above.

## Using your data
{_blog_use(include_images) if mode == "blog" else STORAGE_USE}"""


def _blog_use(include_images: bool) -> str:
    return (BLOG_INTRO.format(media=MEDIA_ORIGINALS if include_images else "")
            + BLOG_USE.format(links=LINKS_TO_MEDIA if include_images else LINKS_KEPT,
                              hugo_media=HUGO_MEDIA if include_images else ""))
