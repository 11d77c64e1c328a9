"""The janitor against a real bus and store, with a controllable clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.janitor.run import Janitor
from services.janitor.summary import Summary
from services.janitor.sweep import abort_orphans
from shared.bus.connect import Bus
from shared.core import events as ev
from shared.core.keys import heartbeat_key
from shared.objectstore import ObjectNotFound
from shared.objectstore.fs import FilesystemStore
from shared.runtime.settings import Settings
from tests.support.wait import cancelled


async def make_export(bus: Bus, store: FilesystemStore, settings: Settings, tenant: str, *, complete_at: datetime | None,
                      upload: bool = True) -> str:
    export_id = ev.new_export_id()
    e = {"export_id": export_id, "tenant_id": tenant}
    seq = await bus.log.append(ev.ExportRequested(**e, user_id="u", user_email="a@b.c", username="u"), 0)
    key = f"exports/{tenant}/{export_id}/grove-export-u-2026-01-01.zip"
    seq = await bus.log.append(ev.ExportCataloged(**e, snapshot_key=f"exports/{tenant}/{export_id}/work/snapshot.jsonl",
                                                  snapshot_sha256="x", archive_key=key, member_count=1, total_bytes=1,
                                                  item_counts={}), seq)
    await store.put(settings.buckets.exports, f"exports/{tenant}/{export_id}/work/snapshot.jsonl", b"{}")
    if upload:
        uid = await store.create_multipart(settings.buckets.exports, key)
        seq = await bus.log.append(ev.UploadStarted(**e, upload_id=uid, archive_key=key, part_size=10,
                                                    fingerprint="f"), seq)
    if complete_at is not None:
        await store.put(settings.buckets.exports, key, b"zipbytes")
        seq = await bus.log.append(ev.ArchiveAssembled(**e, archive_key=key, upload_id="u", size_bytes=8, part_count=1,
                                                       member_count=1, error_count=0, sha256="s"), seq)
        seq = await bus.log.append(ev.FinalizeStarted(**e), seq)
        await bus.log.append(ev.ExportCompleted(**e, archive_key=key, size_bytes=8, sha256="s", item_counts={},
                                                error_count=0, expires_at=complete_at), seq)
    return export_id


def _beat(step: str, at: float) -> bytes:
    """A beat as a worker of ``step`` puts it (anything else under the key is no beat)."""
    return json.dumps({"step": step, "worker": "w1", "at": at}).encode()


async def connect_bus(settings: Settings) -> Bus:
    from shared.bus.connect import connect

    return await connect(settings, "test", ensure=True)


@pytest.fixture
def janitor_settings(values: dict) -> Settings:
    return Settings(**{**values, "heartbeat_ttl_s": 2.0, "orphan_upload_age_s": 3600.0})


async def test_janitor_expires_old_archives_fails_dead_exports_and_is_a_no_op_the_second_time(
        janitor_settings: Settings, store: FilesystemStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.bus.connect import connect
    from shared.objectstore import fs as fsmod

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        expired = await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1))
        fresh = await make_export(bus, store, settings, "tB", complete_at=now + timedelta(days=6))
        dead = await make_export(bus, store, settings, "tC", complete_at=None)
        beating = await make_export(bus, store, settings, "tD", complete_at=None)
        await bus.heartbeats.put(heartbeat_key("assemble", "tD", beating), _beat("assemble", 1))
        # another step's heartbeat (a service that is not the assembler wrote it) keeps nothing alive
        mislabelled = await make_export(bus, store, settings, "tE", complete_at=None)
        await bus.heartbeats.put(heartbeat_key("notify", "tE", mislabelled), _beat("notify", 1))
        # An orphan: an upload whose export does not exist.
        orphan = await store.create_multipart(settings.buckets.exports, "exports/tZ/exp_gone/x.zip")
        # An abort killed between taking the upload's folder away and deleting it: listed nowhere.
        cut = await store.create_multipart(settings.buckets.exports, "exports/tY/exp_cut/x.zip")
        with monkeypatch.context() as killed:
            killed.setattr(fsmod.shutil, "rmtree", lambda path, ignore_errors=False: None)
            await store.abort_multipart(settings.buckets.exports, "exports/tY/exp_cut/x.zip", cut)
        aborting = store.root / ".uploads" / ".aborting"
        assert len(list(aborting.iterdir())) == 1
        live = {u.upload_id for u in await store.list_uploads(settings.buckets.exports, "exports/tD/")}  # beating
        later = now + timedelta(hours=2)  # past the heartbeat TTL and the orphan threshold
        await bus.heartbeats.put(heartbeat_key("assemble", "tD", beating), _beat("assemble", 2))
        await bus.heartbeats.put(heartbeat_key("notify", "tE", mislabelled), _beat("notify", 2))

        # two janitors at once: each action happens once
        s1, s2 = await asyncio.gather(Janitor(settings, bus, store).run(later), Janitor(settings, bus, store).run(later))
        for export_id, tenant, status in ((expired, "tA", "expired"), (fresh, "tB", "complete"),
                                          (dead, "tC", "failed"), (beating, "tD", "assembling"),
                                          (mislabelled, "tE", "failed")):
            assert (await bus.log.load(tenant, export_id)).state.status == status, export_id
        history = [e async for _, e in bus.log.history("tA", expired)]
        assert sum(isinstance(e, ev.ExportExpired) for e in history) == 1
        with pytest.raises(ObjectNotFound):
            await store.head(settings.buckets.exports, f"exports/tA/{expired}/grove-export-u-2026-01-01.zip")
        uploads = {u.upload_id for u in await store.list_uploads(settings.buckets.exports, "exports/")}
        assert orphan not in uploads
        assert list(aborting.iterdir()) == []  # the janitor's abort of the orphan took the leftover too
        assert len(live) == 1 and live <= uploads, (live, uploads)  # and not the upload of an export at work
        assert s1.expired + s2.expired >= 1 and s1.failed + s2.failed >= 1

        again = await Janitor(settings, bus, store).run(later)
        assert (again.expired, again.failed, again.aborted) == (0, 0, 0)
        # the expired export's work objects went in this run, and its folders with them
        assert not store.path(settings.buckets.exports, "exports/tA").exists()
        dry = await Janitor(settings, bus, store, dry_run=True).run(later + timedelta(days=30))
        assert dry.expired == 1  # the fresh one, later on; a dry run changes nothing
        assert (await bus.log.load("tB", fresh)).state.status == "complete"
    finally:
        await bus.close()


async def test_a_dry_run_names_every_item_it_would_touch_and_touches_none(
        janitor_settings: Settings, store: FilesystemStore) -> None:
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        old = await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1), upload=False)
        done = await make_export(bus, store, settings, "tB", complete_at=now + timedelta(days=6), upload=False)
        stuck = await make_export(bus, store, settings, "tC", complete_at=None)  # in its upload step
        orphan = await store.create_multipart(settings.buckets.exports, "exports/tZ/exp_gone/x.zip")
        work = f"exports/tB/{done}/work/snapshot.jsonl"

        dry = await Janitor(settings, bus, store, dry_run=True).run(now + timedelta(hours=2))

        assert (dry.expired, dry.failed, dry.aborted, dry.cleaned) == (1, 1, 1, 1)
        assert len(dry.actions) == dry.expired + dry.failed + dry.aborted + dry.cleaned  # nothing only counted
        text = "\n".join(dry.actions)
        for named in (old, stuck, orphan, "exports/tZ/exp_gone/x.zip", work):
            assert named in text, (named, text)
        assert f"remove work object {work} (export {done} is complete)" in dry.actions
        assert await store.head(settings.buckets.exports, work)  # a dry run changes nothing
        assert orphan in {u.upload_id for u in await store.list_uploads(settings.buckets.exports, "exports/")}
        assert (await bus.log.load("tC", stuck)).state.status != "failed"
    finally:
        await bus.close()


async def test_a_real_run_says_what_it_did_not_what_it_would_do(
        janitor_settings: Settings, store: FilesystemStore, capsys: pytest.CaptureFixture[str]) -> None:
    """Seen on call: `grove-export janitor` printed `expire exp_… (key)` and `janitor: expire 1 archives
    (deleting them), abort 1 uploads, …`: the words of a plan, so a run that did the work read like one
    that had not, and unlike the dry run's `would expire`, nothing said which it was."""
    from services.janitor.main import run_once
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        old = await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1), upload=False)
        done = await make_export(bus, store, settings, "tB", complete_at=now + timedelta(days=6), upload=False)
        orphan = await store.create_multipart(settings.buckets.exports, "exports/tZ/exp_gone/x.zip")

        await run_once(settings, now=now + timedelta(hours=2))

        lines = capsys.readouterr().out.splitlines()
        # the archive's name holds the requester's username, and this output is the janitor's log
        # (`run janitor`, a CronJob's): it outlived `erase-tenant` (an erasure audit); the ids say which
        assert f"expired {old} (exports/tA/{old}/ARCHIVE)" in lines, lines
        assert not any("grove-export-u-" in line for line in lines), lines
        assert f"aborted upload {orphan} of exports/tZ/exp_gone/x.zip" in lines, lines
        assert f"removed work object exports/tB/{done}/work/snapshot.jsonl (export {done} is complete)" in lines, lines
        assert lines[-1] == ("janitor: expired 1 archives (deleted), aborted 1 uploads, failed 0 stuck exports, "
                             "completed 0 cancels, removed 1 work objects"), lines
    finally:
        await bus.close()


async def test_a_work_object_the_store_would_not_delete_is_not_said_removed(values: dict, moto_server: str) -> None:
    """Seen in review: a real run added "remove work object …" to its output before the delete, so a
    DeleteObjects the store refused printed "removed work object …" for objects still there."""
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store
    from tests.integration.cli.test_cli import cli
    from tests.support.env import s3_values
    from tests.support.flaky_proxy import FlakyProxy

    proxy = await FlakyProxy(moto_server, refuse_delete_many=True).start()
    s3 = s3_values(proxy.url)
    settings = Settings(**{**values, **s3})
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    try:
        done = await make_export(bus, store, settings, "tB", complete_at=datetime.now(UTC) + timedelta(days=6))  # type: ignore[arg-type]
        work = f"exports/tB/{done}/work/snapshot.jsonl"
        assert work in [o.key for o in await store.list_keys(settings.buckets.exports, f"exports/tB/{done}/")]

        run = await asyncio.to_thread(cli, {**values, **s3}, "janitor")

        assert proxy.faults >= 1, "the store was never asked to delete the work objects"
        assert work in [o.key for o in await store.list_keys(settings.buckets.exports, f"exports/tB/{done}/")]
        assert "removed work object" not in run.stdout, run.stdout
        assert "removed 0 work objects" in run.stdout.splitlines()[-1], run.stdout
    finally:
        await bus.close()
        await store.close()
        await proxy.stop()


async def test_a_janitor_run_where_the_store_is_not_refuses_and_expires_nothing(
        janitor_settings: Settings, store: FilesystemStore, tmp_path: Path) -> None:
    """Seen: `grove-export janitor` from cron (its folder is $HOME, GROVE_STORE_ROOT left relative) looked
    for var/store there: it "deleted" each old archive from a store that does not exist, appended
    ExportExpired and said so, while the archive — the person's data — stayed in the real store for good
    (and no work object or orphan upload there was ever removed)."""
    from services.janitor.main import run_once
    from shared.bus.connect import connect
    from shared.objectstore import StoreError

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        old = await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1), upload=False)
        key = f"exports/tA/{old}/grove-export-u-2026-01-01.zip"
        elsewhere = settings.model_copy(update={"store_root": tmp_path / "home" / "var" / "store"})
        with pytest.raises(StoreError, match=r"the filesystem store .*home/var/store does not exist \(GROVE_STORE_ROOT"):
            await run_once(elsewhere, now=now + timedelta(hours=2))
        (tmp_path / "home" / "var" / "store").mkdir(parents=True)  # a folder, but not the stack's store
        with pytest.raises(StoreError, match=r"has no grove-exports/ bucket folder"):
            await run_once(elsewhere, now=now + timedelta(hours=2))
        assert (await bus.log.load("tA", old)).state.status == "complete"
        assert await store.head(settings.buckets.exports, key)  # still there: nothing was deleted either
        assert (await run_once(settings, now=now + timedelta(hours=2))).expired == 1  # where it is: as before
    finally:
        await bus.close()


async def test_the_janitor_finds_every_export_past_the_servers_100000_subjects_per_answer(
        janitor_settings: Settings) -> None:
    """nats-server answers a stream info's subjects in pages of at most 100,000 (sorted): the janitor
    read the first page only, so with more exports in the log than that, those whose subject sorts
    after the 100,000th were never expired (the archive — the person's data — kept for good), failed
    or cleaned up."""
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        p, n = settings.subject_prefix, 100_010
        for i in range(n):  # only the subjects matter here: the listing is what is tested
            await bus.nc.publish(f"{p}.t{i:06d}.exp_{i}.ExportRequested", b"{}")
            if i % 10_000 == 0:
                await bus.nc.flush()
        await bus.nc.flush()
        deadline = asyncio.get_running_loop().time() + 60
        while (await bus.js.stream_info(settings.stream_name)).state.messages < n:
            assert asyncio.get_running_loop().time() < deadline, "the stream did not store every request"
            await asyncio.sleep(0.05)

        found = await Janitor(settings, bus, FilesystemStore(settings.store_root)).exports()

        assert len(found) == n
        assert ("t100009", "exp_100009") in found and ("t000000", "exp_0") in found
    finally:
        await bus.close()


@pytest.mark.parametrize("owner", [">", "*", "a.b", "a" * 65])
async def test_an_upload_whose_key_names_no_possible_export_is_an_orphan_and_stops_no_sweep(
        janitor_settings: Settings, store: FilesystemStore, owner: str) -> None:
    """Whoever may write the exports bucket may open an upload under any key. One whose tenant (or
    export) is no id was looked up in the log by that token: under 'exports/*/<id>/' the filter read
    every tenant's export of that id, and while any of them ran the upload was kept (before: the '*'
    case failed, the upload stayed). Such a key can be no export's: an orphan like any."""
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        live = await make_export(bus, store, settings, "tA", complete_at=None)  # exp_live of tenant tA, running
        strange = await store.create_multipart(settings.buckets.exports, f"exports/{owner}/{live}/x.zip")
        behind = await store.create_multipart(settings.buckets.exports, f"exports/{owner}/{live}/zz/y.zip")
        orphan = await store.create_multipart(settings.buckets.exports, "exports/tZ/exp_gone/x.zip")

        summary = Summary()
        await abort_orphans(Janitor(settings, bus, store), now + timedelta(hours=2), summary)

        left = {u.upload_id for u in await store.list_uploads(settings.buckets.exports, "exports/")}
        assert not {strange, behind, orphan} & left, summary.actions
    finally:
        await bus.close()


async def test_a_dry_run_prints_a_stores_key_with_its_control_characters_escaped(
        janitor_settings: Settings, store: FilesystemStore, capsys: pytest.CaptureFixture[str]) -> None:
    """The keys a run names come from the store's listings, and whoever may write the bucket may
    open an upload under any key: one holding an escape sequence and a line break was printed as
    is — it repainted the operator's terminal and forged a line of the report."""
    from services.janitor.main import run_once
    from shared.bus.connect import connect

    settings = janitor_settings
    await (await connect(settings, "test", ensure=True)).close()  # the admin set-up
    key = "exports/tZ/exp_gone/\x1b[2J\nwould expire exp_forged (nothing)\u202e.zip"
    upload = await store.create_multipart(settings.buckets.exports, key)

    await run_once(settings, dry_run=True, now=datetime.now(UTC) + timedelta(hours=2))

    out = capsys.readouterr().out
    assert not set(out) & {"\x1b", "\u202e"}, out
    assert not any(line.startswith("would expire") for line in out.splitlines()), out  # no forged line
    assert len(out.splitlines()) == 2, out
    assert f"would abort upload {upload} of exports/tZ/exp_gone/\\x1b[2J\\nwould expire" in out



async def test_an_archive_the_store_refuses_to_delete_does_not_stop_the_run_for_every_other(
        values: dict, moto_server: str) -> None:
    """Each run went through the exports in order and stopped at the first error: one archive the
    store refused to delete (S3 Object Lock, a legal hold, a policy: 403 AccessDenied) ended the run
    — every expired export after it (in later batches of janitor_batch) was never expired, and no
    orphan upload was aborted, on every run (cron: once a day) for as long as that archive was held.
    Now that export is left for the next run, said in the log and in the summary, and the rest done."""
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store
    from tests.support.env import s3_values
    from tests.support.flaky_proxy import FlakyProxy

    proxy = await FlakyProxy(moto_server).start()
    s3 = s3_values(proxy.url)
    s3["s3"]["max_attempts"] = 1
    settings = Settings(**{**values, **s3, "heartbeat_ttl_s": 2.0, "orphan_upload_age_s": 3600.0,
                           "janitor_batch": 1})
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        held = await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1))  # type: ignore[arg-type]
        others = [await make_export(bus, store, settings, "tB", complete_at=now - timedelta(days=1))  # type: ignore[arg-type]
                  for _ in range(3)]
        orphan = await store.create_multipart(settings.buckets.exports, "exports/tZ/exp_gone/x.zip")
        proxy.refuse_delete_of = held

        summary = await Janitor(settings, bus, store).run(now + timedelta(hours=2))

        for export_id in others:
            assert (await bus.log.load("tB", export_id)).state.status == "expired"
        assert orphan not in {u.upload_id for u in await store.list_uploads(settings.buckets.exports, "exports/")}
        assert (await bus.log.load("tA", held)).state.status == "complete"  # its archive is still there
        assert (summary.expired, summary.left) == (3, 1)
        assert "1 left for the next run" in summary.line(dry_run=False)
        assert not any(action.startswith(f"expire {held}") for action in summary.actions), summary.actions

        from tests.integration.cli.test_cli import cli  # the command cron runs: the rest done, then exit 1

        run = await asyncio.to_thread(cli, {**values, **s3, "janitor_batch": 1}, "janitor")
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.splitlines()[-1] == ("grove-export: janitor: 1 left for the next run after an error "
                                               "(the log says which and why)"), run.stderr
        assert run.stdout.splitlines()[-1].endswith("; 1 left for the next run (an error: see the log)"), run.stdout
    finally:
        await bus.close()
        await store.close()
        await proxy.stop()


@pytest.mark.parametrize("outage", ["503", "refused"])
async def test_a_store_that_does_not_answer_stops_the_run_at_once_in_one_line_and_changes_nothing(
        values: dict, moto_server: str, outage: str) -> None:
    """Seen: `grove-export janitor` with the S3 endpoint down waited out the adapter's retries for every
    export in turn (about 10 s each on the defaults: 30 s for 3, hours on a large log), printed a line
    each with the exception's repr (`... left for the next run: StoreUnavailable('EndpointConnectionError:
    ...')`), and only then gave up. Now the first call the store does not answer stops the run: one
    line naming the store, exit 1, the log and the store as they were; the next run does the rest —
    also for an archive whose delete went through while its ExportExpired was never appended."""
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store
    from tests.integration.cli.test_cli import cli
    from tests.support.env import s3_values
    from tests.support.flaky_proxy import FlakyProxy

    proxy = await FlakyProxy(moto_server).start()
    s3 = s3_values(proxy.url)  # 3 attempts a call
    attempts = s3["s3"]["max_attempts"]
    settings = Settings(**{**values, **s3})
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        expired = [await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1))  # type: ignore[arg-type]
                   for _ in range(3)]
        fresh = [await make_export(bus, store, settings, "tB", complete_at=now + timedelta(days=6))  # type: ignore[arg-type]
                 for _ in range(3)]  # each a sweep of its work objects: a store call of its own
        last_seq = (await bus.js.stream_info(settings.stream_name)).state.last_seq
        if outage == "503":
            proxy.down, proxy.requests = True, 0  # every request answered 503 SlowDown
        else:
            await proxy.stop()  # nothing listens there any more: every connection refused

        run = await asyncio.to_thread(cli, {**values, **s3}, "janitor")

        assert run.returncode == 1, (run.stdout, run.stderr)
        assert run.stderr.splitlines() == [
            f"grove-export: janitor: the object store (S3 at {proxy.url}, bucket {settings.buckets.exports}; "
            f"GROVE_S3__ENDPOINT_URL) did not answer ({'SlowDown' if outage == '503' else 'EndpointConnectionError'}): "
            "the run stopped there, nothing more was deleted or recorded, and the next run does the rest"], run.stderr
        assert run.stdout.splitlines()[-1].endswith("; stopped before the end by the object store (see stderr)")
        if outage == "503":
            # one call's attempts, and one more call's asking whether the store answers at all
            assert proxy.requests <= 2 * attempts, f"{proxy.requests} requests: {attempts} attempts each export"
        assert (await bus.js.stream_info(settings.stream_name)).state.last_seq == last_seq  # nothing appended

        if outage == "503":
            proxy.down = False
        else:
            proxy = await FlakyProxy(moto_server, port=int(proxy.url.rsplit(":", 1)[1])).start()
        for export_id in expired:  # the store as it was: every archive there
            assert await store.head(settings.buckets.exports, f"exports/tA/{export_id}/grove-export-u-2026-01-01.zip")
        # an archive deleted by a run that could not then record it: the next run records it all the same
        await store.delete(settings.buckets.exports, f"exports/tA/{expired[0]}/grove-export-u-2026-01-01.zip")

        again = await asyncio.to_thread(cli, {**values, **s3}, "janitor")

        assert again.returncode == 0, again.stderr
        for export_id in expired:
            assert (await bus.log.load("tA", export_id)).state.status == "expired"
        for export_id in fresh:
            assert (await bus.log.load("tB", export_id)).state.status == "complete"
    finally:
        await bus.close()
        await store.close()
        await proxy.stop()


async def test_one_key_the_store_keeps_failing_is_left_and_the_run_goes_on(values: dict, moto_server: str) -> None:
    """A store that answers every call but one key's delete (a 5xx that key keeps getting): the run
    stopped at that delete as if the store were down, every run, and no archive after it was ever
    deleted. The janitor asks the store once more, of a key no export has: it answers, so the error was
    that key's — left for the next run, the other archives expired, exit 1 with the one line for it."""
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store
    from tests.integration.cli.test_cli import cli
    from tests.support.env import s3_values
    from tests.support.flaky_proxy import FlakyProxy

    proxy = await FlakyProxy(moto_server).start()
    s3 = s3_values(proxy.url)
    settings = Settings(**{**values, **s3})
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        expired = [await make_export(bus, store, settings, "tK", complete_at=now - timedelta(days=1))  # type: ignore[arg-type]
                   for _ in range(3)]
        proxy.slow_delete_of = f"/{expired[0]}/"  # the first export's archive: 503 SlowDown for good

        run = await asyncio.to_thread(cli, {**values, **s3}, "janitor")

        assert run.returncode == 1, (run.stdout, run.stderr)
        assert "stopped before the end" not in run.stdout and "did not answer" not in run.stderr, run.stderr
        assert "1 left for the next run" in run.stderr, run.stderr
        states = [(await bus.log.load("tK", e)).state.status for e in expired]
        assert states == ["complete", "expired", "expired"], states
        assert await store.head(settings.buckets.exports, f"exports/tK/{expired[0]}/grove-export-u-2026-01-01.zip")
    finally:
        await bus.close()
        await store.close()
        await proxy.stop()


async def test_the_janitor_service_says_a_store_outage_in_one_line_a_run_and_runs_again_at_its_interval(
        values: dict, moto_server: str, caplog: pytest.LogCaptureFixture) -> None:
    """`grove-export run janitor` (one run every GROVE_JANITOR_INTERVAL_S) with the store down logged each
    failed run as an error with a traceback; it is one warning line a run, and the next run, an interval
    on, does the work once the store answers again (no crash, no loop faster than the interval)."""
    import logging

    from services.janitor.main import run_forever
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store
    from tests.support.env import s3_values
    from tests.support.flaky_proxy import FlakyProxy

    proxy = await FlakyProxy(moto_server).start()
    s3 = s3_values(proxy.url)
    s3["s3"]["max_attempts"] = 1
    settings = Settings(**{**values, **s3, "janitor_interval_s": 0.2})
    store = await open_store(settings, create_buckets=True)
    bus = await connect(settings, "test", ensure=True)
    service: asyncio.Task[None] | None = None
    try:
        export_id = await make_export(bus, store, settings, "tA",  # type: ignore[arg-type]
                                      complete_at=datetime.now(UTC) - timedelta(days=1))
        proxy.down = True
        with caplog.at_level(logging.WARNING, logger="services.janitor.main"):
            service = asyncio.create_task(run_forever(settings))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30

            def stopped() -> list[logging.LogRecord]:
                return [r for r in caplog.records if r.getMessage().startswith("janitor run stopped: the object "
                                                                                "store (S3 at")]

            while len(stopped()) < 2:  # two runs, an interval apart, each said in one warning line
                assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records), \
                    [(r.levelname, r.getMessage()) for r in caplog.records]
                assert loop.time() < deadline, [r.getMessage() for r in caplog.records]
                assert not service.done(), service
                await asyncio.sleep(0.05)
            assert len(caplog.records) == len(stopped()), [r.getMessage() for r in caplog.records]
            assert (await bus.log.load("tA", export_id)).state.status == "complete"

            proxy.down = False
            while (await bus.log.load("tA", export_id)).state.status != "expired":
                assert loop.time() < deadline, "the service did not run again once the store answered"
                await asyncio.sleep(0.05)
    finally:
        try:
            if service is not None:  # SIGTERM: the service stops, at once
                await cancelled(service, within=10, what="grove-export run janitor")
        finally:
            await bus.close()
            await store.close()
            await proxy.stop()


async def test_the_janitor_service_cancelled_as_a_run_closes_its_bus_stops(
        janitor_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """`grove-export run janitor` cancelled (SIGTERM) while a run closed its bus went on: nats-py's drain
    caught the CancelledError and the run returned as if done, and the loop took its next run, and the
    next, for good. A whole-suite run hung 8 minutes in the event loop's teardown after the store-outage
    test above, which now and then cancelled the service at just that point."""
    from services.janitor import main

    settings = janitor_settings.model_copy(update={"janitor_interval_s": 0.05})
    await (await connect_bus(settings)).close()  # the stream and buckets the service binds
    buses: list[Bus] = []

    async def connecting(*args: object, **kwargs: object) -> Bus:
        bus = await connect(*args, **kwargs)  # type: ignore[arg-type]
        buses.append(bus)
        return bus

    connect = main.connect
    monkeypatch.setattr(main, "connect", connecting)
    service = asyncio.create_task(main.run_forever(settings))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not (buses and buses[-1].nc.is_draining and not buses[-1].nc.is_draining_pubs):
            assert loop.time() < deadline and not service.done(), "no run closed its bus"
            await asyncio.sleep(0)
        runs = len(buses)
    finally:
        await cancelled(service, within=5, what="grove-export run janitor")  # as its run drains the bus

    assert service.cancelled()
    assert len(buses) == runs  # no run after the cancel
    assert all(b.nc.is_closed for b in buses)


async def test_the_janitor_service_cancelled_in_a_run_that_ate_the_cancel_stops_after_that_run(
        janitor_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only nats-py's drain eats a CancelledError: Python 3.11's wait_for (every NATS request's) returns
    the answer when the cancel comes as it lands (its `except CancelledError: if fut.done(): return`). The
    store-outage test above, run in a loop, met one after the Bus.close fix: the run returned, and the
    service took its next run and the next. Whatever eats it, the service stops
    once the run is over."""
    from services.janitor import main

    runs: list[int] = []

    async def run_once(settings: Settings) -> Summary:
        runs.append(1)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if len(runs) > 1:
                raise
        return Summary()  # the first run eats the cancel and returns

    monkeypatch.setattr(main, "run_once", run_once)
    service = asyncio.create_task(main.run_forever(janitor_settings.model_copy(update={"janitor_interval_s": 0.05})))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not runs:
        assert loop.time() < deadline, "no run"
        await asyncio.sleep(0.01)

    await cancelled(service, within=5, what="grove-export run janitor")

    assert service.cancelled()
    assert runs == [1]  # no run after the cancel


async def test_a_janitor_run_cancelled_as_it_opens_its_store_closes_its_bus(
        janitor_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run connected to NATS, then opened the store outside the try that closes both: cancelled
    there (SIGTERM as S3's client is built) or failing there, it left its NATS connection open, reading
    and pinging, one more each run of `grove-export run janitor`."""
    from services.janitor import main

    await (await connect_bus(janitor_settings)).close()  # the stream and buckets the run binds
    buses: list[Bus] = []
    opening = asyncio.Event()

    async def connecting(*args: object, **kwargs: object) -> Bus:
        bus = await connect(*args, **kwargs)  # type: ignore[arg-type]
        buses.append(bus)
        return bus

    async def open_store(settings: Settings) -> None:  # a store slow to open: the run is cancelled there
        opening.set()
        await asyncio.Event().wait()

    connect = main.connect
    monkeypatch.setattr(main, "connect", connecting)
    monkeypatch.setattr(main, "open_store", open_store)
    run = asyncio.create_task(main.run_once(janitor_settings))
    await asyncio.wait_for(opening.wait(), 10)

    await cancelled(run, within=5, what="the janitor run")

    assert run.cancelled()
    assert [b.nc.is_closed for b in buses] == [True]


async def test_a_filesystem_store_gone_mid_run_stops_it_and_no_archive_left_there_is_recorded_expired(
        janitor_settings: Settings, store: FilesystemStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filesystem store was checked once, at the start of a run. Its root gone later in the run (a
    volume unmounted, a folder moved: a long run over a large log) made every delete after that "succeed"
    (no file there: nothing to delete) and each archive was recorded ExportExpired — status `expired`,
    no download — while the archive, the person's data, stayed on that volume for good. Now each batch
    of deletes checks the store first: the run stops there, in one line, nothing more recorded."""
    from services.janitor import run as janitor_run

    settings = janitor_settings.model_copy(update={"janitor_batch": 1})
    bus = await connect_bus(settings)
    try:
        now = datetime.now(UTC)
        exports = sorted([await make_export(bus, store, settings, "tA", complete_at=now - timedelta(days=1),
                                            upload=False) for _ in range(2)])  # the order the run reads them
        root, moved = settings.store_root, settings.store_root.with_name("store.unmounted")
        reads: list[str] = []
        real_slow = janitor_run.faults.slow

        async def reading(name: str) -> None:  # the volume goes away as the run reads its second export
            if name == "janitor.read":
                reads.append(name)
                if len(reads) == 2:
                    root.rename(moved)
            await real_slow(name)

        monkeypatch.setattr(janitor_run.faults, "slow", reading)

        summary = await Janitor(settings, bus, store).run(now + timedelta(hours=2))

        assert len(reads) == 2
        assert (await bus.log.load("tA", exports[0])).state.status == "expired"  # before: done and recorded
        assert (await bus.log.load("tA", exports[1])).state.status == "complete"  # its archive is not deleted
        assert (moved / settings.buckets.exports / "exports" / "tA" / exports[1]).is_dir()
        assert summary.expired == 1 and summary.stopped is not None
        assert summary.stopped.startswith(f"the filesystem store {root.resolve()} does not exist (GROVE_STORE_ROOT")
        assert summary.stopped.endswith("the run stopped there, nothing more was deleted or recorded, and the "
                                        "next run does the rest"), summary.stopped
    finally:
        await bus.close()


@pytest.mark.parametrize("stray", ["ExportRequested", "CancelRequested", "NotificationSent"])
async def test_an_event_the_fold_ignores_does_not_hide_a_dead_step_from_the_janitor(
        janitor_settings: Settings, store: FilesystemStore, stray: str) -> None:
    """The janitor judged 'a step is running' by the type of the last event folded, even one the fold
    ignores: a second ExportRequested (a publisher's retry without the expected-sequence header —
    "changes nothing", says the event contract) or a CancelRequested after FinalizeStarted (too late:
    the finalizer completes it) ended the step as far as the janitor could tell, so a step whose
    worker died was never failed and the tenant's slot was held by it for good. The late cancel also
    made the export's step 'cancel', so the janitor read the canceller's heartbeat, not the finalizer's."""
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        export_id = await make_export(bus, store, settings, "tA", complete_at=None)
        e = {"export_id": export_id, "tenant_id": "tA"}
        seq = await bus.log.last_seq("tA", export_id)
        if stray == "CancelRequested":
            seq = await bus.log.append(ev.ArchiveAssembled(**e, archive_key=f"exports/tA/{export_id}/a.zip",
                                                           upload_id="u", size_bytes=8, part_count=1, member_count=1,
                                                           error_count=0, sha256="s"), seq)
            seq = await bus.log.append(ev.FinalizeStarted(**e), seq)
            late = ev.CancelRequested(**e, requested_by="u")
            assert (await bus.log.load("tA", export_id)).state.step == "finalize"
        elif stray == "NotificationSent":  # the notifier's user may append it to any export
            late = ev.NotificationSent(**e, channel="smtp")
        else:
            late = ev.ExportRequested(**e, user_id="u", user_email="a@b.c", username="u")
        await bus.js.publish(ev.subject_for(settings.subject_prefix, late), late.to_json())  # no fence: it lands
        state = (await bus.log.load("tA", export_id)).state
        assert state.step == ("finalize" if stray == "CancelRequested" else "assemble")

        summary = await Janitor(settings, bus, store).run(now + timedelta(hours=2))  # no worker beats

        assert summary.failed == 1, summary.actions
        assert (await bus.log.load("tA", export_id)).state.status == "failed"
    finally:
        await bus.close()


async def test_a_run_holds_one_export_at_a_time_not_every_export_in_the_log(
        janitor_settings: Settings, store: FilesystemStore) -> None:
    """A run folded every export in the log first and held each fold (about 10 KB each) to the end of
    the run: its memory grew with the log — 30 days of exports — and the CronJob's limit is 512 MiB
    (deploy/k8s), so past some tens of thousands of exports every run was killed before it cleaned
    anything. Now it decides one export at a time (the expired ones a batch at a time)."""
    import tracemalloc

    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        await store.put(settings.buckets.exports, "exports/t0/exp_0/grove-export-u-2026-01-01.zip", b"zip")
        for i in range(600):  # complete, not yet expired: each one only looked at
            e = {"export_id": f"exp_{i}", "tenant_id": f"t{i}"}
            key = f"exports/t{i}/exp_{i}/grove-export-u-2026-01-01.zip"
            seq = await bus.log.append(ev.ExportRequested(**e, user_id="u", user_email="a@b.c", username="u"), 0)
            seq = await bus.log.append(ev.ExportCataloged(**e, snapshot_key=f"exports/t{i}/exp_{i}/work/snapshot.jsonl",
                                                          snapshot_sha256="x", archive_key=key, member_count=1,
                                                          total_bytes=1, item_counts={"posts": 1}), seq)
            seq = await bus.log.append(ev.ArchiveAssembled(**e, archive_key=key, upload_id="u", size_bytes=8,
                                                           part_count=1, member_count=1, error_count=0), seq)
            seq = await bus.log.append(ev.FinalizeStarted(**e), seq)
            await bus.log.append(ev.ExportCompleted(**e, archive_key=key, size_bytes=8, sha256="s",
                                                    item_counts={"posts": 1}, error_count=0,
                                                    expires_at=now + timedelta(days=3)), seq)
        tracemalloc.start()
        try:
            summary = await Janitor(settings, bus, store).run(now)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (summary.expired, summary.failed, summary.left) == (0, 0, 0)
        assert peak < 2_500_000, f"a run over 600 exports held {peak / 1e6:.1f} MB"
    finally:
        await bus.close()


async def test_an_archive_whose_export_the_log_no_longer_holds_is_deleted_once_past_its_retention(
        janitor_settings: Settings, store: FilesystemStore) -> None:
    """The janitor found exports only in the log, by their ExportRequested. When that has aged out of
    the stream (GROVE_STREAM_MAX_AGE_DAYS shorter than the archive's days, as one who keeps the email
    addresses only 5 days would set it; a janitor that did not run for weeks; an operator's retry days
    after the request, whose new archive expires after its request is gone), the archive — the
    person's data — and the export's work objects stayed in the store for good. Now whatever the log
    no longer holds is deleted once older than the archive's retention (work objects: than
    GROVE_ORPHAN_UPLOAD_AGE_S); the archives of the exports the log holds are judged by the log."""
    from shared.bus.connect import connect

    settings = janitor_settings
    bucket = settings.buckets.exports
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        gone_key = "exports/tF/exp_forgotten/grove-export-u-2026-01-01.zip"
        gone_work = "exports/tF/exp_forgotten/work/snapshot.jsonl"
        await store.put(bucket, gone_key, b"zip")
        await store.put(bucket, gone_work, b"{}")
        # A log that holds nothing (a new or wrong server, one being restored) says nothing aged out of it.
        empty = await Janitor(settings, bus, store).run(now + timedelta(days=8))
        assert empty.forgotten == 0 and await store.head(bucket, gone_key) and await store.head(bucket, gone_work)

        kept = await make_export(bus, store, settings, "tK", complete_at=now + timedelta(days=30), upload=False)
        kept_key = f"exports/tK/{kept}/grove-export-u-2026-01-01.zip"
        # Written after the oldest message the log holds, yet without its request: not aged out (made up).
        made_up = "exports/tM/exp_madeup/grove-export-u-2026-01-01.zip"
        await store.put(bucket, made_up, b"zip")

        young = await Janitor(settings, bus, store).run(now + timedelta(days=1))  # within the retention
        assert await store.head(bucket, gone_key) and young.left == 0
        dry = await Janitor(settings, bus, store, dry_run=True).run(now + timedelta(days=8))
        assert any(gone_key in a for a in dry.actions) and await store.head(bucket, gone_key)

        done = await Janitor(settings, bus, store).run(now + timedelta(days=8))

        assert young.forgotten + done.forgotten == 2  # the work object goes at day 1 (its age is shorter)
        for key in (gone_key, gone_work):
            with pytest.raises(ObjectNotFound):
                await store.head(bucket, key)
        assert await store.head(bucket, kept_key)  # the log holds it and says it is not expired yet
        assert await store.head(bucket, made_up)
        # left, and said: the one export the log does not hold whose object did not age out of it
        assert done.unaccounted == {("tM", "exp_madeup"): 1} == young.unaccounted
        assert "not deleted: 1 objects of 1 exports the log does not hold (tM/exp_madeup;" in done.line(False)
    finally:
        await bus.close()


async def test_an_export_the_log_holds_events_of_is_never_named_as_one_it_does_not_hold(
        janitor_settings: Settings, store: FilesystemStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review of the summary's "not deleted: … exports the log does not hold" (which points at a restore
    from an older backup): the run judged by the requests it read at its start, so an export requested
    while it ran, its objects already written, was named; and so was one whose request aged out of the
    stream while its later events and its archive (within its retention) are still there. Each is
    asked of the log again, by any of its subjects, before it is named."""
    from services.janitor import run as janitor_run

    settings = janitor_settings
    bus = await connect_bus(settings)
    try:
        now = datetime.now(UTC)
        await make_export(bus, store, settings, "tOld", complete_at=now + timedelta(days=6), upload=False)
        real_slow = janitor_run.faults.slow
        live: list[str] = []

        async def reading(name: str) -> None:  # a person requests an export while the run reads the log
            if name == "janitor.read" and not live:
                live.append(await make_export(bus, store, settings, "tLive", complete_at=None, upload=False))
            await real_slow(name)

        monkeypatch.setattr(janitor_run.faults, "slow", reading)
        during = await Janitor(settings, bus, store).run(now)
        assert live and (await bus.log.load("tLive", live[0])).state.exists  # the request landed mid-run
        assert await store.list_keys(settings.buckets.exports, f"exports/tLive/{live[0]}/")  # objects written
        assert during.unaccounted == {}, during.line(False)
        monkeypatch.undo()

        aged = await make_export(bus, store, settings, "tR", complete_at=now + timedelta(days=6), upload=False)
        await bus.js.purge_stream(settings.stream_name, subject=f"{settings.subject_prefix}.tR.{aged}.ExportRequested")
        made_up = "exports/tM/exp_madeup/grove-export-u-2026-01-01.zip"  # beside them, one the log never held
        await store.put(settings.buckets.exports, made_up, b"zip")
        dry = await Janitor(settings, bus, store, dry_run=True).run(now)
        assert dry.unaccounted == {("tM", "exp_madeup"): 1}, dry.line(True)
    finally:
        await bus.close()


async def test_an_export_waiting_for_its_next_attempt_is_not_failed_as_dead(values: dict,
                                                                           store: FilesystemStore) -> None:
    """After a failed attempt (StepFailed) the step waits retry_base_delay_s * 2**(attempt-1) before the
    next, beating nothing meanwhile. The janitor took an export whose last event is StepFailed as dead
    once the heartbeat's TTL had passed, so with a longer delay than the TTL (GROVE_RETRY_BASE_DELAY_S
    120: the third retry waits 480 s, past the default 300 s TTL) it failed exports that were only
    waiting for their scheduled retry. Dead now means nothing for the TTL after that wait."""
    from shared.bus.connect import connect

    settings = Settings(**{**values, "heartbeat_ttl_s": 300.0, "retry_base_delay_s": 120.0})
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        export_id = await make_export(bus, store, settings, "tA", complete_at=None)
        seq = await bus.log.last_seq("tA", export_id)
        await bus.log.append(ev.StepFailed(export_id=export_id, tenant_id="tA", step="assemble", attempt=3,
                                           reason="the store timed out"), seq)  # the next attempt in 480 s

        waiting = await Janitor(settings, bus, store).run(now + timedelta(seconds=600))
        assert waiting.failed == 0 and (await bus.log.load("tA", export_id)).state.status == "assembling"

        gone = await Janitor(settings, bus, store).run(now + timedelta(seconds=480 + 300 + 60))
        assert gone.failed == 1 and (await bus.log.load("tA", export_id)).state.status == "failed"
    finally:
        await bus.close()


@pytest.mark.parametrize("stray", ["ExportRequested", "NotificationSent"])
async def test_an_event_the_fold_ignores_is_no_activity_either(janitor_settings: Settings, store: FilesystemStore,
                                                               stray: str) -> None:
    """The janitor's 'nothing happened for a TTL' took the time of the export's last decodable event,
    even one the fold ignores (a second ExportRequested; a NotificationSent, which the notifier's user
    may append to any export): sending one now and then kept a dead export alive for ever, and its
    tenant's slot held. The run here is between the two times: a TTL after the step's last event, less
    than a TTL after the stray one."""
    from shared.bus.connect import connect

    settings = janitor_settings
    bus = await connect(settings, "test", ensure=True)
    try:
        export_id = await make_export(bus, store, settings, "tA", complete_at=None)  # UploadStarted: running
        e = {"export_id": export_id, "tenant_id": "tA"}
        real = await bus.js.get_msg(settings.stream_name, seq=await bus.log.last_seq("tA", export_id), direct=True)
        late = (ev.NotificationSent(**e, channel="smtp") if stray == "NotificationSent"
                else ev.ExportRequested(**e, user_id="u", user_email="a@b.c", username="u"))
        ack = await bus.js.publish(ev.subject_for(settings.subject_prefix, late), late.to_json())
        other = await bus.js.get_msg(settings.stream_name, seq=ack.seq, direct=True)
        assert real.time and other.time and other.time > real.time
        now = real.time + timedelta(seconds=settings.heartbeat_ttl_s) + (other.time - real.time) / 2

        summary = await Janitor(settings, bus, store).run(now)

        assert summary.failed == 1, summary.actions
    finally:
        await bus.close()


async def test_junk_on_request_subjects_costs_a_run_one_line_and_no_real_export_is_left_out(
        janitor_settings: Settings, store: FilesystemStore, caplog: pytest.LogCaptureFixture) -> None:
    """Any user can have the server store a body on any ``<prefix>.<t>.<x>.ExportRequested`` (a PubAck
    aimed there): 20,000 such subjects (0.1 s to send) each cost every run two full reads of the
    subject's history and two warnings — 22 s and 40,000 lines a run. A subject whose every message is
    no request is now judged from those messages alone, a few hundred at a time, and said in one line;
    a request among junk (after it, or before it on the same subject) is still an export."""
    import logging

    from shared.bus.connect import connect

    settings = janitor_settings
    p = settings.subject_prefix
    bus = await connect(settings, "test", ensure=True)
    try:
        now = datetime.now(UTC)
        dead = await make_export(bus, store, settings, "tA", complete_at=None)  # junk after its request
        await bus.js.publish(f"{p}.tA.{dead}.ExportRequested", b'{"stream": "X", "seq": 1}')
        before = ev.new_export_id()  # junk before its request, on the same subject
        await bus.js.publish(f"{p}.tB.{before}.ExportRequested", b"{not an event")
        seq = (await bus.js.stream_info(settings.stream_name)).state.last_seq
        seq = await bus.log.append(ev.ExportRequested(export_id=before, tenant_id="tB", user_id="u", user_email="a@b.c",
                                                      username="u"), seq)
        await bus.log.append(ev.CatalogStarted(export_id=before, tenant_id="tB"), seq)  # a step runs: dead, failed
        n = 2000
        for i in range(n):  # one message on each of n subjects, and two on each of 10
            await bus.nc.publish(f"{p}.t_j{i % 50}.x{i}.ExportRequested", b'{"stream": "X", "seq": 1}')
        for i in range(10):
            await bus.nc.publish(f"{p}.t_j{i % 50}.x{i}.ExportRequested", b"{}")
        await bus.nc.flush()
        deadline = asyncio.get_running_loop().time() + 30
        while (await bus.js.stream_info(settings.stream_name)).state.messages < n + 10 + 7:
            assert asyncio.get_running_loop().time() < deadline, "the stream did not store the junk"
            await asyncio.sleep(0.05)

        with caplog.at_level(logging.WARNING):
            summary = await Janitor(settings, bus, store).run(now + timedelta(hours=2))  # no worker beats

        assert summary.failed == 2, summary.actions  # both real exports seen (and dead: failed)
        assert (await bus.log.load("tA", dead)).state.status == "failed"
        assert (await bus.log.load("tB", before)).state.status == "failed"
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert [w for w in warnings if ".t_j" in w] == []  # no line for a junk subject (one or two each before)
        assert [w for w in warnings if "hold no request" in w] == [
            f"janitor: {n} ExportRequested subjects hold no request ({n} malformed): no exports, not read further"]
    finally:
        await bus.close()
