"""No process starts with a secret someone else could know; the local stack makes its own."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.devtools.stack.supervisor import local_env
from shared.runtime.secrets import KNOWN_DEFAULTS, SECRET_NAMES, local_secrets, placeholder, problem
from tests.integration.frontdoor.conftest import OLD_PUBLIC_DEFAULT
from tests.support.env import TEST_SECRETS

ROOT = Path(__file__).resolve().parents[3]


def _cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GROVE_")}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(("jwt_secret", "link_secret", "named", "why"), [
    (None, None, "GROVE_JWT_SECRET", "is not set"),
    (OLD_PUBLIC_DEFAULT, TEST_SECRETS["link"], "GROVE_JWT_SECRET", "published default"),
    ("grove-compose-development-secret-change-me", TEST_SECRETS["link"], "GROVE_JWT_SECRET", "published default"),
    ("CHANGE_ME_at_least_32_random_characters", TEST_SECRETS["link"], "GROVE_JWT_SECRET", "published default"),
    ("<your-secret-here-at-least-32-characters>", TEST_SECRETS["link"], "GROVE_JWT_SECRET", "placeholder"),
    ("Xq9-short-but-random", TEST_SECRETS["link"], "GROVE_JWT_SECRET", "shorter than 32 bytes"),
    (TEST_SECRETS["jwt"], None, "GROVE_LINK_SECRET", "is not set"),
    (TEST_SECRETS["jwt"], "z" * 40, "GROVE_LINK_SECRET", "repetitive"),
    (TEST_SECRETS["jwt"], TEST_SECRETS["jwt"], "GROVE_LINK_SECRET is the same as GROVE_JWT_SECRET", "different"),
], ids=lambda v: "test-secret" if v in TEST_SECRETS.values() else None)  # one name in every process (-n)
def test_run_gateway_refuses_to_start_without_a_usable_secret(tmp_path: Path, jwt_secret: str | None,
                                                             link_secret: str | None, named: str, why: str) -> None:
    env = {"GROVE_STORE_ROOT": str(tmp_path / "store"), "GROVE_READ_MODEL_DB": str(tmp_path / "rm.db"),
           "GROVE_NATS_URL": "nats://127.0.0.1:1", "GROVE_PORT": "1"}
    if jwt_secret is not None:
        env["GROVE_JWT_SECRET"] = jwt_secret
    if link_secret is not None:
        env["GROVE_LINK_SECRET"] = link_secret
    out = _cli(["run", "gateway"], env, tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0
    assert len(lines) == 1 and named in lines[0] and why in lines[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("previous", "named", "why"), [
    ({"GROVE_JWT_SECRET_PREVIOUS": "Xq9-short-but-random"}, "GROVE_JWT_SECRET_PREVIOUS", "shorter than 32 bytes"),
    ({"GROVE_LINK_SECRET_PREVIOUS": "CHANGE_ME_at_least_32_random_characters"}, "GROVE_LINK_SECRET_PREVIOUS",
     "published default"),
    ({"GROVE_LINK_SECRET_PREVIOUS": "z" * 40}, "GROVE_LINK_SECRET_PREVIOUS", "repetitive"),
    ({"GROVE_JWT_SECRET_PREVIOUS": TEST_SECRETS["jwt"]}, "GROVE_JWT_SECRET_PREVIOUS is the same as GROVE_JWT_SECRET",
     "unset it"),
    ({"GROVE_JWT_SECRET_PREVIOUS": TEST_SECRETS["link"]}, "GROVE_LINK_SECRET is the same as GROVE_JWT_SECRET_PREVIOUS",
     "different"),
])
def test_run_gateway_refuses_a_previous_key_it_would_refuse_as_the_current_one(
        tmp_path: Path, previous: dict[str, str], named: str, why: str) -> None:
    env = {"GROVE_STORE_ROOT": str(tmp_path / "store"), "GROVE_READ_MODEL_DB": str(tmp_path / "rm.db"),
           "GROVE_NATS_URL": "nats://127.0.0.1:1", "GROVE_PORT": "1", "GROVE_JWT_SECRET": TEST_SECRETS["jwt"],
           "GROVE_LINK_SECRET": TEST_SECRETS["link"], **previous}
    out = _cli(["run", "gateway"], env, tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and lines[0].startswith(f"grove-export: {named}") and why in lines[0], out.stderr
    assert not any(value in out.stderr for value in previous.values())  # never the value


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_local_stack_refuses_one_key_for_both_signing_secrets(
        tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from services import cli
    from services.devtools import demo
    from services.devtools.stack import supervisor

    class NoStack:  # in-process, so that a regression cannot leave a stack running
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the stack was started with one key for both secrets")

    monkeypatch.setattr(supervisor, "Stack", NoStack)
    monkeypatch.setattr(demo, "Stack", NoStack)
    for var in [k for k in os.environ if k.startswith("GROVE_")]:
        monkeypatch.delenv(var)
    same = TEST_SECRETS["jwt"]
    monkeypatch.setenv("GROVE_JWT_SECRET", same)
    monkeypatch.setenv("GROVE_LINK_SECRET", same)
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--port", "1", "--data", str(tmp_path / "var")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1, lines
    assert "GROVE_LINK_SECRET is the same as GROVE_JWT_SECRET" in lines[0]


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_the_local_stack_refuses_a_weak_previous_key_set_in_the_environment(
        tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Its gateway would inherit it and refuse to start: said once, before anything is written."""
    from services import cli
    from services.devtools import demo
    from services.devtools.stack import supervisor

    class NoStack:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("the stack was started with a weak previous key")

    monkeypatch.setattr(supervisor, "Stack", NoStack)
    monkeypatch.setattr(demo, "Stack", NoStack)
    for var in [k for k in os.environ if k.startswith("GROVE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("GROVE_LINK_SECRET_PREVIOUS", "Xq9-short-but-random")
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--port", "1", "--data", str(tmp_path / "var")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("grove-export: GROVE_LINK_SECRET_PREVIOUS is shorter than 32 bytes"), lines[0]
    assert "Xq9-short-but-random" not in lines[0]
    assert not (tmp_path / "var").exists(), "a refused start wrote secrets.json"


def test_a_local_secrets_file_with_one_key_twice_is_made_afresh(tmp_path: Path) -> None:
    same = TEST_SECRETS["jwt"]
    (tmp_path / "secrets.json").write_text(json.dumps(dict.fromkeys(SECRET_NAMES.values(), same)))
    made = local_secrets(tmp_path)
    assert made["GROVE_JWT_SECRET"] != made["GROVE_LINK_SECRET"] and same not in made.values()


PLACEHOLDER_RUNS = [  # (command, settings, the variable named): deploy/k8s/secret.yaml's values and their kin
    (["run", "catalog"], {"GROVE_NATS_USER": "catalog", "GROVE_NATS_PASSWORD": "CHANGE_ME"}, "GROVE_NATS_PASSWORD"),
    (["run", "gateway"], {"GROVE_NATS_USER": "gateway", "GROVE_NATS_PASSWORD": "changeme"}, "GROVE_NATS_PASSWORD"),
    (["run", "janitor"], {"GROVE_NATS_USER": "janitor", "GROVE_NATS_PASSWORD": ""}, "GROVE_NATS_PASSWORD"),
    (["run", "finalizer"], {"GROVE_NATS_USER": "finalizer"}, "GROVE_NATS_PASSWORD"),
    (["setup", "--nats-only"], {"GROVE_NATS_USER": "admin", "GROVE_NATS_PASSWORD": "Change-Me"}, "GROVE_NATS_PASSWORD"),
    (["janitor"], {"GROVE_NATS_USER": "janitor", "GROVE_NATS_PASSWORD": "<password>"}, "GROVE_NATS_PASSWORD"),
    (["run", "assembler"], {"GROVE_STORE": "s3", "GROVE_S3__ACCESS_KEY_ID": "CHANGE_ME",
                            "GROVE_S3__SECRET_ACCESS_KEY": "kXv3-real-looking"}, "GROVE_S3__ACCESS_KEY_ID"),
    (["run", "canceller"], {"GROVE_STORE": "s3", "GROVE_S3__ACCESS_KEY_ID": "AKIAREALLOOKING",
                            "GROVE_S3__SECRET_ACCESS_KEY": "change_me"}, "GROVE_S3__SECRET_ACCESS_KEY"),
    (["run", "notifier"], {"GROVE_MAIL__BACKEND": "smtp", "GROVE_MAIL__SMTP_USERNAME": "grove",
                           "GROVE_MAIL__SMTP_PASSWORD": "CHANGE_ME"}, "GROVE_MAIL__SMTP_PASSWORD"),
    (["run", "notifier"], {"GROVE_MAIL__BACKEND": "http", "GROVE_MAIL__HTTP_API_KEY": "   "}, "GROVE_MAIL__HTTP_API_KEY"),
    (["run", "catalog"], {"GROVE_CONTENT_DSN": "postgresql://grove:CHANGE_ME@postgres.example.com:5432/grove"},
     "GROVE_CONTENT_DSN's password"),
]


@pytest.mark.parametrize(("command", "env", "named"), PLACEHOLDER_RUNS)
def test_every_service_refuses_a_placeholder_or_empty_credential(tmp_path: Path, command: list[str],
                                                                 env: dict[str, str], named: str) -> None:
    base = {"GROVE_STORE_ROOT": str(tmp_path / "store"), "GROVE_READ_MODEL_DB": str(tmp_path / "rm.db"),
            "GROVE_NATS_URL": "nats://127.0.0.1:1", "GROVE_PORT": "1", "GROVE_JWT_SECRET": TEST_SECRETS["jwt"],
            "GROVE_LINK_SECRET": TEST_SECRETS["link"]}
    out = _cli(command, base | env, tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"grove-export: {named} is "), lines[0]
    assert "CHANGE_ME" not in lines[0] and "example.com" not in lines[0]  # never the value or the DSN


def test_every_value_deploy_ships_as_a_credential_is_refused() -> None:
    import yaml

    secret = yaml.safe_load((ROOT / "deploy/k8s/secret.yaml").read_text())["stringData"]
    assert {"NATS_PASSWORD_ADMIN", "GROVE_S3__SECRET_ACCESS_KEY", "GROVE_MAIL__SMTP_PASSWORD"} <= set(secret)
    for var, value in secret.items():
        if var == "GROVE_CONTENT_DSN":
            value = urlsplit(value).password
        assert placeholder(value) is not None, (var, value)
    for line in (ROOT / "deploy/.env.example").read_text().splitlines():
        var, _, value = line.partition("=")
        if line and not line.startswith("#") and any(w in var for w in ("PASSWORD", "SECRET")):
            assert placeholder(value) is not None, line


def test_credentials_that_tests_and_the_local_stack_use_pass() -> None:
    from tests.cluster.secured import PASSWORDS

    for value in [*PASSWORDS.values(), "testing", "s3cret-pass", "zephyr-test-key", *TEST_SECRETS.values()]:
        assert placeholder(value) is None, value
    for _ in range(200):
        assert placeholder(secrets.token_urlsafe(18)) is None


def test_every_published_value_is_refused() -> None:
    for value in KNOWN_DEFAULTS:
        assert problem(value) is not None, value
    for path in ("deploy/docker-compose.yml", "deploy/k8s/secret.yaml", "README.md", "deploy/README.md"):
        text = (ROOT / path).read_text() if (ROOT / path).exists() else ""
        for var in SECRET_NAMES.values():
            for line in text.splitlines():
                if f"{var}:" in line and "${" not in line and "secretKeyRef" not in line:
                    value = line.split(f"{var}:", 1)[1].strip().strip("\"'")
                    assert not value or problem(value) is not None, (path, line)


def test_the_local_stack_makes_random_secrets_in_its_data_folder_and_token_finds_them(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env = local_env(data, 8080)
    stored = json.loads((data / "secrets.json").read_text())
    assert (data / "secrets.json").stat().st_mode & 0o777 == 0o600
    for var in SECRET_NAMES.values():
        assert env[var] == stored[var] and problem(stored[var]) is None
    assert stored["GROVE_JWT_SECRET"] != stored["GROVE_LINK_SECRET"]
    assert local_env(data, 8080)["GROVE_JWT_SECRET"] == stored["GROVE_JWT_SECRET"]  # kept, not remade
    assert local_env(tmp_path / "other", 8080)["GROVE_JWT_SECRET"] != stored["GROVE_JWT_SECRET"]

    out = _cli(["token", "--data", str(data), "--tenant", "t1", "--user", "u1", "--email", "a@example.org",
                "--username", "n"], {}, tmp_path)
    assert out.returncode == 0, out.stderr
    import jwt as pyjwt

    claims = pyjwt.decode(out.stdout.strip(), stored["GROVE_JWT_SECRET"], algorithms=["HS256"], audience="grove-export")
    assert claims["tenant"] == "t1" and claims["exp"] - claims["iat"] <= 3600

    missing = _cli(["token", "--data", str(tmp_path / "nothing"), "--tenant", "t1", "--user", "u1", "--email",
                    "a@example.org", "--username", "n"], {}, tmp_path)
    assert missing.returncode != 0 and "GROVE_JWT_SECRET" in missing.stderr and len(missing.stderr.splitlines()) == 1
    base = ["token", "--data", str(data), "--tenant", "t1", "--user", "u1", "--username", "n"]
    for extra in (["--email", "a@example.org, b@evil.example"], ["--email", "a@example.org", "--ttl", "86400"]):
        refused = _cli([*base, *extra], {}, tmp_path)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
