"""S3's DeleteObjects answers 200 with per-key failures in its body: delete_many must not take
that answer for success (the work objects would stay while the caller counts them removed)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.objectstore import StoreError, StoreRefused
from shared.objectstore.s3 import S3Store


class _Client:
    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        self.calls: list[list[str]] = []

    async def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append([o["Key"] for o in Delete["Objects"]])
        assert Delete["Quiet"] is True
        return {"Errors": self.errors} if self.errors else {}


def _store(client: _Client) -> S3Store:
    store = S3Store.__new__(S3Store)  # only the client is used
    store._client = client
    return store


async def test_per_key_failures_raise_and_name_the_key() -> None:
    client = _Client([{"Key": "w/b", "Code": "InternalError", "Message": "try again"}])
    with pytest.raises(StoreError, match="w/b") as e:
        await _store(client).delete_many("exports", ["w/a", "w/b"])
    assert not isinstance(e.value, StoreRefused)


async def test_a_denied_key_is_a_refusal() -> None:
    client = _Client([{"Key": "w/a", "Code": "AccessDenied", "Message": "no"}])
    with pytest.raises(StoreRefused):
        await _store(client).delete_many("exports", ["w/a"])


async def test_a_missing_key_is_not_a_failure_and_keys_go_in_batches_of_1000() -> None:
    client = _Client([{"Key": "w/0", "Code": "NoSuchKey", "Message": "gone"}])
    keys = [f"w/{i}" for i in range(2001)]
    await _store(client).delete_many("exports", keys)
    assert [len(c) for c in client.calls] == [1000, 1000, 1]
    assert [k for c in client.calls for k in c] == keys
