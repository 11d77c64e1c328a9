"""Settings for one test: unique stream, subjects and KV buckets; temp store and databases."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

from shared.runtime.settings import Settings

# Random per test run: nothing published can sign a token or a link in a test either.
TEST_SECRETS = {"jwt": secrets.token_urlsafe(48), "link": secrets.token_urlsafe(48)}


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def settings_for(tmp: Path, nats_url: str, **overrides: Any) -> dict[str, Any]:
    """A dict of Settings fields (nested groups as dicts) for one test."""
    tag = unique()
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "stream_name": f"EXPORTS_{tag}",
        "subject_prefix": f"ex{tag}",
        "kv_prefix": f"g{tag}",
        "store_root": str(tmp / "store"),
        "content_dsn": "sqlite:///" + str(tmp / "content.db"),
        "read_model_db": str(tmp / "read-model.db"),
        "min_part_size": 256 * 1024,
        "ack_wait_s": 5.0,
        "progress_interval_s": 1.0,
        "retry_base_delay_s": 0.2,
        "mail": {"outbox_dir": str(tmp / "outbox"), "retry_base_delay": 0.05},
        "log_json": True,
        "jwt_secret": TEST_SECRETS["jwt"],
        "link_secret": TEST_SECRETS["link"],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def s3_values(endpoint: str) -> dict[str, Any]:
    """Overrides that put a test on S3 (moto at ``endpoint``) with buckets of its own."""
    tag = uuid.uuid4().hex[:10]
    return {
        "store": "s3",
        "s3": {"endpoint_url": endpoint, "access_key_id": "testing", "secret_access_key": "testing",
               "region": "us-east-1", "addressing_style": "path", "max_attempts": 3,
               "smallest_part": 64 * 1024},  # moto's, as tests/fixtures/moto.py starts it (MOTO_PART_MIN_SIZE)
        "buckets": {"exports": f"exports-{tag}", "images": f"images-{tag}", "amber": f"amber-{tag}"},
    }


def build(values: dict[str, Any]) -> Settings:
    return Settings(**values)


def to_env(values: dict[str, Any], prefix: str = "GROVE_") -> dict[str, str]:
    """The same settings as environment variables, for service subprocesses."""
    env: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            env.update(to_env(value, f"{prefix}{key.upper()}__"))
        elif value is None:
            continue
        elif isinstance(value, bool):
            env[f"{prefix}{key.upper()}"] = "true" if value else "false"
        else:
            env[f"{prefix}{key.upper()}"] = str(value)
    return env
