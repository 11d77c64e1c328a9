"""Which deflate level a member gets.

Deflating bytes that are already compressed burns CPU (~20 MB/s at level 6 on incompressible input)
for nothing, so those are stored with level 0 (still deflate framing, ~memcpy speed); everything else
gets level 6. The table is part of the archive format: changing it changes member bytes, so
`TABLE_DIGEST` is folded into the encoder fingerprint and a resume with a different table restarts the
straddling member instead of producing a mixed archive.
"""

from __future__ import annotations

import hashlib

STORE_LEVEL = 0
DEFLATE_LEVEL = 6

_COMPRESSED_TYPES = frozenset({
    "image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/apng", "image/gif", "image/webp",
    "image/avif", "image/heic", "image/heif", "image/jxl",
    "audio/mpeg", "audio/mp3", "audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac", "audio/ogg",
    "audio/opus", "audio/flac", "audio/x-flac", "audio/webm",
    "application/zip", "application/x-zip-compressed", "application/gzip", "application/x-gzip",
    "application/x-7z-compressed", "application/x-rar-compressed", "application/vnd.rar",
    "application/zstd", "application/x-zstd", "application/x-xz", "application/x-bzip2",
    "application/pdf", "application/epub+zip", "application/java-archive",
    "font/woff", "font/woff2", "application/font-woff", "application/font-woff2",
})
# Every common video container is compressed; OOXML and ODF documents are ZIP files.
_COMPRESSED_PREFIXES = (
    "video/",
    "application/vnd.openxmlformats-officedocument.",
    "application/vnd.oasis.opendocument.",
)
_COMPRESSED_EXTENSIONS = frozenset({
    "jpg", "jpeg", "jpe", "png", "apng", "gif", "webp", "avif", "heic", "heif", "jxl",
    "mp4", "m4v", "mov", "webm", "mkv", "avi", "mp3", "ogg", "oga", "opus", "m4a", "aac", "flac",
    "zip", "gz", "tgz", "7z", "rar", "zst", "xz", "bz2", "pdf", "woff", "woff2",
    "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "jar", "apk",
})

TABLE_DIGEST = hashlib.sha256(
    repr((sorted(_COMPRESSED_TYPES), _COMPRESSED_PREFIXES, sorted(_COMPRESSED_EXTENSIONS),
          STORE_LEVEL, DEFLATE_LEVEL)).encode()
).hexdigest()[:8]


def level_for(content_type: str, name: str) -> int:
    """0 when either the content type or the file extension says the bytes are already compressed.

    Either signal is enough: a mislabelled text file stored at level 0 only costs space, while
    deflating a large video at level 6 costs minutes.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in _COMPRESSED_TYPES or media_type.startswith(_COMPRESSED_PREFIXES):
        return STORE_LEVEL
    base = name.rsplit("/", 1)[-1]
    extension = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return STORE_LEVEL if extension in _COMPRESSED_EXTENSIONS else DEFLATE_LEVEL
