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
