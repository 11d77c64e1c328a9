"""Secrets: none has a usable default or may be a placeholder; those that sign things are long.

``GROVE_JWT_SECRET`` signs bearer tokens and ``GROVE_LINK_SECRET`` signs the filesystem store's
download links; they are separate keys so that one leaking does not give the other away. A
process that needs one refuses to start without a good one (:func:`require`), and the gateway
without two different ones (:func:`require_signing`), with one line saying which variable is wrong.
Each may name the key it had before a rotation (``GROVE_JWT_SECRET_PREVIOUS``,
``GROVE_LINK_SECRET_PREVIOUS``, one key each): that key still verifies what it signed, never signs,
and is held to the same rule (:func:`verifying`).
The only place secrets are made up is the local stack (``grove-export serve`` / ``demo``), which writes random ones into its data folder
(:func:`local_secrets`) — never an environment flag that could be copied into production.

Every other credential a service uses (its NATS password, the S3 keys, the mail backend's, the
content database's password) must be set and no placeholder (:func:`placeholder`): every service
refuses to start otherwise (:func:`require_settings`), so deploy/k8s/secret.yaml's ``CHANGE_ME``
values never reach a running system.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from shared.runtime.regularfile import NotRegularFile, open_regular

if TYPE_CHECKING:
    from shared.runtime.settings import Settings

MIN_BYTES = 32

# Every value that was ever published as a default or an example (settings, compose, k8s, docs):
# anyone can read them, so a key equal to one of them signs nothing.
KNOWN_DEFAULTS = frozenset({
    "grove-local-development-secret-change-me!!",
    "grove-compose-development-secret-change-me",
    "CHANGE_ME_at_least_32_random_characters",
    "a-test-secret-that-is-long-enough-for-hs256!",
})
# A value holding one of these (any case) was written to be replaced: deploy/k8s/secret.yaml's
# CHANGE_ME and its kin. Words short enough to turn up in a random key by chance are not here.
PLACEHOLDER_WORDS = ("change-me", "change_me", "change me", "changeme", "changeit", "placeholder", "example",
                     "replace-me", "replace_me", "replaceme", "your-secret", "your_secret", "your-password",
                     "your_password", "development-secret", "default", "xxxxxxxx", "secret-here")
# Whole values (any case) that are templates or vendors' defaults, never a credential.
PLACEHOLDER_VALUES = frozenset({"password", "secret", "minioadmin", "todo", "tbd", "none", "null", "xxx", "***"})
SECRET_NAMES = {"jwt": "GROVE_JWT_SECRET", "link": "GROVE_LINK_SECRET"}
# The key each had before a rotation: it verifies (tokens and links signed before the switch) and never
# signs. One key, not a list: a key may hold any character, a comma too, and one rotation at a time is
# all a rotation needs (the old key is dropped once what it signed has expired). Optional: the local
# stack makes none.
PREVIOUS_NAMES = {name: f"{var}_PREVIOUS" for name, var in SECRET_NAMES.items()}
# A local stack's data folder, when it makes it: its owner's only. It holds every archive, the emails
# with their download links, the databases and the logs (at the umask's 0755, any user could read them).
DATA_DIR_MODE = 0o700
MAX_LOCAL_FILE = 1 << 20  # secrets.json and nats-users.json hold a few hundred bytes; past this, read as cut
SECRETS_FILE = "secrets.json"  # the local stack's, in its data folder (:func:`local_secrets`)


class SecretError(Exception):
    """A secret is missing or unusable; the message is one line naming the variable."""


def placeholder(value: str | None) -> str | None:
    """Why ``value`` cannot be any secret (a password, an access key, a signing key): unset, empty, a
    published default or a placeholder; None when it may be one. The one rule for every secret."""
    if value is None or not value.strip():
        return "is not set"
    if value in KNOWN_DEFAULTS:
        return "is a published default"
    lowered = value.strip().lower()
    if any(word in lowered for word in PLACEHOLDER_WORDS) or lowered in PLACEHOLDER_VALUES or \
            (lowered.startswith("<") and lowered.endswith(">")) or lowered.startswith("${"):
        return "is a placeholder"
    return None


def problem(value: str | None) -> str | None:
    """Why ``value`` cannot be a signing key, or None when it can."""
    if (why := placeholder(value)) is not None:
        return why
    assert value is not None
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


def previous(name: str, value: SecretStr | str | None) -> bytes | None:
    """The key bytes secret ``name`` had before a rotation (``GROVE_…_PREVIOUS``), or None when it is
    unset or empty (compose passes an unset optional variable as empty). It is held to the current
    key's rule (:func:`problem`: a key too weak to sign is too weak to verify), or :class:`SecretError`."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if raw is None or not raw.strip():
        return None
    if (why := problem(raw)) is not None:
        raise SecretError(f"{PREVIOUS_NAMES[name]} {why}: it must be the key {SECRET_NAMES[name]} had before "
                          "(a key too weak to sign is too weak to verify), or be unset")
    return raw.encode()


def verifying(name: str, current: SecretStr | None, before: SecretStr | None) -> tuple[bytes, ...]:
    """The keys that verify what secret ``name`` signs: the current one (:func:`require`, the only one
    that signs), then the previous one (:func:`previous`) when it is set, which must differ from it,
    or :class:`SecretError`."""
    key, old = require(name, current), previous(name, before)
    if old is None:
        return (key,)
    if hmac.compare_digest(key, old):
        var = SECRET_NAMES[name]
        raise SecretError(f"{PREVIOUS_NAMES[name]} is the same as {var}: set it to the key {var} had before, "
                          "or unset it")
    return key, old


def _secret(value: SecretStr | str | None) -> SecretStr | None:
    return SecretStr(value) if isinstance(value, str) else value


def require_signing(jwt: SecretStr | str | None, link: SecretStr | str | None,
                    jwt_previous: SecretStr | str | None = None,
                    link_previous: SecretStr | str | None = None) -> tuple[bytes, bytes]:
    """Both signing keys, each good and the two different, or :class:`SecretError`; the previous keys
    too (:func:`verifying`), and no token key the same as a link key. One key on both sides would let
    whoever holds the link key (the filesystem store's download links) mint bearer tokens: the
    README promises two separate keys."""
    jwt_keys = verifying("jwt", _secret(jwt), _secret(jwt_previous))
    link_keys = verifying("link", _secret(link), _secret(link_previous))
    names = {side: (SECRET_NAMES[side], PREVIOUS_NAMES[side]) for side in SECRET_NAMES}
    for jwt_var, jwt_key in zip(names["jwt"], jwt_keys, strict=False):
        for link_var, link_key in zip(names["link"], link_keys, strict=False):
            if hmac.compare_digest(jwt_key, link_key):
                raise SecretError(f"{link_var} is the same as {jwt_var}: they must be two different random "
                                  "keys, so that a leaked link key cannot sign bearer tokens")
    return jwt_keys[0], link_keys[0]


def require_signing_env(env: Mapping[str, str]) -> tuple[bytes, bytes]:
    """:func:`require_signing` of the keys an environment names (a local stack's gateway gets its
    previous keys, if any, from the user's)."""
    return require_signing(env.get(SECRET_NAMES["jwt"]), env.get(SECRET_NAMES["link"]),
                           env.get(PREVIOUS_NAMES["jwt"]), env.get(PREVIOUS_NAMES["link"]))


def used_secrets(settings: Settings) -> list[tuple[str, str | None]]:
    """(variable, value) of every credential these settings make a process use: the NATS password
    when it logs in as a user, the S3 keys when the store is S3 and they are given (unset: the SDK's
    own credential chain), the mail backend's, and the password in a PostgreSQL DSN. A deployment
    hands each service only its own, so this is what that service uses."""
    def raw(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    used: list[tuple[str, str | None]] = []
    if settings.nats_user or settings.nats_password is not None:
        used.append(("GROVE_NATS_PASSWORD", raw(settings.nats_password)))
    if settings.store == "s3":
        used += [(var, value) for var, value in (("GROVE_S3__ACCESS_KEY_ID", settings.s3.access_key_id),
                                                 ("GROVE_S3__SECRET_ACCESS_KEY", raw(settings.s3.secret_access_key)))
                 if value is not None]
    mail = settings.mail
    if mail.backend == "smtp" and (mail.smtp_username is not None or mail.smtp_password is not None):
        used += [("GROVE_MAIL__SMTP_USERNAME", mail.smtp_username),  # a login needs both
                 ("GROVE_MAIL__SMTP_PASSWORD", raw(mail.smtp_password))]
    if mail.backend == "http":
        used.append(("GROVE_MAIL__HTTP_API_KEY", raw(mail.http_api_key)))
    dsn = settings.content_dsn.get_secret_value()
    if "://" in dsn and not dsn.startswith("sqlite:"):
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
        if password is not None:
            used.append(("GROVE_CONTENT_DSN's password", unquote(password)))
    return used


def require_settings(settings: Settings, *, signing: bool = False) -> None:
    """Refuse to start (:class:`SecretError`, one line naming the variable, never its value) when a
    credential the process uses is unset, empty or a placeholder; with ``signing`` (the gateway), also
    without two good, different signing keys, or with a previous key that is not a good one
    (:func:`require_signing`). Every service calls this before it connects anywhere."""
    for var, value in used_secrets(settings):
        why = placeholder(value)
        if why is not None:
            raise SecretError(f"{var} {why}: set the real credential (deploy/k8s/secret.yaml and "
                              "deploy/.env.example only show where it goes)")
    if signing:
        require_signing(settings.jwt_secret, settings.link_secret, settings.jwt_secret_previous,
                        settings.link_secret_previous)


def _read_local_file(path: Path, what: str, remedy: str) -> dict[str, str]:
    """What one of a local stack's JSON files of strings holds, or :class:`SecretError` naming the file,
    what is wrong with it and ``remedy``: the one rule for reading :func:`read_local_secrets`' and
    :func:`read_local_passwords`' files."""
    try:  # a FIFO or a link to /dev/zero in its place was waited on, or read, for ever
        with open_regular(path) as f:
            stored = json.loads(f.read(MAX_LOCAL_FILE))
    except NotRegularFile:
        why = "not a regular file: a folder, a device or a pipe"
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        why = f"not JSON at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else "not UTF-8 text"
    except RecursionError:  # arrays nested thousands deep: past the parser's stack, a traceback
        why = "JSON nested too deep"
    else:
        if isinstance(stored, dict) and all(isinstance(v, str) for v in stored.values()):
            return stored
        why = "not a JSON object of strings"
    raise SecretError(f"the local stack's {what} {path} is damaged ({why}): {remedy}")


def read_local_secrets(path: Path) -> dict[str, str]:
    """What a local stack's ``secrets.json`` holds: a JSON object of strings, as :func:`local_secrets`
    writes it. Anything else (cut short, not JSON, not UTF-8) is a :class:`SecretError` naming the file:
    it is never replaced here, since a good file cut short may be restored and new secrets would void
    every token and link signed with the old ones."""
    return _read_local_file(path, "secrets file", "restore it, or delete it to have new secrets made (tokens "
                            "and links signed with the old ones then stop working)")


def read_local_passwords(path: Path) -> dict[str, str]:
    """What a local stack's ``nats-users.json`` holds: NATS user → password, a JSON object of strings.
    Anything else is a :class:`SecretError` naming the file, as for :func:`read_local_secrets`; it is not
    replaced here either (it may be a good file cut short), though new passwords cost nothing: each
    start of the stack writes them into its nats.conf, and operator commands read them from this file."""
    return _read_local_file(path, "NATS passwords file", "restore it, or delete it and start the stack again "
                            "(`grove-export serve`), which makes new passwords")


def write_private(path: Path, text: str) -> None:
    """Put ``text`` (a secret, or what points at one) in ``path``, readable by its owner only from its
    first byte: written to a new 0600 file beside it, then renamed over it. A file written first and
    narrowed after (``write_text`` then ``chmod``) was readable by others in between, and whoever
    opened it then (inotify says when a file appears) reads it through that open file for ever; a file
    kept in place keeps its old readers too. The rename also never leaves a file cut short."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(tmp, path)


def local_secrets(data_dir: Path) -> dict[str, str]:
    """Random secrets of the local stack kept (0600) in ``data_dir/secrets.json``: the environment
    variables that the gateway and ``grove-export token`` use. Made on first use, then reused."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        stored = read_local_secrets(path)
        if all(problem(stored.get(var)) is None for var in SECRET_NAMES.values()) and \
                stored[SECRET_NAMES["jwt"]] != stored[SECRET_NAMES["link"]]:
            return stored
    data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    made = {var: secrets.token_urlsafe(48) for var in SECRET_NAMES.values()}
    write_private(path, json.dumps(made, indent=1))
    return made
