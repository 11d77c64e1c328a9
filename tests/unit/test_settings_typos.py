"""A GROVE_* variable that is no setting but nearly one (a typo, a single underscore for a double) is
named at start, with the setting it was probably meant for: pydantic-settings ignores unknown ones,
so GROVE_CONCURENCY=8 ran with 4 and GROVE_S3_ACCESS_KEY_ID left the SDK's own credentials in use,
with nothing said."""

from __future__ import annotations

from shared.runtime.settings import unknown_variables


def test_a_near_miss_is_named_with_what_it_was_probably_meant_for() -> None:
    lines = unknown_variables({"GROVE_CONCURENCY": "8", "GROVE_S3_ACCESS_KEY_ID": "k", "grove_ack_wiat_s": "2",
                               "GROVE_MAIL__SMTP_PASWORD": "p", "PATH": "/bin"})
    assert lines == [
        "GROVE_CONCURENCY is no setting and is ignored: did you mean GROVE_CONCURRENCY?",
        "GROVE_MAIL__SMTP_PASWORD is no setting and is ignored: did you mean GROVE_MAIL__SMTP_PASSWORD?",
        "GROVE_S3_ACCESS_KEY_ID is no setting and is ignored: did you mean GROVE_S3__ACCESS_KEY_ID?",
        "grove_ack_wiat_s is no setting and is ignored: did you mean GROVE_ACK_WAIT_S?",
    ]


def test_settings_and_other_tools_variables_are_not_named() -> None:
    assert unknown_variables({"GROVE_CONCURRENCY": "8", "grove_port": "1", "GROVE_S3__ACCESS_KEY_ID": "k",
                              "GROVE_MAIL__SMTP_PASSWORD": "p", "GROVE_FAULTS": "x", "GROVE_IMAGE": "i",
                              "GROVE_TEST_POSTGRES": "1", "GROVE_S3": "{}"}) == []


def test_every_setting_is_read_by_some_code() -> None:
    """Seen: GROVE_SPOOL_THRESHOLD was a setting no code read — set, it changed nothing, and said nothing."""
    import re
    from pathlib import Path

    from pydantic import BaseModel

    from shared.runtime.settings import Settings

    root = Path(__file__).resolve().parents[2]
    code = "\n".join(p.read_text() for top in ("shared", "services") for p in (root / top).rglob("*.py")
                     if p.name != "settings.py")
    unread = []

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            if not re.search(rf"\.{name}\b", code) and f'"{name}"' not in code:
                unread.append(name)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation)
    walk(Settings)
    assert unread == [], unread
