"""Secrets that sign things: no usable default, no placeholder, no short key.

``GROVE_JWT_SECRET`` signs bearer tokens and ``GROVE_LINK_SECRET`` signs the filesystem store's
download links; they are separate keys so that one leaking does not give the other away. A
process that needs one refuses to start without a good one (:func:`require`), and the gateway
without two different ones (:func:`require_signing`), with one line saying which variable is wrong. The only place secrets are made up is the local stack
(``grove-export serve`` / ``demo``), which writes random ones into its data folder
(:func:`local_secrets`) — never an environment flag that could be copied into production.
"""

from __future__ import annotations

import hmac
import json
import secrets
from pathlib import Path

from pydantic import SecretStr

MIN_BYTES = 32

# Every value that was ever published as a default or an example (settings, compose, k8s, docs):
# anyone can read them, so a key equal to one of them signs nothing.
KNOWN_DEFAULTS = frozenset({
    "grove-local-development-secret-change-me!!",
    "grove-compose-development-secret-change-me",
    "CHANGE_ME_at_least_32_random_characters",
    "a-test-secret-that-is-long-enough-for-hs256!",
})
PLACEHOLDER_WORDS = ("change-me", "change_me", "changeme", "placeholder", "example", "replace-me",
                     "replace_me", "your-secret", "your_secret", "development-secret", "default", "xxxxxxxx",
                     "secret-here")
SECRET_NAMES = {"jwt": "GROVE_JWT_SECRET", "link": "GROVE_LINK_SECRET"}


class SecretError(Exception):
    """A secret is missing or unusable; the message is one line naming the variable."""


def problem(value: str | None) -> str | None:
    """Why ``value`` cannot be a signing key, or None when it can."""
    if value is None or not value.strip():
        return "is not set"
    if value in KNOWN_DEFAULTS:
        return "is a published default"
    lowered = value.lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS) or (value.startswith("<") and value.endswith(">")):
        return "is a placeholder"
    if len(value.encode()) < MIN_BYTES:
        return f"is shorter than {MIN_BYTES} bytes"
    if len(set(value)) < 8:
        return "is too repetitive to be random"
    return None


def require(name: str, value: SecretStr | None) -> bytes:
    """The key bytes of secret ``name`` (``jwt`` or ``link``), or :class:`SecretError`."""
    raw = value.get_secret_value() if value is not None else None
    why = problem(raw)
    if why is not None:
        var = SECRET_NAMES[name]
        raise SecretError(f"{var} {why}: set it to at least {MIN_BYTES} random bytes "
                          f"(e.g. `python3 -c \"import secrets; print(secrets.token_urlsafe(48))\"`)")
    assert raw is not None
    return raw.encode()


def require_signing(jwt: SecretStr | str | None, link: SecretStr | str | None) -> tuple[bytes, bytes]:
    """Both signing keys, each good and the two different, or :class:`SecretError`. One key in both
    variables would let whoever holds the link key (the filesystem store's download links) mint
    bearer tokens: the README promises two separate keys."""
    jwt_key = require("jwt", SecretStr(jwt) if isinstance(jwt, str) else jwt)
    link_key = require("link", SecretStr(link) if isinstance(link, str) else link)
    if hmac.compare_digest(jwt_key, link_key):
        raise SecretError(f"{SECRET_NAMES['link']} is the same as {SECRET_NAMES['jwt']}: they must be two "
                          "different random keys, so that a leaked link key cannot sign bearer tokens")
    return jwt_key, link_key


def local_secrets(data_dir: Path) -> dict[str, str]:
    """Random secrets of the local stack kept (0600) in ``data_dir/secrets.json``: the environment
    variables that the gateway and ``grove-export token`` use. Made on first use, then reused."""
    path = data_dir / "secrets.json"
    if path.exists():
        stored = dict(json.loads(path.read_text()))
        if all(problem(stored.get(var)) is None for var in SECRET_NAMES.values()) and \
                stored[SECRET_NAMES["jwt"]] != stored[SECRET_NAMES["link"]]:
            return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    made = {var: secrets.token_urlsafe(48) for var in SECRET_NAMES.values()}
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps(made, indent=1))
    return made
