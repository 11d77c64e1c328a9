from __future__ import annotations

import pytest

from shared.archive.levels import DEFLATE_LEVEL, STORE_LEVEL, level_for


@pytest.mark.parametrize(
    ("content_type", "name"),
    [
        ("image/jpeg", "a"), ("IMAGE/PNG; charset=binary", "a"), ("image/webp", "a"), ("image/avif", "a"),
        ("image/heic", "a"), ("video/mp4", "a"), ("video/quicktime", "a"), ("video/webm", "a"),
        ("audio/mpeg", "a"), ("audio/ogg", "a"), ("audio/x-m4a", "a"), ("application/zip", "a"),
        ("application/gzip", "a"), ("application/x-7z-compressed", "a"), ("application/vnd.rar", "a"),
        ("application/zstd", "a"), ("application/x-xz", "a"), ("application/x-bzip2", "a"),
        ("application/pdf", "a"), ("font/woff2", "a"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "a"),
        ("application/octet-stream", "holiday.JPG"), ("", "clip.mov"), ("", "backup.tar.gz"),
    ],
)
def test_already_compressed_content_is_stored_at_level_0(content_type: str, name: str) -> None:
    assert level_for(content_type, name) == STORE_LEVEL == 0


@pytest.mark.parametrize(
    ("content_type", "name"),
    [
        ("text/markdown", "post.md"), ("application/json", "manifest.json"), ("image/svg+xml", "logo.svg"),
        ("text/plain", "notes.txt"), ("application/octet-stream", "data.bin"), ("", "README"),
        ("text/csv", "dir.jpg/table.csv"), ("image/bmp", "scan.bmp"),
    ],
)
def test_everything_else_is_deflated_at_level_6(content_type: str, name: str) -> None:
    assert level_for(content_type, name) == DEFLATE_LEVEL == 6
