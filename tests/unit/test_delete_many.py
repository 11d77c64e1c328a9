"""S3's DeleteObjects answers 200 with per-key failures in its body: delete_many must not take
that answer for success (the work objects would stay while the caller counts them removed)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from shared.objectstore import StoreError, StoreRefused, StoreUnavailable
from shared.objectstore.s3 import S3Store


class _Client:
    def __init__(self, errors: list[dict[str, str]], refuse_batches: str = "") -> None:
        self.errors = errors
        self.refuse_batches = refuse_batches  # an error code for every DeleteObjects request
        self.calls: list[list[str]] = []
        self.deleted: list[str] = []

    async def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append([o["Key"] for o in Delete["Objects"]])
        assert Delete["Quiet"] is True
        if self.refuse_batches:
            raise ClientError({"Error": {"Code": self.refuse_batches, "Message": "no"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, "DeleteObjects")
        return {"Errors": self.errors} if self.errors else {}

    async def delete_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        self.deleted.append(Key)
        return {}


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


async def test_a_transient_per_key_failure_is_unavailable_not_final() -> None:
    client = _Client([{"Key": "w/a", "Code": "SlowDown", "Message": "slow down"}])
    with pytest.raises(StoreUnavailable):
        await _store(client).delete_many("exports", ["w/a"])


async def test_a_store_that_refuses_the_batch_request_gets_one_delete_per_key() -> None:
    # botocore sends a CRC-32 checksum and no Content-MD5; an older MinIO or Ceph refuses that
    client = _Client([], refuse_batches="MissingContentMD5")
    await _store(client).delete_many("exports", ["w/a", "w/b"])
    assert client.deleted == ["w/a", "w/b"]


async def test_any_other_refusal_of_the_batch_request_is_raised() -> None:
    client = _Client([], refuse_batches="AccessDenied")
    with pytest.raises(StoreRefused):
        await _store(client).delete_many("exports", ["w/a"])
    assert client.deleted == []


async def test_remove_work_objects_logs_a_failure_and_counts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from shared.core.snapshot import remove_work_objects

    class Failing:
        async def list_keys(self, bucket: str, prefix: str) -> list[object]:
            return [SimpleNamespace(key=f"{prefix}parts/00001.json")]

        async def delete_many(self, bucket: str, keys: list[str]) -> None:
            raise StoreUnavailable("down")

    assert await remove_work_objects(Failing(), "exports", "tnt_a", "exp_a") == 0  # type: ignore[arg-type]
    assert "work objects left for the janitor" in caplog.text
