"""The finalizer completes with the logged parts and lets the store check them (no listing first);
when the store refuses, the listing says why. On the filesystem store and on S3 (moto)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from services.finalizer.service import Finalizer, UploadGone
from shared.core import events as ev
from shared.objectstore import ObjectStore, StoreError
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from shared.runtime.worker import StepError
from tests.support.multipart import Part, assembled, upload

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

PART = 64 * 1024  # the smallest non-last part the test moto accepts
KEY = "exports/tnt_f/exp_f/archive.zip"



class CountingStore:
    """The real store, counting the listings the finalizer asks for."""

    def __init__(self, store: ObjectStore) -> None:
        self.store, self.listings = store, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def list_parts(self, bucket: str, key: str, upload_id: str) -> list[object]:
        self.listings += 1
        return await self.store.list_parts(bucket, key, upload_id)  # type: ignore[return-value]


@pytest.fixture
def settings(either_store_settings: Settings) -> Settings:
    return either_store_settings


@pytest_asyncio.fixture
async def store(settings: Settings) -> AsyncIterator[CountingStore]:
    s = await open_store(settings, create_buckets=True)
    try:
        yield CountingStore(s)
    finally:
        await s.close()




async def test_completes_without_listing_the_parts(store: CountingStore, settings: Settings) -> None:
    bucket = settings.buckets.exports
    one, two = os.urandom(PART), os.urandom(1000)
    upload_id, parts = await upload(store, bucket, KEY, one, two)
    finalizer = Finalizer(settings, store)  # type: ignore[arg-type]
    etag = await finalizer._complete(assembled(KEY, upload_id, PART + 1000, 2), parts)
    assert await store.read(bucket, KEY) == one + two
    assert store.listings == 0
    # a second run (the first one's ack was lost): the upload is gone, the object is this archive
    assert await finalizer._complete(assembled(KEY, upload_id, PART + 1000, 2), parts) == etag



async def test_the_stores_time_to_complete_is_logged_and_observed(
        store: CountingStore, settings: Settings, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The finalize step is the store's complete + HEAD and two appends: how long the store took is
    what an operator (and the bench's finalize row) needs, as a JSON field and a histogram — the two
    requests alone: the step's own time between them (here a 0.5 s stall) is not the store's."""
    import json
    import logging
    import time

    from shared.runtime import faults, metrics
    from shared.runtime.logs import JsonFormatter

    monkeypatch.setattr(faults, "point", lambda name: time.sleep(0.5))

    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART), os.urandom(10))
    a = assembled(KEY, upload_id, PART + 10, 2)
    before = metrics.ARCHIVE_COMPLETE._sum.get(), sum(b.get() for b in metrics.ARCHIVE_COMPLETE._buckets)
    with caplog.at_level(logging.INFO, logger="services.finalizer.service"):
        await Finalizer(settings, store)._finish(a, parts)  # type: ignore[arg-type]
    line = next(r for r in caplog.records if "completed the upload" in r.getMessage())
    doc = json.loads(JsonFormatter("finalizer").format(line))
    assert doc["export_id"] == a.export_id and doc["tenant_id"] == a.tenant_id
    assert isinstance(doc["seconds"], float) and 0 <= doc["seconds"] < 0.5
    assert "(2 parts, 65546 bytes)" in doc["msg"]
    assert sum(b.get() for b in metrics.ARCHIVE_COMPLETE._buckets) == before[1] + 1
    assert metrics.ARCHIVE_COMPLETE._sum.get() >= before[0] + doc["seconds"] - 0.001


async def test_a_gone_upload_with_another_object_at_the_key_is_not_taken_for_this_archive(
        store: CountingStore, settings: Settings) -> None:
    """The upload is gone and an object is at the key, but not of the logged size: it is not this
    archive (a stale one, a zombie's), so the step fails instead of completing the export with it —
    at once: no retry of the completion can bring the upload back (it was retried four times alike).
    The object is left alone: a finalizer whose log is stale could be looking at a newer archive."""
    from shared.core.reasons import is_permanent

    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART))
    await store.abort_multipart(bucket, KEY, upload_id)
    await store.put(bucket, KEY, os.urandom(PART - 1))
    with pytest.raises(StepError, match="what storage holds in its place is not the archive assembled") as e:
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, PART, 1), parts)  # type: ignore[arg-type]
    assert is_permanent(e.value)
    assert (await store.head(bucket, KEY)).size == PART - 1

async def test_a_missing_part_is_named_and_the_upload_stays(store: CountingStore, settings: Settings) -> None:
    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART))
    logged = [*parts, Part(2, parts[0].etag)]
    with pytest.raises(StepError, match="cannot complete: part 2 is missing from the upload"):
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, PART + 1, 2), logged)  # type: ignore[arg-type]
    assert store.listings == 1
    assert [p.part_number for p in await store.list_parts(bucket, KEY, upload_id)] == [1]  # nothing lost


async def test_another_part_in_the_store_is_named(store: CountingStore, settings: Settings) -> None:
    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART), os.urandom(10))
    other = await store.upload_part(bucket, KEY, upload_id, 2, os.urandom(10))  # a zombie's part 2
    assert other != parts[1].etag
    with pytest.raises(StepError, match="cannot be completed: part 2 in the store is not the logged one"):
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, PART + 10, 2), parts)  # type: ignore[arg-type]


async def test_a_refusal_the_listing_cannot_explain_is_raised_as_it_was(store: CountingStore,
                                                                         settings: Settings) -> None:
    bucket = settings.buckets.exports
    upload_id, _ = await upload(store, bucket, KEY, os.urandom(PART))
    with pytest.raises(StoreError) as e:  # no part at all: every logged part is there, the list is empty
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, 0, 0), [])  # type: ignore[arg-type]
    assert not isinstance(e.value, StepError)


async def test_an_upload_aborted_before_completion_fails_at_once_and_a_retry_reassembles(
        store: CountingStore, settings: Settings) -> None:
    """The upload vanished between ArchiveAssembled and completion (the lifecycle rule, MinIO's purge):
    no retry of the finalize step can bring its parts back, so the export fails at once with what
    happened — and the operator's retry, by the lifecycle's rule, goes on from assemble with a new
    upload (not from finalize into the gone one)."""
    from services.operator import decide
    from shared.core.lifecycle import fold
    from shared.core.reasons import is_permanent, public_reason
    from shared.core.retry import GiveUp, after_failure
    from shared.objectstore import upload_open

    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART))
    await store.abort_multipart(bucket, KEY, upload_id)
    with pytest.raises(UploadGone) as gone:
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, PART, 1), parts)  # type: ignore[arg-type]
    assert is_permanent(gone.value) and "removed from storage" in public_reason(gone.value, StepError)
    ids = {"export_id": "exp_f", "tenant_id": "tnt_f"}
    events: list[ev.Event] = [
        ev.ExportRequested(**ids, user_id="u", user_email="u@example.org", username="u"),
        ev.ExportCataloged(**ids, snapshot_key="s", snapshot_sha256="0", archive_key=KEY, member_count=1,
                           total_bytes=PART, item_counts={}),
        ev.UploadStarted(**ids, upload_id=upload_id, archive_key=KEY, part_size=PART, fingerprint="f"),
        ev.PartUploaded(**ids, part_number=1, etag=parts[0].etag, byte_start=0, byte_end=PART, records_key="r",
                        records_count=1, members_done=1, source_bytes_done=PART),
        assembled(KEY, upload_id, PART, 1), ev.FinalizeStarted(**ids)]
    decision = after_failure(fold(events), "finalize", public_reason(gone.value, StepError), 5, 1.0,
                             permanent=is_permanent(gone.value))
    assert isinstance(decision, GiveUp) and decision.attempt == 1
    failed = fold([*events, ev.ExportFailed(**ids, step="finalize", reason=decision.reason)])
    still_open = await upload_open(store, bucket, KEY, upload_id)
    assert decide.plan_retry(failed, snapshot_present=True, upload_open=still_open, records_present=True) == \
        decide.RetryPlan("assemble", None, 0)


async def test_a_part_in_the_store_that_is_not_the_logged_one_ends_the_upload_and_a_retry_reassembles(
        store: CountingStore, settings: Settings) -> None:
    """A zombie attempt's part 2 landed after the logged one: the upload can never be completed with
    the logged parts, and the finalizer has no bytes to send again. It failed its retries alike and
    left the upload open, so the operator's retry went on from finalize into the same refusal, for
    good. Now the step fails at once and aborts the upload: the retry goes on from assemble, new upload."""
    from services.operator import decide
    from shared.core.lifecycle import fold
    from shared.core.reasons import is_permanent
    from shared.objectstore import upload_open

    bucket = settings.buckets.exports
    upload_id, parts = await upload(store, bucket, KEY, os.urandom(PART), os.urandom(10))
    await store.upload_part(bucket, KEY, upload_id, 2, os.urandom(10))  # a zombie's part 2
    with pytest.raises(StepError, match="cannot be completed: part 2 in the store is not the logged one") as e:
        await Finalizer(settings, store)._complete(assembled(KEY, upload_id, PART + 10, 2), parts)  # type: ignore[arg-type]
    assert is_permanent(e.value)
    assert not await upload_open(store, bucket, KEY, upload_id)
    ids = {"export_id": "exp_f", "tenant_id": "tnt_f"}
    failed = fold([
        ev.ExportRequested(**ids, user_id="u", user_email="u@example.org", username="u"),
        ev.ExportCataloged(**ids, snapshot_key="s", snapshot_sha256="0", archive_key=KEY, member_count=1,
                           total_bytes=PART + 10, item_counts={}),
        ev.UploadStarted(**ids, upload_id=upload_id, archive_key=KEY, part_size=PART, fingerprint="f"),
        *(ev.PartUploaded(**ids, part_number=p.number, etag=p.etag, byte_start=(p.number - 1) * PART,
                          byte_end=min(p.number * PART, PART + 10), records_key="r", records_count=1,
                          members_done=1, source_bytes_done=PART) for p in parts),
        assembled(KEY, upload_id, PART + 10, 2), ev.FinalizeStarted(**ids),
        ev.ExportFailed(**ids, step="finalize", reason="x")])
    assert decide.plan_retry(failed, snapshot_present=True, upload_open=False, records_present=True) == \
        decide.RetryPlan("assemble", None, 0)
