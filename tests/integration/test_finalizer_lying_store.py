"""The finalizer against an S3 store whose answers lie: a proxy in front of moto (a real HTTP hop)
bends the completion's answer, the HEAD after it, and the parts' listing. The export is never
completed with an object that is not the logged archive; each case fails or retries with a reason,
and leaves no half-made thing behind (an open upload only where a retry can still complete it)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
import pytest_asyncio

from services.finalizer.service import Finalizer
from shared.core import events as ev
from shared.core.reasons import is_permanent, public_reason
from shared.objectstore import ObjectNotFound, ObjectStore, StoreError, upload_open
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from shared.runtime.worker import StepError
from tests.support.flaky_proxy import FlakyProxy
from tests.support.multipart import assembled, upload

pytest_plugins = ["tests.fixtures.moto"]
pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

PART = 64 * 1024  # the smallest non-last part the test moto accepts
KEY = "exports/tnt_l/exp_l/archive.zip"
ERROR_200 = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
             b"<Message>We encountered an internal error. Please try again.</Message></Error>")



class Lying(NamedTuple):
    store: ObjectStore      # through the proxy
    truth: ObjectStore      # straight to moto
    proxy: FlakyProxy
    settings: Settings


@pytest_asyncio.fixture
async def lying(s3_settings: Settings, moto_server: str) -> AsyncIterator[Lying]:
    proxy = await FlakyProxy(moto_server).start()
    assert s3_settings.s3 is not None
    bent = s3_settings.model_copy(update={"s3": s3_settings.s3.model_copy(update={"endpoint_url": proxy.url})})
    store, truth = await open_store(bent), await open_store(s3_settings)
    try:
        yield Lying(store, truth, proxy, s3_settings)
    finally:
        await store.close()
        await truth.close()
        await proxy.stop()




async def _gone(store: ObjectStore, bucket: str) -> bool:
    try:
        await store.head(bucket, KEY)
    except ObjectNotFound:
        return True
    return False


@pytest.mark.parametrize("forward", [False, True], ids=["not-completed", "completed"])
async def test_a_200_with_an_error_body_is_no_completion(lying: Lying, forward: bool) -> None:
    """S3 may answer CompleteMultipartUpload "200 OK" with an <Error> in the body. botocore reads it
    as a 500 and retries; if the store never completed, the step fails as a retryable outage with the
    upload and its parts intact; if it did, the retry finds the upload gone and the archive there."""
    bucket = lying.settings.buckets.exports
    one, two = os.urandom(PART), os.urandom(999)
    upload_id, parts = await upload(lying.truth, bucket, KEY, one, two)
    lying.proxy.complete_answer, lying.proxy.complete_forward = (200, ERROR_200), forward
    finalizer = Finalizer(lying.settings, lying.store)
    a = assembled(KEY, upload_id, PART + 999, 2)
    if not forward:
        with pytest.raises(StoreError) as e:
            await finalizer._finish(a, parts)  # type: ignore[arg-type]
        assert not is_permanent(e.value)
        assert public_reason(e.value, StepError) == "The storage service did not answer."
        assert [p.part_number for p in await lying.truth.list_parts(bucket, KEY, upload_id)] == [1, 2]
        assert await _gone(lying.truth, bucket)
        lying.proxy.complete_answer = None  # the store answers again: the retry completes
    etag = await finalizer._finish(a, parts)  # type: ignore[arg-type]
    assert await lying.truth.read(bucket, KEY) == one + two
    assert (await lying.truth.head(bucket, KEY)).etag == etag


@pytest.mark.parametrize("forward", [False, True], ids=["not-completed", "completed"])
async def test_a_200_without_an_etag_is_no_completion(lying: Lying, forward: bool) -> None:
    """A 200 whose body is empty (a proxy that dropped it) names no object: not taken for a
    completion (it ended in KeyError: 'ETag', "an internal error"), but checked like an outage."""
    bucket = lying.settings.buckets.exports
    one, two = os.urandom(PART), os.urandom(999)
    upload_id, parts = await upload(lying.truth, bucket, KEY, one, two)
    lying.proxy.complete_answer, lying.proxy.complete_forward = (200, b""), forward
    finalizer = Finalizer(lying.settings, lying.store)
    a = assembled(KEY, upload_id, PART + 999, 2)
    if not forward:
        with pytest.raises(StoreError) as e:
            await finalizer._finish(a, parts)  # type: ignore[arg-type]
        assert public_reason(e.value, StepError) == "The storage service did not answer."
        assert not is_permanent(e.value)
        assert await upload_open(lying.truth, bucket, KEY, upload_id)
        lying.proxy.complete_answer = None
    etag = await finalizer._finish(a, parts)  # type: ignore[arg-type]
    assert await lying.truth.read(bucket, KEY) == one + two
    assert (await lying.truth.head(bucket, KEY)).etag == etag


@pytest.mark.parametrize("bend", ["size", "etag"])
async def test_a_completed_object_that_is_not_the_logged_archive_fails_at_once_and_is_left_alone(
        lying: Lying, bend: str) -> None:
    """After the completion the HEAD reports another size, or another ETag than the completion
    answered: what is at the key is not the archive the log names. The export must not be completed
    with it; the upload is spent, so no retry of this step can help: it fails at once and says so.
    The object is not deleted: a finalizer that stalled between completing and HEAD may be looking
    at a newer archive a retry put there meanwhile (a failed export's key is offered to no one, and
    the retry's new upload replaces it)."""
    bucket = lying.settings.buckets.exports
    upload_id, parts = await upload(lying.truth, bucket, KEY, os.urandom(PART), os.urandom(999))
    if bend == "size":
        lying.proxy.head_size_delta = -1
    else:
        lying.proxy.head_etag = "0" * 32 + "-2"
    with pytest.raises(StepError) as e:
        await Finalizer(lying.settings, lying.store)._finish(assembled(KEY, upload_id, PART + 999, 2), parts)  # type: ignore[arg-type]
    assert is_permanent(e.value)
    reason = public_reason(e.value, StepError)
    assert "not the one assembled" in reason and "\n" not in reason
    assert not await _gone(lying.truth, bucket)  # whatever it is, it may be a newer archive: left alone
    assert not await upload_open(lying.truth, bucket, KEY, upload_id)


async def test_a_listing_that_names_a_part_twice_aborts_nothing(lying: Lying) -> None:
    """The completion is refused and the listing that should say why names part 2 twice, once
    with the logged ETag and once with another: it is no account of the upload to abort it on. The
    step fails retryably, saying so, and the upload with every logged part stays."""
    bucket = lying.settings.buckets.exports
    upload_id, parts = await upload(lying.truth, bucket, KEY, os.urandom(PART), os.urandom(999))
    lying.proxy.complete_answer = (400, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidPart</Code>'
                                        b"<Message>One or more of the specified parts could not be found."
                                        b"</Message></Error>")

    def doubled(xml: bytes) -> bytes:  # in reverse order, then part 2 again with another ETag
        found = re.findall(rb"<Part>.*?</Part>", xml, re.S)
        bogus = re.sub(rb"<ETag>[^<]*</ETag>", b"<ETag>&quot;" + b"f" * 32 + b"&quot;</ETag>", found[1])
        return xml.replace(b"".join(found), b"".join([*reversed(found), bogus]))
    lying.proxy.list_parts_body = doubled
    with pytest.raises(StepError, match="listed part 2 twice") as e:
        await Finalizer(lying.settings, lying.store)._finish(assembled(KEY, upload_id, PART + 999, 2), parts)  # type: ignore[arg-type]
    assert not is_permanent(e.value)
    assert [(p.part_number, p.etag) for p in await lying.truth.list_parts(bucket, KEY, upload_id)] == \
        [(p.number, p.etag) for p in parts]


async def test_a_listing_out_of_order_still_names_the_foreign_part(lying: Lying) -> None:
    """The order of a listing says nothing: a part that is not the logged one is found in any order."""
    bucket = lying.settings.buckets.exports
    upload_id, parts = await upload(lying.truth, bucket, KEY, os.urandom(PART), os.urandom(999))
    await lying.truth.upload_part(bucket, KEY, upload_id, 1, os.urandom(PART))  # a zombie's part 1

    def reverse(xml: bytes) -> bytes:
        found = re.findall(rb"<Part>.*?</Part>", xml, re.S)
        return xml.replace(b"".join(found), b"".join(reversed(found)))
    lying.proxy.list_parts_body = reverse
    with pytest.raises(StepError, match="part 1 in the store is not the logged one") as e:
        await Finalizer(lying.settings, lying.store)._finish(assembled(KEY, upload_id, PART + 999, 2), parts)  # type: ignore[arg-type]
    assert is_permanent(e.value)
    assert not await upload_open(lying.truth, bucket, KEY, upload_id)


async def test_a_resumed_archive_read_back_short_is_not_hashed_as_the_archive(lying: Lying) -> None:
    """After a resume the finalizer reads the completed archive back for its SHA-256. A store (a
    cache) that answers the GET with fewer bytes, its Content-Length to match, had that hash of a
    cut copy recorded in ExportCompleted and sent to the person as the archive's. The read must give
    the logged size; else the attempt fails (retried) and nothing is completed."""
    from shared.eventlog.memory import InMemoryEventLog
    from shared.runtime.worker import StepContext

    bucket = lying.settings.buckets.exports
    one, two = os.urandom(PART), os.urandom(999)
    upload_id, parts = await upload(lying.truth, bucket, KEY, one, two)
    ids = {"export_id": "exp_l", "tenant_id": "tnt_l"}
    log = InMemoryEventLog(producer="finalizer")
    seq = 0
    for event in [
        ev.ExportRequested(**ids, user_id="u", user_email="u@example.org", username="u"),
        ev.ExportCataloged(**ids, snapshot_key="exports/tnt_l/exp_l/work/snapshot.json", snapshot_sha256="0",
                           archive_key=KEY, member_count=1, total_bytes=PART + 999, item_counts={}),
        ev.UploadStarted(**ids, upload_id=upload_id, archive_key=KEY, part_size=PART, fingerprint="f"),
        *(ev.PartUploaded(**ids, part_number=p.number, etag=p.etag, byte_start=(p.number - 1) * PART,
                          byte_end=min(p.number * PART, PART + 999), records_key="r", records_count=1,
                          members_done=1, source_bytes_done=PART) for p in parts),
        assembled(KEY, upload_id, PART + 999, 2),  # no sha256: the run that logged it was a resume
    ]:
        seq = await log.append(event, seq)
    lying.proxy.get_short = 1000
    ctx = StepContext(log, await log.load("tnt_l", "exp_l"), lying.settings)
    with pytest.raises(StepError, match="read back") as e:
        await Finalizer(lying.settings, lying.store)(ctx)
    assert not is_permanent(e.value)
    assert (await log.load("tnt_l", "exp_l")).state.completed is None
    lying.proxy.get_short = 0  # the retry reads the whole archive
    ctx = StepContext(log, await log.load("tnt_l", "exp_l"), lying.settings)
    await Finalizer(lying.settings, lying.store)(ctx)
    completed = (await log.load("tnt_l", "exp_l")).state.completed
    assert completed is not None and completed.sha256 == hashlib.sha256(one + two).hexdigest()


async def test_parts_the_store_finds_too_small_end_the_upload_at_once(lying: Lying) -> None:
    """The store refuses the completion with EntityTooSmall (a part under its minimum: a store with a
    larger one than GROVE_S3__SMALLEST_PART says). The same parts are refused for good: it was retried
    as "the storage service returned an error" four times, and the upload left open sent the operator's
    retry from finalize into the same refusal. Now the step fails at once, saying which setting, and
    the upload is aborted, so a retry assembles it again."""
    bucket = lying.settings.buckets.exports
    upload_id, parts = await upload(lying.truth, bucket, KEY, os.urandom(1000), os.urandom(10))  # moto's least: 64 KiB
    with pytest.raises(StoreError) as e:
        await Finalizer(lying.settings, lying.store)._finish(assembled(KEY, upload_id, 1010, 2), parts)  # type: ignore[arg-type]
    assert is_permanent(e.value)
    assert "GROVE_MIN_PART_SIZE" in public_reason(e.value, StepError)
    assert not await upload_open(lying.truth, bucket, KEY, upload_id)
    assert await _gone(lying.truth, bucket)
