"""ready_email and failed_email: rendered content, escaping, and the conditional error line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.notifier.mail import Email, failed_email, ready_email
from services.notifier.mail.message import fill_text

SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
PAGE = "https://grove.place/arbor/export"


def make_ready(**overrides: Any) -> Email:
    args: dict[str, Any] = {
        "to": "autumn@example.org",
        "username": "Autumn",
        "item_counts": {"posts": 12, "pages": 3, "images": 40},
        "size_bytes": 24_500_000,
        "expires_at": datetime(2026, 3, 1, 10, 30, tzinfo=UTC),
        "download_page_url": PAGE,
        "sha256": SHA,
        "error_count": 0,
        "export_id": "exp_abc123",
        "tenant_id": "tenant_autumn",
    }
    return ready_email(**(args | overrides))


@pytest.mark.parametrize("part", ["text", "html"])
def test_ready_email_shows_counts_size_expiry_link_and_checksum(part: str) -> None:
    body = getattr(make_ready(), part)

    for expected in (
        "Autumn",
        "12 posts",
        "3 pages",
        "40 images",
        "24.5 MB",
        "Sunday 1 March 2026, 10:30 UTC",
        PAGE,
        SHA,
        "sha256sum",
        "exp_abc123",
        f"grove-export verify grove-export-*.zip --sha256 {SHA}",
    ):
        assert expected in body


def test_ready_email_subject_and_idempotency_key() -> None:
    email = make_ready()
    assert email.subject == "Your Grove export is ready"
    assert email.idempotency_key == "exp_abc123:ready:tenant_autumn"
    assert email.to == "autumn@example.org"


def test_ready_email_links_to_the_download_page() -> None:
    assert f'<a href="{PAGE}"' in make_ready().html


def test_username_is_escaped_in_html_but_raw_in_text() -> None:
    email = make_ready(username="<script>alert('x')</script> & Co")

    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in email.html
    assert "<script>" not in email.html
    assert "Hi <script>alert('x')</script> & Co," in email.text


def test_link_with_query_string_is_attribute_escaped() -> None:
    html = make_ready(download_page_url='https://grove.test/export?a=1&b="2"').html
    assert 'href="https://grove.test/export?a=1&amp;b=&#34;2&#34;"' in html


def test_html_uses_inline_styles_and_no_external_assets() -> None:
    html = make_ready().html
    assert "style=" in html
    for external in ("<link", "<img", "<script", "@import", "url("):
        assert external not in html


def test_no_error_line_when_nothing_was_skipped() -> None:
    email = make_ready(error_count=0)
    assert "errors.json" not in email.text
    assert "errors.json" not in email.html
    assert "could not be included" not in email.text


@pytest.mark.parametrize(
    ("count", "line"),
    [
        (1, "1 item could not be included. It is listed"),
        (3, "3 items could not be included. They are listed"),
        (1200, "1,200 items could not be included. They are listed"),
    ],
)
def test_error_line_counts_skipped_items_and_points_to_errors_json(count: int, line: str) -> None:
    email = make_ready(error_count=count)
    assert line in email.text
    assert line in email.html
    assert "errors.json inside the archive" in email.text
    assert "errors.json</code> inside the archive" in email.html


def test_storage_export_lists_files() -> None:
    email = make_ready(item_counts={"files": 1})
    assert "1 file" in email.text and "1 files" not in email.text


def test_failed_email_says_why_and_what_to_do() -> None:
    email = failed_email(
        to="autumn@example.org",
        username="Autumn & <b>Co</b>",
        reason="The image store was unavailable after 4 attempts.",
        export_id="exp_abc123",
        tenant_id="tenant_autumn",
        download_page_url=PAGE,
    )

    assert email.subject == "Your Grove export could not be completed"
    assert email.idempotency_key == "exp_abc123:failed:tenant_autumn"
    for body in (email.text, email.html):
        assert "The image store was unavailable after 4 attempts." in body
        assert "start a new export" in body
        assert "doesn't count toward the one-export-per-hour limit" in body
        assert PAGE in body
    assert "Hi Autumn & <b>Co</b>," in email.text
    assert "Autumn &amp; &lt;b&gt;Co&lt;/b&gt;" in email.html


def test_failed_email_escapes_the_reason_in_html() -> None:
    email = failed_email(
        to="a@example.org", username="A", reason="bad <tag> & more", export_id="exp_1", tenant_id="t1",
        download_page_url=PAGE
    )
    assert "bad &lt;tag&gt; &amp; more" in email.html
    assert "bad <tag> & more" in email.text


def test_builders_are_pure() -> None:
    assert make_ready() == make_ready()


def test_a_retry_and_a_resend_are_new_emails_with_their_own_identity() -> None:
    keys = {make_ready(attempt=a, resend=r).idempotency_key for a, r in ((1, 0), (2, 0), (1, 1), (1, 2), (2, 1))}
    assert keys == {"exp_abc123:ready:tenant_autumn", "exp_abc123:ready:tenant_autumn:a2",
                    "exp_abc123:ready:tenant_autumn:r1", "exp_abc123:ready:tenant_autumn:r2",
                    "exp_abc123:ready:tenant_autumn:a2:r1"}


def test_an_email_once_its_templates_are_loaded_reads_no_template_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja's default checks each template's file (and its layout's) for a change on every render."""
    import os.path

    first = make_ready(), failed_email(to="autumn@example.org", username="Autumn", reason="r", export_id="exp_1",
                                       tenant_id="t", download_page_url=PAGE)

    def no_stat(path: object) -> float:
        raise AssertionError(f"looked at {path}")

    monkeypatch.setattr(os.path, "getmtime", no_stat)
    assert make_ready() == first[0]
    assert failed_email(to="autumn@example.org", username="Autumn", reason="r", export_id="exp_1", tenant_id="t",
                        download_page_url=PAGE) == first[1]


LONG_PAGE = "https://grove.place/arbor/export?from=email&campaign=ready-" + "x" * 60


@pytest.mark.parametrize("email", [
    make_ready(error_count=3, download_page_url=LONG_PAGE, username="Autumn of the long-named grove " * 3),
    failed_email(to="a@example.org", username="A", export_id="exp_1", tenant_id="t1", download_page_url=LONG_PAGE,
                 reason="The image store was unavailable after 4 attempts; " * 4),
], ids=["ready", "failed"])
def test_the_text_part_wraps_at_72_columns_and_never_splits_a_url_or_the_checksum(email: Email) -> None:
    """Seen: the plain-text part had paragraphs broken at ~96 columns beside unbroken ones of 104-115
    (a mail reader showing 78 columns cut each of them in two, unevenly)."""
    lines = email.text.split("\n")
    for line in lines:
        # longer only when indented (a command, the checksum: copied as written) or one word (a URL)
        assert len(line) <= 72 or line.startswith(" ") or " " not in line, line
    assert LONG_PAGE in lines
    if email.subject == "Your Grove export is ready":
        assert f"  {SHA}" in lines and f"  grove-export verify grove-export-*.zip --sha256 {SHA}" in lines


def test_fill_text_keeps_hyphenated_words_and_indented_lines_whole() -> None:
    text = "word " * 14 + "one-export-per-hour-limit\n  " + "x " * 50 + "\n"
    assert fill_text(text) == ("word " * 14).rstrip() + "\none-export-per-hour-limit\n  " + "x " * 50 + "\n"


def test_the_email_and_the_archives_readme_name_the_same_checksum_commands() -> None:
    """Seen: the email told Windows users `certutil -hashfile <file> SHA256` while the archive's own
    README.md said `Get-FileHash … -Algorithm SHA256`: the commands were written in each place. Both
    now name PowerShell's Get-FileHash (on every current Windows, and it takes the file name's
    wildcard as the others do), from one list (shared/core/verifying.py)."""
    import html as html_module
    from datetime import UTC, datetime

    from services.catalog.readme import render_readme

    windows = "Get-FileHash grove-export-*.zip -Algorithm SHA256"
    email = make_ready()
    readme = render_readme(username="Autumn", tenant_id="t1", export_id="e1", mode="blog",
                           created_at=datetime(2026, 3, 1, tzinfo=UTC), counts={"posts": 1},
                           include_images=True, generator="g")
    for where, text in (("text", email.text), ("html", html_module.unescape(email.html)), ("README.md", readme)):
        assert "certutil" not in text, where
        for command in ("sha256sum grove-export-*.zip", "shasum -a 256 grove-export-*.zip", windows):
            assert command in text, (where, command)
    from shared.core.verifying import CHECKSUM_COMMANDS  # the one list both are made from

    assert [c for c, _ in CHECKSUM_COMMANDS] == ["sha256sum grove-export-*.zip", "shasum -a 256 grove-export-*.zip",
                                                 windows]
    assert f"  {windows}  (Windows PowerShell)\n" in email.text  # its block: each command with where it runs
