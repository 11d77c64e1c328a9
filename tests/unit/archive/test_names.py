from __future__ import annotations

import re
import unicodedata
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.archive import names
from shared.archive.names import NameAllocator, is_safe_component, safe_component, sanitize_for_path

BIDI_AND_FORMAT = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u200b\ufeff"


def assert_safe_path(path: str, max_bytes: int) -> None:
    assert path and not path.startswith("/") and "\\" not in path
    assert len(path.encode("utf-8")) <= max_bytes
    assert unicodedata.is_normalized("NFC", path)
    for part in path.split("/"):
        assert part not in ("", ".", "..")
        assert is_safe_component(part, max_bytes)
        assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in part)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello.md", "hello.md"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a/b\\c:d*e?f\"g<h>i|j", "a_b_c_d_e_f_g_h_i_j"),
        ("  .hidden. ", "hidden"),
        ("e\u0301te\u0301.txt", "été.txt"),  # NFC
        ("evil\u202egpj.exe", "evilgpj.exe"),  # right-to-left override removed
        ("tab\there\nnew\x00line", "tabherenewline"),
        ("con", "_con"),
        ("CON.txt", "_CON.txt"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("com\u00b9.log", "_com\u00b9.log"),
        ("console.txt", "console.txt"),
    ],
)
def test_safe_component_examples(raw: str, expected: str) -> None:
    assert safe_component(raw, "fallback") == expected


@pytest.mark.parametrize("raw", ["", ".", "..", "...", "  ", "\u202e", "\x00\x01", ". . ."])
def test_empty_or_dot_only_names_fall_back(raw: str) -> None:
    assert safe_component(raw, "post-17") == "post-17"


def test_an_unsafe_fallback_is_made_safe_too() -> None:
    assert safe_component("..", "../x") == "_x"
    assert safe_component("..", "..") == "file"


def test_long_names_are_capped_in_bytes_keeping_the_extension() -> None:
    name = safe_component("ü" * 300 + ".jpeg", "f", max_bytes=200)
    assert name.endswith("ü.jpeg") and len(name.encode()) == 199  # 2-byte chars never split
    assert safe_component("x" * 500, "f", max_bytes=50) == "x" * 50


def test_the_allocator_deduplicates_case_insensitively_and_keeps_the_extension() -> None:
    names = NameAllocator()
    asked = ["photo.jpg", "Photo.JPG", "photo.jpg", "photo-2.jpg"]
    got = [names.allocate("media", name, "image") for name in asked]
    assert got == ["media/photo.jpg", "media/Photo-2.JPG", "media/photo-3.jpg", "media/photo-2-2.jpg"]


def test_folders_are_sanitized_and_shared_across_case() -> None:
    names = NameAllocator()
    assert names.allocate("files/../Images", "a.png", "f") == "files/folder/Images/a.png"
    assert names.allocate("/files/<x>/", "a.png", "f") == "files/_x_/a.png"
    assert names.allocate("FILES/<X>", "a.png", "f") == "files/_x_/a-2.png"


def test_a_file_and_a_folder_never_share_a_path() -> None:
    names = NameAllocator()
    assert names.allocate("", "posts", "f") == "posts"
    assert names.allocate("posts", "a.md", "f") == "posts-2/a.md"
    assert names.allocate("media", "x", "f") == "media/x"
    assert names.allocate("", "MEDIA", "f") == "MEDIA-2"


def test_deduplicated_names_still_fit_the_byte_cap() -> None:
    names = NameAllocator(max_component_bytes=20)
    first = names.allocate("m", "a" * 40 + ".jpg", "f")
    second = names.allocate("m", "a" * 40 + ".jpg", "f")
    assert first == "m/" + "a" * 16 + ".jpg"
    assert second == "m/" + "a" * 14 + "-2.jpg"


def test_a_too_deep_folder_is_refused() -> None:
    with pytest.raises(ValueError):
        NameAllocator(max_path_bytes=20).allocate("a" * 15, "x", "f")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ada", "ada"), ("Ada Lovelace", "Ada-Lovelace"), ("Zoë_99", "Zoe_99"), ("../../", "user"),
     ("", "user"), ("日本", "user"), ("a" * 100, "a" * 64), ("--x--", "x")],
)
def test_sanitize_for_path_examples(raw: str, expected: str) -> None:
    assert sanitize_for_path(raw) == expected


names_text = st.lists(
    st.one_of(
        st.characters(),
        st.sampled_from("./\\ :*?\"<>|\t\n\r\x85\u2028" + BIDI_AND_FORMAT),
        st.sampled_from(["..", "CON", "nul.txt", "Com1", "e\u0301", "\U0001f600", "\u00e9" * 30]),
    ),
    max_size=40,
).map("".join)


@given(names_text, names_text, st.integers(min_value=8, max_value=300))
def test_any_text_becomes_a_safe_component(name: str, fallback: str, max_bytes: int) -> None:
    component = safe_component(name, fallback, max_bytes)
    assert_safe_path(component, max_bytes)
    assert "/" not in component


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from(["", "posts", "media", "files/x", "files/X", "a/../b"]), names_text),
             max_size=40),
    st.integers(min_value=12, max_value=120),
)
def test_allocated_paths_are_safe_unique_and_stable(calls: list[tuple[str, str]], cap: int) -> None:
    def run() -> list[str]:
        names = NameAllocator(max_component_bytes=cap, max_path_bytes=cap + 20)
        return [names.allocate(folder, name, "item") for folder, name in calls]

    paths = run()
    for path in paths:
        assert_safe_path(path, cap + 20)
    assert len({unicodedata.normalize("NFC", p.casefold()) for p in paths}) == len(paths)
    assert run() == paths


@given(st.text())
def test_usernames_become_short_ascii_file_name_parts(raw: str) -> None:
    cleaned = sanitize_for_path(raw)
    assert 1 <= len(cleaned) <= 64
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in cleaned)


@settings(max_examples=500)
@given(st.text(st.sampled_from("aZ09_-. ~COMLPTNUaux$"), max_size=40), st.integers(min_value=8, max_value=40))
def test_the_plain_ascii_fast_path_gives_what_the_full_cleaning_gives(name: str, max_bytes: int) -> None:
    fast = safe_component(name, "file", max_bytes)
    with mock.patch.object(names, "_PLAIN", re.compile(r"(?!)")):  # never matches: the full path
        assert safe_component(name, "file", max_bytes) == fast


def test_plain_names_take_the_fast_path() -> None:
    with mock.patch.object(unicodedata, "category", side_effect=AssertionError("per-character check")):
        assert safe_component("my-photo_2.final.jpg", "file") == "my-photo_2.final.jpg"


def test_asking_again_for_a_folder_or_a_reservation_gives_what_the_first_ask_gave() -> None:
    fresh, again = NameAllocator(), NameAllocator()
    for allocator in (fresh, again):
        allocator.reserve("posts", "index.md", "_index.md")
    again.allocate("Posts", "x.md", "f")  # another spelling first: the folder keeps it (first spelling wins)
    fresh.allocate("Posts", "x.md", "f")
    for allocator in (fresh, again):
        allocator.reserve("posts", "index.md", "_index.md")
    assert [fresh.allocate("posts", n, "f") for n in ("Index.md", "a.md", "A.md")] == \
        [again.allocate("posts", n, "f") for n in ("Index.md", "a.md", "A.md")] == \
        ["posts/Index-2.md", "posts/a.md", "posts/A-2.md"]
