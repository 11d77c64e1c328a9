"""masked_url hides what the NATS client reads as the password: everything between the first ':' of
the user part and the LAST '@' before the host (urllib's rule, which nats-py parses with)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from shared.runtime.settings import masked_url


@pytest.mark.parametrize(("url", "shown"), [
    ("nats://admin:s3cret@h:4222", "nats://admin:***@h:4222"),
    ("nats://admin:p@ssw0rd@h:4222", "nats://admin:***@h:4222"),  # '@' in the password (review of d317cca)
    ("admin:p@ss@h:4222", "admin:***@h:4222"),  # no scheme: the client adds nats://
    ("nats://t0k@n@h:4222", "nats://***@h:4222"),  # a token alone
    ("nats://h:4222/a@b", "nats://h:4222/a@b"),  # no user part: an '@' after the host is not one
    ("nats://a:x@h1:4222,nats://b:y@z@h2:4222", "nats://a:***@h1:4222,nats://b:***@h2:4222"),
])
def test_the_password_the_client_reads_is_never_shown(url: str, shown: str) -> None:
    assert masked_url(url) == shown
    for part in url.split(","):
        password = urlsplit(part if "://" in part else f"nats://{part}").password
        if password:
            assert password not in masked_url(url)


def test_one_url_whose_password_holds_a_comma_is_masked_whole() -> None:
    """The mail service's URL is one URL: split on ',' as a NATS list is, a password holding a comma was
    shown up to it (review of 1e3f742)."""
    url = "https://u:pa,ss@mail.example/send"
    assert urlsplit(url).password == "pa,ss"
    assert masked_url(url, many=False) == "https://u:***@mail.example/send"
