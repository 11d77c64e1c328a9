"""Text that came from outside (a publisher's ExportRequested, a step's failure reason) reaches the
operator's terminal with its control and bidi characters as escapes: ``show`` and ``events`` print a
username holding ESC [2J (clear the screen) or U+202E (reverse the line) as ``\\x1b[2J`` and
``\\u202e``, never as is; ``--json`` stays JSON that reads back to the same text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.operator import cli as op
from services.operator import inspect
from shared.core import events as ev
from shared.core.lifecycle import fold
from shared.core.printable import name_problem, printable

IDS = dict(tenant_id="t1", export_id="exp_1")
HOSTILE = "ada\x1b[2J\x1b]0;pwned\x07\u202egpj.exe\x9b"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")
ESCAPED = ("\\x1b[2J", "\\x1b]0;pwned\\x07", "\\u202egpj.exe", "\\x9b")
# Built without validation: a request holding these in its username is a bad event every reader drops
# (tests/unit/test_event_text_fields.py); the operator's printing escapes them all the same.
EVENTS = (ev.ExportRequested.model_construct(**IDS, user_id="u", user_email=f"{HOSTILE}@example.org",
                                             username=HOSTILE, mode="blog", include_images=True,
                                             delivery_method="email"),
          ev.StepFailed(**IDS, step="catalog", attempt=1, reason=f"step {HOSTILE}"),
          ev.ExportFailed(**IDS, step="catalog", reason=f"failed {HOSTILE}\nforged line"))


def _folded() -> inspect.Folded:
    return inspect.Folded(fold(EVENTS), tuple(enumerate(EVENTS, start=1)))


def _clean(text: str) -> None:
    assert not any(c in text for c in RAW), text
    assert all(e in text for e in ESCAPED), text


def test_printable_escapes_control_and_bidi_characters_and_nothing_else() -> None:
    assert printable(HOSTILE) == "ada\\x1b[2J\\x1b]0;pwned\\x07\\u202egpj.exe\\x9b"
    assert printable("a\nb\tc\x7f\u2066") == "a\\nb\\tc\\x7f\\u2066"
    assert printable("Zoë — 東京 ✓") == "Zoë — 東京 ✓"
    assert printable(printable(HOSTILE)) == printable(HOSTILE)  # escaping twice changes nothing


def test_event_lines_print_a_publishers_text_as_escapes() -> None:
    for seq, event in enumerate(EVENTS, start=1):
        line = inspect.event_line(seq, event)
        assert "\n" not in line and not any(c in line for c in RAW), line
    _clean(inspect.event_line(1, EVENTS[0]))
    assert "\\nforged line" in inspect.event_line(3, EVENTS[2])


def test_show_prints_a_publishers_text_as_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    folded = _folded()
    view = op._view(folded, None, None, datetime.now(UTC))
    op._print_show(view, folded)
    out = capsys.readouterr().out
    _clean(out)
    lines = out.splitlines()
    requested, retries, failure = (next(x for x in lines if x.startswith(w)) for w in ("requested", "retries",
                                                                                         "failure"))
    _clean(requested)
    assert "\\x1b" in retries and "\\u202e" in retries and "\\nforged line" in failure
    assert not any(line.startswith("forged line") for line in lines), lines
    back = json.loads(json.dumps(view, indent=1, default=str))  # --json: the text itself, escaped by JSON
    assert back["request"]["username"] == HOSTILE and back["failure"] == f"failed {HOSTILE}\nforged line"


def test_event_lines_leave_out_empty_text_fields_like_unset_ones() -> None:
    """Seen: an event with no worker printed ``worker=`` at the end of its line (exclude_none drops None,
    not ""); an empty field says nothing, like an unset one. A set one is still printed."""
    bare = inspect.event_line(2, EVENTS[1])
    assert "worker=" not in bare and bare.endswith(f"reason=step {printable(HOSTILE)}"), bare
    cancelled = inspect.event_line(4, ev.CancelRequested(**IDS, requested_by="u"))
    assert "operator=" not in cancelled and "reason=" not in cancelled and "requested_by=u" in cancelled, cancelled
    assert "worker=host-42" in inspect.event_line(5, EVENTS[1].model_copy(update={"worker": "host-42"}))


def test_a_lone_surrogate_is_no_printable_text() -> None:
    """Half a UTF-16 pair (from a JSON ``\\ud800`` escape) is no character and has no UTF-8: printing
    it raised UnicodeEncodeError, and a username holding it could not be appended as an event."""
    from shared.core.printable import has_unprintable

    assert has_unprintable("\ud800") and has_unprintable("a\udcffb")
    assert printable("a\ud800b\udfff") == "a\\ud800b\\udfff"
    assert not has_unprintable("Zoë — 東京 ✓ 😀")  # a whole pair is a character


def test_printable_escapes_the_arabic_letter_mark_a_bidi_control_too() -> None:
    """U+061C (ARABIC LETTER MARK) is one of Unicode's bidi controls, like U+200F and U+2066–2069: it
    printed as is, so a username holding it could reorder the operator's line."""
    assert printable("ada\u061cgpj.exe") == "ada\\u061cgpj.exe"


def test_a_json_log_line_keeps_two_lone_surrogates_two_and_escapes_line_breaks_as_the_same_value() -> None:
    """A high then a low lone surrogate, each written as its \\u escape, read back as the one character
    the pair makes (U+103FF): a log line said something nobody sent."""
    import json

    from shared.core.printable import json_printable

    sent = "\ud800\udfff a\u2028b\u202ec"
    line = json_printable(json.dumps({"m": sent}, ensure_ascii=False))
    assert not any(ch in line for ch in "\ud800\udfff\u2028\u202e")
    read = json.loads(line)["m"]
    assert "\U000103ff" not in read and read.startswith("\\ud800\\udfff")  # as printable() shows them
    assert read.endswith(" a\u2028b\u202ec")  # the other escapes are the same value


@pytest.mark.parametrize(("name", "problem"), [
    ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", None),  # Scotland's flag
    ("Ann \U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f!", None),  # Wales's
    ("ann\U000e0067\U000e0062\U000e007f", "U+E0067"),  # tags after no flag
    ("\U0001f3f4\U000e0067\U000e0062", "U+E0067"),  # no CANCEL TAG
    ("\U0001f3f4\U000e007f", "U+E007F"),  # CANCEL TAG alone
    ("\U0001f3f4\U000e0067\U000e007fx\U000e0067", "U+E0067"),  # a tag after the flag ended
    # review rev3: any tag run after the flag hid ASCII text ("admin 🏴" + " ignore all previous…")
    ("admin \U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in " ignore all previous") + "\U000e007f", "U+E0020"),
    ("bob\U0001f3f4\U000e0061\U000e0061\U000e007f", "U+E0061"),  # two letters: no subdivision code
    ("\U0001f3f4\U000e0047\U000e0042\U000e0053\U000e0043\U000e0054\U000e007f", "U+E0047"),  # capitals
    ("\U0001f3f4" + "\U000e0078" * 240 + "\U000e007f", "U+E0078"),
])
def test_tag_characters_are_a_name_s_only_as_a_subdivision_flag(name: str, problem: str | None) -> None:
    assert (name_problem(name) or None) == (None if problem is None else
                                            f"holds an invisible format character ({problem})")


@pytest.mark.parametrize(("name", "shown"), [
    ("ann\u200b", "ann"), ("\ufeffa\u00adn\u2060n", "ann"), ("ann", "ann"), ("Zo\u00eb", "Zo\u00eb"),
    ("\U0001f468\u200d\U0001f469 \u2764\ufe0f", "\U0001f468\u200d\U0001f469 \u2764\ufe0f"),  # joiners, selectors stay
    ("\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f\U000e0067",  # a flag's tags stay
     "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"),
    ("a\u200b\u202eb\u200e\u061c", "a\u202eb\u200e\u061c"),  # bidi controls are never left out unseen
    ("\u200b\u06dd\u0661\u2060", "\u06dd\u0661"),  # a format character that shows (END OF AYAH) is kept
])
def test_a_shown_name_leaves_out_only_the_invisible_format_characters(name: str, shown: str) -> None:
    from shared.core.printable import left_out, shown_name

    assert shown_name(name) == shown and shown_name(shown) == shown
    assert (left_out(name) is None) == (name == shown)


def test_what_is_left_out_is_said_once_a_character() -> None:
    from shared.core.printable import left_out

    assert left_out("\ufeffann\u200b\u200b") == ("is taken as 'ann', without its invisible format characters "
                                                 "(U+200B, U+FEFF), as the gateway takes a token's username")
