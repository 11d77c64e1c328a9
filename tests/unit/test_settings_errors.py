"""A bad setting is refused in one line that names its environment variable and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.runtime.settings import Settings, explain
from tests.unit.conftest import UNROUTABLE_NATS


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(Exception) as caught:  # noqa: PT011 - pydantic's or pydantic-settings' error
        Settings()
    return explain(caught.value)


def test_the_line_names_the_variable_the_problem_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: `invalid settings: 1 validation error for Settings`, and nothing else."""
    assert refusal(monkeypatch, GROVE_STORE="nope") == "GROVE_STORE: Input should be 'fs' or 's3' (got 'nope')"
    both = refusal(monkeypatch, GROVE_PORT="abc", GROVE_MAIL__BACKEND="x")
    assert both.split("; ") == [
        "GROVE_PORT: Input should be a valid integer, unable to parse string as an integer (got 'abc')",
        "GROVE_MAIL__BACKEND: Input should be 'outbox', 'smtp' or 'http' (got 'x')"]
    assert refusal(monkeypatch, GROVE_S3="{") == \
        "GROVE_S3: not a JSON object (set its fields one by one, e.g. GROVE_S3__FIELD)"


def test_a_secret_value_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    line = refusal(monkeypatch, GROVE_CONTENT_DSN="mysql://grove:hunter2@db/grove")
    assert line.startswith("GROVE_CONTENT_DSN: content DSN must be") and "hunter2" not in line, line


@pytest.mark.parametrize(("env", "why"), [
    ({"GROVE_CONCURRENCY": "-1"}, "GROVE_CONCURRENCY: Input should be greater than or equal to 1 (got '-1')"),
    ({"GROVE_TENANT_CONCURRENCY": "0"}, "GROVE_TENANT_CONCURRENCY: Input should be greater than or equal to 1"),
    # a share above the slots cannot take effect: 40 for 4 was a typo, and ran as "one tenant may take every slot"
    ({"GROVE_TENANT_CONCURRENCY": "40"}, "GROVE_TENANT_CONCURRENCY: must be at most GROVE_CONCURRENCY (4)"),
    ({"GROVE_CONCURRENCY": "2", "GROVE_TENANT_CONCURRENCY": "3"},
     "GROVE_TENANT_CONCURRENCY: must be at most GROVE_CONCURRENCY (2)"),
    ({"GROVE_ACK_WAIT_S": "0"}, "GROVE_ACK_WAIT_S: Input should be greater than 0 (got '0')"),
    ({"GROVE_RATE_WINDOW_S": "-5"}, "GROVE_RATE_WINDOW_S: Input should be greater than or equal to 0 (got '-5')"),
    ({"GROVE_PORT": "99999"}, "GROVE_PORT: Input should be less than or equal to 65535 (got '99999')"),
    ({"GROVE_PORT": "0"}, "GROVE_PORT: Input should be greater than or equal to 1"),
    ({"GROVE_METRICS_PORT": "70000"}, "GROVE_METRICS_PORT: Input should be less than or equal to 65535"),
    ({"GROVE_STEP_ATTEMPTS": "0"}, "GROVE_STEP_ATTEMPTS: Input should be greater than or equal to 1"),
    # a typo: the delay doubles with each attempt, so past 20 it is weeks (and past 1024 no float at all)
    ({"GROVE_STEP_ATTEMPTS": "1000000"},
     "GROVE_STEP_ATTEMPTS: Input should be less than or equal to 20 (got '1000000')"),
    ({"GROVE_HEARTBEAT_TTL_S": "0"}, "GROVE_HEARTBEAT_TTL_S: Input should be greater than 0"),
    ({"GROVE_STALL_AFTER_S": "-1"}, "GROVE_STALL_AFTER_S: Input should be greater than or equal to 0"),
    ({"GROVE_STREAM_REPLICAS": "7"}, "GROVE_STREAM_REPLICAS: Input should be less than or equal to 5"),
    ({"GROVE_MAIL__ATTEMPTS": "0"}, "GROVE_MAIL__ATTEMPTS: Input should be greater than or equal to 1"),
    ({"GROVE_MAIL__SMTP_PORT": "0"}, "GROVE_MAIL__SMTP_PORT: Input should be greater than or equal to 1"),
    ({"GROVE_S3__MAX_ATTEMPTS": "0"}, "GROVE_S3__MAX_ATTEMPTS: Input should be greater than or equal to 1"),
    # typos too: each retry waits up to 30 s (mail) or 20 s (botocore), inside one step that holds its slot
    ({"GROVE_MAIL__ATTEMPTS": "1000000"},
     "GROVE_MAIL__ATTEMPTS: Input should be less than or equal to 20 (got '1000000')"),
    ({"GROVE_S3__MAX_ATTEMPTS": "1000000"},
     "GROVE_S3__MAX_ATTEMPTS: Input should be less than or equal to 20 (got '1000000')"),
])
def test_a_meaningless_number_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], why: str) -> None:
    """Seen: GROVE_CONCURRENCY=-1 ran as 1, GROVE_PORT=99999 failed only when the gateway bound it."""
    assert refusal(monkeypatch, **env).startswith(why)


@pytest.mark.parametrize(("var", "typo", "bound", "ok"), [
    ("GROVE_MAX_BODY_BYTES", "16384000", 1024 * 1024, "1048576"),
    ("GROVE_CONCURRENCY", "4000", 64, "64"),
    ("GROVE_CONTENT_POOL_MAX", "4000", 100, "100"),
])
def test_a_count_with_a_zero_too_many_is_refused(monkeypatch: pytest.MonkeyPatch, var: str, typo: str, bound: int,
                                                 ok: str) -> None:
    """Seen: no upper bound, so a typo started the service, which then fell over: GROVE_CONCURRENCY=4000
    made 8000 encoder threads and took 4000 exports' parts in flight at once (memory, file descriptors),
    GROVE_CONTENT_POOL_MAX=4000 asked PostgreSQL (100 connections by default) for more than it has, and
    GROVE_MAX_BODY_BYTES=16384000 let each request hold 16 MB where the API's largest body is a few hundred
    bytes."""
    assert refusal(monkeypatch, **{var: typo}) == f"{var}: Input should be less than or equal to {bound} (got '{typo}')"
    monkeypatch.setenv(var, ok)
    Settings()  # the bound itself is allowed


def test_a_count_over_its_bound_stops_a_service_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GROVE_")} | {
        "GROVE_CONCURRENCY": "640", "GROVE_NATS_URL": UNROUTABLE_NATS,  # `run` needs one, if only to refuse
        "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-m", "services.cli", "run", "assembler"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (2, "grove-export: invalid settings: GROVE_CONCURRENCY: Input should be "
                                               "less than or equal to 64 (got '640')\n"), out


def test_zero_is_kept_where_it_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key in ("GROVE_STALL_AFTER_S", "GROVE_METRICS_PORT", "GROVE_RATE_WINDOW_S", "GROVE_DEMO_THROTTLE_S",
                "GROVE_ORPHAN_UPLOAD_AGE_S", "GROVE_RETRY_BASE_DELAY_S"):
        monkeypatch.setenv(key, "0")
    s = Settings()
    assert (s.stall_after_s, s.metrics_port, s.rate_window_s) == (0, 0, 0)


def _float_settings() -> list[str]:
    """Every number setting that takes a fraction (GROVE_ACK_WAIT_S, GROVE_MAIL__SMTP_TIMEOUT, …)."""
    from pydantic import BaseModel

    names = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                walk(field.annotation, f"{prefix}{name.upper()}__")
            elif field.annotation is float:
                names.append(f"{prefix}{name.upper()}")
    walk(Settings, "GROVE_")
    return names


@pytest.mark.parametrize("var", _float_settings())
def test_infinity_is_refused(monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    """Seen: GROVE_ARCHIVE_TTL_DAYS=inf ("keep them for ever") started, and then every export failed at
    finalize (its expiry is not a date); GROVE_STREAM_MAX_AGE_DAYS, GROVE_ACK_WAIT_S or
    GROVE_HEARTBEAT_TTL_S=inf made `grove-export setup` end in an OverflowError traceback."""
    assert refusal(monkeypatch, **{var: "inf"}).startswith(f"{var}: "), var


@pytest.mark.parametrize(("env", "why"), [
    ({"GROVE_ARCHIVE_TTL_DAYS": "3000000"}, "GROVE_ARCHIVE_TTL_DAYS: Input should be less than or equal to 36500"),
    ({"GROVE_STREAM_MAX_AGE_DAYS": "1000000"}, "GROVE_STREAM_MAX_AGE_DAYS: Input should be less than or equal to"),
    ({"GROVE_ACK_WAIT_S": "1e12"}, "GROVE_ACK_WAIT_S: Input should be less than or equal to"),
    ({"GROVE_HEARTBEAT_TTL_S": "1e12"}, "GROVE_HEARTBEAT_TTL_S: Input should be less than or equal to"),
    ({"GROVE_RATE_WINDOW_S": "1e15"}, "GROVE_RATE_WINDOW_S: Input should be less than or equal to"),
    ({"GROVE_ORPHAN_UPLOAD_AGE_S": "1e15"}, "GROVE_ORPHAN_UPLOAD_AGE_S: Input should be less than or equal to"),
])
def test_a_duration_longer_than_its_clock_holds_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                            why: str) -> None:
    """Seen: GROVE_STREAM_MAX_AGE_DAYS=1000000 passed start-up and setup failed on NATS's own JSON error;
    GROVE_ARCHIVE_TTL_DAYS=3000000 failed every export at finalize (no date that far ahead);
    GROVE_RATE_WINDOW_S=1e15 made every POST /api/export a 500. 100 years is the limit."""
    assert refusal(monkeypatch, **env).startswith(why)


def test_a_hundred_years_is_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GROVE_ARCHIVE_TTL_DAYS", "36500")
    monkeypatch.setenv("GROVE_RATE_WINDOW_S", str(36500 * 86400))
    s = Settings()
    assert (s.archive_ttl_days, s.rate_window_s) == (36500, 36500 * 86400)


@pytest.mark.parametrize("var", ["GROVE_S3__ENDPOINT_URL", "GROVE_S3__PUBLIC_ENDPOINT_URL", "GROVE_PUBLIC_URL",
                                 "GROVE_MAIL__DOWNLOAD_PAGE_URL", "GROVE_MAIL__HTTP_URL", "GROVE_OTEL_ENDPOINT"])
@pytest.mark.parametrize("value", ["minio:9000", "localhost:8080/export", "ftp://files.example", "http://", "https:// x"])
def test_an_address_that_is_no_http_url_is_refused(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    """Seen: GROVE_S3__ENDPOINT_URL=minio:9000 (no scheme) started, and every command and service on S3
    then ended in a botocore traceback ("ValueError: Invalid endpoint"); GROVE_PUBLIC_URL=host:8080
    made download links a browser reads as a path on the page's own site."""
    line = refusal(monkeypatch, **{var: value})
    assert line == f"{var}: must be an http:// or https:// URL, like https://host or http://host:port " \
                   f"(got {value!r})", line


def test_the_urls_as_deployed_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose passes GROVE_OTEL_ENDPOINT as "" when it is not set: tracing off, not an error."""
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key, value in {"GROVE_S3__ENDPOINT_URL": "http://minio:9000",
                       "GROVE_S3__PUBLIC_ENDPOINT_URL": "https://ACCOUNT_ID.r2.cloudflarestorage.com",
                       "GROVE_PUBLIC_URL": "https://export.example.com", "GROVE_OTEL_ENDPOINT": "",
                       "GROVE_MAIL__DOWNLOAD_PAGE_URL": "http://127.0.0.1:8080/export",
                       "GROVE_MAIL__HTTP_URL": "http://[::1]:8025"}.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert (s.s3.endpoint_url, s.public_url, s.otel_endpoint) == ("http://minio:9000", "https://export.example.com", "")


def test_a_media_url_template_without_the_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen: GROVE_MEDIA_URL_TEMPLATE=https://cdn.example.com/media/ (the {key} forgotten) and
    `grove-export import` gave every restored media row and link the same URL, that folder's."""
    assert refusal(monkeypatch, GROVE_MEDIA_URL_TEMPLATE="https://cdn.example.com/media/") == (
        "GROVE_MEDIA_URL_TEMPLATE: must hold {key}, where each object's key goes, like "
        "https://cdn.example/{key} (got 'https://cdn.example.com/media/')")


@pytest.mark.parametrize("prefix", ["grove.exports", "exports.>", "*", "", "ex ports"])
def test_a_subject_prefix_that_is_not_one_subject_token_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                                  prefix: str) -> None:
    """Every reader takes an event's subject as <prefix>.<tenant>.<export>.<Event>, four tokens: with a
    prefix of two ('grove.exports') every event any service appended was dropped as forged — nothing
    ever ran, the janitor found no export — and nothing said why."""
    line = refusal(monkeypatch, GROVE_SUBJECT_PREFIX=prefix)
    assert line.startswith("GROVE_SUBJECT_PREFIX: "), line


@pytest.mark.parametrize("var", ["GROVE_STREAM_NAME", "GROVE_KV_PREFIX"])
@pytest.mark.parametrize("name", ["", "a.b", "EXPORTS*", "ex>", "ex ports", "ex/ports", "é"])
def test_a_stream_or_bucket_name_nats_would_refuse_is_refused(monkeypatch: pytest.MonkeyPatch, var: str,
                                                               name: str) -> None:
    """Seen: GROVE_STREAM_NAME=a.b (or empty) passed start-up and `grove-export setup` ended in nats-py's
    ValueError traceback; GROVE_KV_PREFIX=a.b in "NATS set-up failed: InvalidBucketNameError", naming no
    setting (and every service then failed to bind its buckets)."""
    line = refusal(monkeypatch, **{var: name})
    assert line.startswith(f"{var}: "), line


def test_the_stream_and_bucket_names_in_use_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("GROVE_STREAM_NAME", "EXPORTS_t0123456789")
    monkeypatch.setenv("GROVE_KV_PREFIX", "g-grove_2")
    s = Settings()
    assert (s.stream_name, s.kv_prefix) == ("EXPORTS_t0123456789", "g-grove_2")


@pytest.mark.parametrize("var", ["GROVE_BUCKETS__EXPORTS", "GROVE_BUCKETS__IMAGES", "GROVE_BUCKETS__AMBER"])
@pytest.mark.parametrize("name", ["", "ab", "Grove-Exports", "grove_exports", "grove-exports ", " grove-exports",
                                  "-grove", "grove-", "../escape", "a/b", "grove..exports", "x" * 64, "grövé"])
def test_a_bucket_name_s3_would_refuse_is_refused(monkeypatch: pytest.MonkeyPatch, var: str, name: str) -> None:
    """Seen: GROVE_BUCKETS__EXPORTS="" passed start-up, and on the filesystem store every archive then
    failed to be written ("unsafe key ''"), retried until the export failed; a name with a capital, an
    underscore or a trailing space made a folder on the filesystem store that S3, R2 and MinIO refuse,
    so a deployment moved to S3 failed at `setup`."""
    line = refusal(monkeypatch, **{var: name})
    assert line.startswith(f"{var}: must be an S3 bucket name"), line


def test_the_bucket_names_in_use_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for var, value in {"GROVE_BUCKETS__EXPORTS": "exports-0123456789", "GROVE_BUCKETS__IMAGES": "e-1",
                       "GROVE_BUCKETS__AMBER": "grove.amber.example"}.items():
        monkeypatch.setenv(var, value)
    s = Settings()
    assert (s.buckets.exports, s.buckets.images, s.buckets.amber) == (
        "exports-0123456789", "e-1", "grove.amber.example")


@pytest.mark.parametrize("var", ["GROVE_HOST", "GROVE_MAIL__SMTP_HOST", "GROVE_METRICS_HOST"])
@pytest.mark.parametrize("host", ["", " ", " 127.0.0.1", "127.0.0.1 "])
def test_an_empty_or_padded_host_is_refused(monkeypatch: pytest.MonkeyPatch, var: str, host: str) -> None:
    """Seen: GROVE_HOST= (empty, meant as "the default") passed start-up, and asyncio takes an empty host
    as every interface: the gateway, 127.0.0.1 by default, listened on all of them. A padded SMTP host
    failed every email's send instead."""
    line = refusal(monkeypatch, **{var: host})
    assert line.startswith(f"{var}: must be an address or host name"), line


@pytest.mark.parametrize("sender", ["", "exports", "Grove Export", "Grove <exports@grove.local>\nBcc: all@example.com",
                                    "exports@grove.local, someone@example.com", "Grove <exports>",
                                    "Grove <exports@grovë.test>", "exporté@grove.test"])
def test_a_sender_that_is_not_one_address_is_refused(monkeypatch: pytest.MonkeyPatch, sender: str) -> None:
    """Seen: GROVE_MAIL__SENDER with a line break passed start-up and every email then failed for good
    ("cannot build the message headers"): each export's notification recorded as failed. An empty one,
    or one without a domain, went out as a From no server delivers or anyone can answer."""
    line = refusal(monkeypatch, GROVE_MAIL__SENDER=sender)
    assert line.startswith("GROVE_MAIL__SENDER: must be one email address, ASCII"), line


def test_the_senders_in_use_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for sender in ("Grove Export <exports@example.com>", "exports@grove.local", '"Grove, Export" <e@grove.test>',
                   "Zoë's Grove <exports@grove.test>"):
        for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("GROVE_MAIL__SENDER", sender)
        assert Settings().mail.sender == sender


@pytest.mark.parametrize(("env", "why"), [
    ({"GROVE_PROGRESS_INTERVAL_S": "4"}, "GROVE_PROGRESS_INTERVAL_S: must be less than GROVE_ACK_WAIT_S (4 s)"),
    ({"GROVE_PROGRESS_INTERVAL_S": "10", "GROVE_ACK_WAIT_S": "5"},
     "GROVE_PROGRESS_INTERVAL_S: must be less than GROVE_ACK_WAIT_S (5 s)"),
    ({"GROVE_ACK_WAIT_S": "0.5"}, "GROVE_PROGRESS_INTERVAL_S: must be less than GROVE_ACK_WAIT_S (0.5 s)"),
])
def test_an_in_progress_ack_slower_than_the_ack_wait_is_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                                                 why: str) -> None:
    """GROVE_PROGRESS_INTERVAL_S=10 with the 4 s AckWait passed start-up; from the worker's code, a step
    longer than 4 s is then redelivered while its worker is alive — to another replica, which takes the
    live run's heartbeat for a dead run's, counts a death, and starts the step again over it; a step
    whose log does not move meanwhile can reach GROVE_STEP_DEATHS and fail with no process dead."""
    assert refusal(monkeypatch, **env).startswith(why)


@pytest.mark.parametrize("region", ["", " us-east-1", "us-east-1 ", "us east", "-us", "123", "eu_west_1"])
def test_a_region_botocore_refuses_is_refused(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """Seen: GROVE_S3__REGION=" us-east-1" (a space pasted in) passed start-up, and every command and
    service on S3 then ended in botocore's InvalidRegionError traceback."""
    line = refusal(monkeypatch, GROVE_S3__REGION=region)
    assert line.startswith("GROVE_S3__REGION: must be a region name"), line


def test_the_regions_in_use_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    for region in ("us-east-1", "auto", "eu-central-2", "garage"):
        for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("GROVE_S3__REGION", region)
        assert Settings().s3.region == region


@pytest.mark.parametrize("var", ["GROVE_STORE_ROOT", "GROVE_READ_MODEL_DB", "GROVE_MAIL__OUTBOX_DIR",
                                 "GROVE_MAIL__SMTP_CA_FILE"])
@pytest.mark.parametrize("value", ["", " ", "var/store ", " var/store"])
def test_an_empty_or_padded_path_is_refused(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    """Seen: GROVE_STORE_ROOT= (empty, meant as the default) passed start-up as Path("") — the current
    folder: the filesystem store put its buckets, and the outbox its emails, wherever the process ran."""
    line = refusal(monkeypatch, **{var: value})
    assert line.startswith(f"{var}: must be a path"), line


def test_a_part_size_s3_would_refuse_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """GROVE_MIN_PART_SIZE under S3's 5 MiB passed start-up with an S3 store, and the whole export was
    uploaded before S3 refused its completion (EntityTooSmall), for every export. Refused at start in
    one line; a test server that takes smaller parts (moto) says so with GROVE_S3__SMALLEST_PART."""
    line = refusal(monkeypatch, GROVE_STORE="s3", GROVE_MIN_PART_SIZE="1048576")
    assert line.startswith("GROVE_MIN_PART_SIZE: must be at least 5 MiB (5242880) on S3") and \
        "EntityTooSmall" in line and "GROVE_S3__SMALLEST_PART" in line and line.endswith("(got '1048576')"), line
    assert "\n" not in line
    # the floor raised past the default part size: the default is checked too
    assert refusal(monkeypatch, GROVE_STORE="s3", GROVE_S3__SMALLEST_PART=str(16 << 20)).startswith(
        "GROVE_MIN_PART_SIZE: must be at least 16 MiB (16777216) on S3")
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    assert Settings(store="s3", min_part_size=5 << 20).min_part_size == 5 << 20
    assert Settings(store="fs", min_part_size=1024).min_part_size == 1024  # the filesystem takes any size
    moto = Settings(store="s3", min_part_size=256 * 1024, s3={"smallest_part": 64 * 1024})  # type: ignore[arg-type]
    assert moto.min_part_size == 256 * 1024


@pytest.mark.parametrize(("env", "var", "where"), [
    ({"GROVE_MAIL__BACKEND": "smtp", "GROVE_MAIL__SMTP_HOST": "smtp.provider.test", "GROVE_MAIL__SMTP_USERNAME": "grove",
      "GROVE_MAIL__SMTP_PASSWORD": "Kq3-real-relay-password"}, "GROVE_MAIL__SMTP_PASSWORD", "smtp.provider.test"),
    ({"GROVE_MAIL__BACKEND": "smtp", "GROVE_MAIL__SMTP_HOST": "10.0.0.7", "GROVE_MAIL__SMTP_SECURITY": "plain",
      "GROVE_MAIL__SMTP_USERNAME": "grove", "GROVE_MAIL__SMTP_PASSWORD": "Kq3-real-relay-password"},
     "GROVE_MAIL__SMTP_PASSWORD", "10.0.0.7"),
    ({"GROVE_MAIL__BACKEND": "http", "GROVE_MAIL__HTTP_URL": "http://mail.provider.test/send",
      "GROVE_MAIL__HTTP_API_KEY": "Kq3-real-api-key"}, "GROVE_MAIL__HTTP_API_KEY", "http://mail.provider.test/send"),
])
def test_a_mail_credential_that_would_cross_the_network_unencrypted_is_refused(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], var: str, where: str) -> None:
    """Seen: GROVE_MAIL__SMTP_HOST, _USERNAME and _PASSWORD set for a provider's relay, with the
    security left at its default, `plain`: the notifier started and sent the password on every email
    as base64 over a connection it never upgrades (the relay offered STARTTLS); an HTTP mail service
    at an http:// URL got the API key in clear the same way. Refused at start, in one line; the value
    is never echoed."""
    line = refusal(monkeypatch, **env)
    assert line.startswith(f"{var}: would be sent unencrypted to {where}"), line
    assert "Kq3-real" not in line


@pytest.mark.parametrize("env", [
    {"GROVE_MAIL__SMTP_HOST": "smtp.provider.test", "GROVE_MAIL__SMTP_SECURITY": "starttls"},
    {"GROVE_MAIL__SMTP_HOST": "smtp.provider.test", "GROVE_MAIL__SMTP_SECURITY": "tls"},
    {"GROVE_MAIL__SMTP_HOST": "127.0.0.1"}, {"GROVE_MAIL__SMTP_HOST": "localhost"}, {"GROVE_MAIL__SMTP_HOST": "::1"},
])
def test_a_mail_password_over_tls_or_to_this_machine_is_taken(monkeypatch: pytest.MonkeyPatch,
                                                               env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.upper().startswith("GROVE_")]:
        monkeypatch.delenv(key)
    for key, value in {"GROVE_MAIL__BACKEND": "smtp", "GROVE_MAIL__SMTP_USERNAME": "grove",
                       "GROVE_MAIL__SMTP_PASSWORD": "Kq3-real-relay-password", **env}.items():
        monkeypatch.setenv(key, value)
    assert Settings().mail.smtp_password is not None
    monkeypatch.setenv("GROVE_MAIL__BACKEND", "http")  # the key of an https:// or local mail service, too
    for url in ("https://mail.provider.test/send", "http://127.0.0.1:8025"):
        monkeypatch.setenv("GROVE_MAIL__HTTP_URL", url)
        monkeypatch.setenv("GROVE_MAIL__HTTP_API_KEY", "Kq3-real-api-key")
        assert Settings().mail.http_api_key is not None


@pytest.mark.parametrize("host", ["relay.localhost", "localhost.", "mail.localhost."])
def test_a_mail_password_to_a_name_the_resolver_may_send_elsewhere_is_refused(
        monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Seen: is_loopback took any name under .localhost, and localhost with a trailing dot, as this
    machine, so a password went unencrypted to it. The system's resolver does not: glibc reads only
    `localhost` from /etc/hosts and asks DNS for the others (getaddrinfo('relay.localhost') and
    ('localhost.') fail on a machine whose DNS has no answer, and a search domain or a DNS server
    may give any address). Only `localhost` and loopback addresses are this machine."""
    from shared.runtime.settings import is_loopback

    line = refusal(monkeypatch, GROVE_MAIL__BACKEND="smtp", GROVE_MAIL__SMTP_HOST=host,
                   GROVE_MAIL__SMTP_USERNAME="grove", GROVE_MAIL__SMTP_PASSWORD="Kq3-real-relay-password")
    assert line.startswith("GROVE_MAIL__SMTP_PASSWORD: would be sent unencrypted"), line
    assert not is_loopback(host)
    assert all(is_loopback(h) for h in ("localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"))


def test_a_nats_url_that_is_no_nats_url_is_refused_as_a_setting_with_its_password_masked(monkeypatch: pytest.MonkeyPatch,
                                                                                 tmp_path: Path) -> None:
    """Seen: GROVE_NATS_URL="" (a variable set from an unset one) said "cannot reach NATS at  (from
    GROVE_NATS_URL): no servers available for connection", and an http:// URL "unknown host": the host
    was right. Each is the setting's own line; a password in it is masked, as every line naming NATS does."""
    empty = "GROVE_NATS_URL: must be a NATS URL like nats://127.0.0.1:4222, not empty (unset it for the default)"
    assert refusal(monkeypatch, GROVE_NATS_URL="") == empty
    assert refusal(monkeypatch, GROVE_NATS_URL=" , \n") == empty
    line = refusal(monkeypatch, GROVE_NATS_URL="http://admin:hunter2@nats.example:4222")
    assert line == ("GROVE_NATS_URL: 'http://admin:***@nats.example:4222' is not a NATS URL: its scheme must be "
                    "nats://, tls://, ws:// or wss://, like nats://127.0.0.1:4222"), line
    for bad in ("nats://", "nats://127.0.0.1:99999", "nats://a b:4222", "nats://h:4222,nats://:hunter2@h:0"):
        line = refusal(monkeypatch, GROVE_NATS_URL=bad)
        assert line.startswith("GROVE_NATS_URL: '") and "is not a NATS URL: it needs a host and a port 1-65535" in line
        assert "hunter2" not in line, line
    # the list forms the client has always taken (settings.nats_servers strips each and skips empty ones):
    # a deployment written as "a:4222, b:4222", with a trailing comma or newline, must not stop starting
    for good in ("nats://127.0.0.1:4222", "tls://[::1]:4222", "127.0.0.1:4222", "nats://nats", "wss://h:443",
                 "nats://admin:pw@h:4222,nats://h2:4222", "nats://a:4222, nats://b:4222", "nats://a:4222,",
                 "nats://a:4222\n", " nats://127.0.0.1:4222"):
        monkeypatch.setenv("GROVE_NATS_URL", good)
        assert Settings().nats_url == good
    # and the command says so, exit 2, before asking any server
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GROVE_")} | {
        "GROVE_NATS_URL": "", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-m", "services.cli", "exports"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (2, f"grove-export: invalid settings: {empty}\n"), out
