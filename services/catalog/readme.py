"""The README.md that opens every archive: what it is, what is inside, how to verify it."""

from __future__ import annotations

from datetime import datetime

LAYOUT = {
    "blog": ("posts/{slug}.md      one file per post: YAML front matter (title, description, tags,\n"
             "                     status, dates, featured image) then the Markdown body\n"
             "pages/{slug}.md      one file per page, same format\n"
             "media/{filename}     your images, byte for byte as uploaded\n"),
    "storage": "files/{category}/{filename}   every stored file, byte for byte as uploaded\n",
}


def render_readme(*, username: str, tenant_id: str, export_id: str, mode: str, created_at: datetime,
                  counts: dict[str, int], include_images: bool, generator: str) -> str:
    what = ", ".join(f"{n} {k}" for k, n in counts.items())
    if mode == "blog" and not include_images:
        what += " (images were not requested for this export)"
    return f"""# Your Grove export

This archive holds a copy of your data from Grove, made for **{username}**
(site `{tenant_id}`) on {created_at.strftime('%Y-%m-%d at %H:%M UTC')}.

- Export id: `{export_id}`
- Mode: {mode}
- Contents: {what}
- Made by: {generator}

## What is inside

```
README.md            this file
{LAYOUT[mode]}manifest.json        every file in this archive with its size and SHA-256 checksum
errors.json          everything that could NOT be included, and why (an empty list when nothing)
```

## How to check that nothing was lost or damaged

1. The archive's own SHA-256 checksum is in the "export ready" email and on the export page.
   Compare it with `sha256sum grove-export-*.zip` (Linux), `shasum -a 256 …` (macOS) or
   `Get-FileHash … -Algorithm SHA256` (Windows PowerShell).
2. `manifest.json` lists every file with its size and SHA-256. After unzipping, check each file,
   for example: `python3 -c "import json,hashlib;[print('OK' if hashlib.sha256(open(m['path'],'rb').read()).hexdigest()==m['sha256'] else 'BAD', m['path']) for m in json.load(open('manifest.json'))['members']]"`
3. `errors.json` lists items that existed in your account but could not be put in the archive
   (the file was missing from storage, changed while the export ran, or could not be read),
   each with its id and the reason. If it is not empty, you can run a new export later, or
   contact support with the export id above.

## Using your data

Posts and pages are plain Markdown with YAML front matter, readable by any text editor and
importable by most static-site generators (Hugo, Jekyll, Eleventy, Astro). Media files are the
original uploads. This copy is yours to keep.
"""
