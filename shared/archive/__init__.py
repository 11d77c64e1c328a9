"""The archive format: deterministic per-member ZIP encoding, our central directory, safe member
names and Markdown frontmatter, and the archive's layout (:mod:`shared.archive.layout`: member
paths and order, the generated members, every object key of an export). Pure logic: no I/O.

    archive = concat(MemberEncoder bytes) + central_directory(CDEntry(result.cd_template, offset))
"""

from shared.archive.central import CDEntry, central_directory, end_records, patch_offset
from shared.archive.frontmatter import iso_utc, parse_markdown, render_markdown
from shared.archive.levels import level_for
from shared.archive.names import NameAllocator, is_safe_component, safe_component, sanitize_for_path
from shared.archive.trailer import TrailerFormatError
from shared.archive.zipmember import (
    BLOCK,
    EncodedMember,
    MemberEncoder,
    SourceSizeMismatch,
    clamp_time,
    encode_member,
    fingerprint,
    reblock,
)

__all__ = [
    "BLOCK", "CDEntry", "EncodedMember", "MemberEncoder", "NameAllocator", "SourceSizeMismatch",
    "TrailerFormatError", "central_directory", "clamp_time", "encode_member", "end_records", "fingerprint",
    "is_safe_component", "iso_utc", "level_for", "parse_markdown", "patch_offset", "reblock",
    "render_markdown", "safe_component", "sanitize_for_path",
]
