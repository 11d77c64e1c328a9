"""Build an unpacked archive with Debian's Hugo, the way the archive's README tells a person to:
posts/ and pages/ into content/, media/ into static/, and one line in the site config."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

from services.catalog.readme import HUGO_SETTINGS
from tests.unit.archive.tools import require_tool

SETTINGS = "".join(f"{line}\n" for line in HUGO_SETTINGS)  # the lines the archive's README names
LAYOUT = ('<!doctype html><html><body><h1>{{ .Title }}</h1><time>{{ .Date.Format "2006-01-02" }}</time>'
          "{{ .Content }}</body></html>\n")


def build_site(archive: Path, site: Path) -> tuple[Path, list[dict[str, str]]]:
    """(public folder, `hugo list all` rows) of the archive built as a Hugo site without a theme."""
    hugo = require_tool("hugo", "hugo")
    subprocess.run([hugo, "new", "site", str(site)], check=True, capture_output=True, timeout=60)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(site / "unpacked")
    for folder in ("posts", "pages"):
        shutil.copytree(site / "unpacked" / folder, site / "content" / folder)
    shutil.copytree(site / "unpacked" / "media", site / "static" / "media")
    config = next(p for p in (site / "hugo.toml", site / "config.toml") if p.exists())
    # at the top, as the README says; a theme's config ends in a table ([params]), below which they would
    # be its keys and do nothing
    config.write_text(SETTINGS + config.read_text() + "\n[params]\n  theme_option = 1\n")
    for name in ("single", "list"):
        (site / "layouts" / "_default").mkdir(parents=True, exist_ok=True)
        (site / "layouts" / "_default" / f"{name}.html").write_text(LAYOUT)
    (site / "layouts" / "index.html").write_text(LAYOUT)
    built = subprocess.run([hugo, "-s", str(site)], capture_output=True, text=True, timeout=120, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    listed = subprocess.run([hugo, "list", "all", "-s", str(site)], capture_output=True, text=True, timeout=60,
                            check=True)
    return site / "public", list(csv.DictReader(io.StringIO(listed.stdout)))
