"""The Kubernetes notifier runs against an SMTP relay that takes mail without a login (a relay inside the
cluster, a smarthost by IP). Its Deployment required both login keys in the Secret: left out, the kubelet
does not start the container (CreateContainerConfigError); given empty, the notifier refuses to start
("GROVE_MAIL__SMTP_USERNAME is not set"); given anything else, it logs in with them and the relay refuses
every email. Now the two keys are optional: left out of the Secret, they are unset and no login is
tried; given, each is still held to the rule every credential is (a placeholder stops it at start)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.runtime.secrets import SecretError, require_settings
from tests.integration.deploy.test_manifests import build_settings, of_kind

LOGIN = ("GROVE_MAIL__SMTP_USERNAME", "GROVE_MAIL__SMTP_PASSWORD")


class NotStarted(Exception):
    """What the kubelet says of a container whose env names a Secret key that is not there."""


def container_env(secret: dict[str, str]) -> dict[str, str]:
    """The notifier container's environment as the kubelet builds it from these manifests and ``secret``."""
    (deployment,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "grove-notifier"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = dict(of_kind("ConfigMap")[0]["data"])
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref: dict[str, Any] = entry["valueFrom"]["secretKeyRef"]
        if ref["key"] in secret:
            env[entry["name"]] = secret[ref["key"]]
        elif not ref.get("optional"):
            raise NotStarted(f"CreateContainerConfigError: couldn't find key {ref['key']} in Secret grove-export")
    return env


def test_the_notifier_starts_against_a_relay_that_takes_mail_without_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = {k: v for k, v in of_kind("Secret")[0]["stringData"].items() if k not in LOGIN}
    secret["NATS_PASSWORD_NOTIFIER"] = "a-real-password-for-the-notifier-1"
    env = container_env(secret)
    settings = build_settings({**env, "GROVE_MAIL__SMTP_SECURITY": "plain", "GROVE_MAIL__SMTP_PORT": "25",
                               "GROVE_MAIL__SMTP_HOST": "relay.mail.svc.cluster.local"}, monkeypatch)
    assert settings.mail.smtp_username is None and settings.mail.smtp_password is None
    require_settings(settings)  # starts: no login, nothing to refuse


def test_a_login_given_is_still_held_to_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = dict(of_kind("Secret")[0]["stringData"])  # the template's CHANGE_ME login
    secret["NATS_PASSWORD_NOTIFIER"] = "a-real-password-for-the-notifier-1"
    settings = build_settings(container_env(secret), monkeypatch)
    with pytest.raises(SecretError, match="GROVE_MAIL__SMTP_USERNAME is a placeholder"):
        require_settings(settings)
