"""`/readyz` and an exports bucket the gateway cannot use.

Seen: `/readyz` HEADed `.readyz-probe` in the exports bucket and took "not found" as "the store
answered". S3 (moto here) answers a HEAD in a bucket that is not there with the same bodiless 404 as a
missing key, and the filesystem store a bucket folder that is a file with ObjectNotFound: `/readyz`
said 200 and every export then failed. Now it asks the store whether the bucket can be used; why not
is in the gateway's log, never in the answer.
"""

from __future__ import annotations

import shutil
import uuid

from services.gateway import readiness
from shared.objectstore.s3 import S3Store
from shared.runtime.settings import Buckets, S3Settings
from tests.support.wait import until

pytest_plugins = ["tests.fixtures.moto"]

TURN_S = 10.0  # each answer stands for a second (shared/runtime/probe.py): a change shows well within this


async def _status(gateway) -> int:
    return int((await gateway.get("/readyz")).status)


async def _not_ready_then_ready(gateway, problem, caplog, repair, secret: str) -> None:
    with caplog.at_level("WARNING", logger=readiness.__name__):
        await until(lambda: _is(gateway, 503), TURN_S, 0.1, "/readyz 503 with the exports bucket unusable")
        body = await problem(await gateway.get("/readyz"), 503, "GROVE-EXPORT-008")
    assert secret not in str(body), body  # the bucket's name or path: the log's to say, not the answer's
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == readiness.__name__)
    assert secret in said, said
    await repair()
    await until(lambda: _is(gateway, 200), TURN_S, 0.1, "/readyz 200 once the exports bucket is repaired")


async def _is(gateway, status: int) -> bool:
    return await _status(gateway) == status


async def test_readiness_is_503_while_the_filesystem_exports_bucket_is_a_file_and_200_once_repaired(
    gateway, settings, problem, caplog
):
    assert await _status(gateway) == 200  # a fresh store: its first put makes the bucket's folder
    folder = settings.store_root / settings.buckets.exports
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_bytes(b"a file where the exports folder should be")

    async def repair() -> None:
        folder.unlink()
        folder.mkdir()

    await _not_ready_then_ready(gateway, problem, caplog, repair, str(folder))


async def test_readiness_is_503_while_the_filesystem_store_root_is_a_file_and_200_once_repaired(
    gateway, settings, problem, caplog
):
    root = settings.store_root
    if root.exists():
        shutil.rmtree(root)
    root.write_bytes(b"a file where the store should be")

    async def repair() -> None:
        root.unlink()

    await _not_ready_then_ready(gateway, problem, caplog, repair, str(root))


async def test_readiness_is_503_while_the_s3_exports_bucket_is_missing_and_200_once_created(
    start_gateway, moto_s3: S3Settings, problem, caplog
):
    tag = uuid.uuid4().hex[:12]
    buckets = Buckets(exports=f"exports-{tag}", images=f"images-{tag}", amber=f"amber-{tag}")
    gateway = await start_gateway(0, store="s3", s3=moto_s3, buckets=buckets)  # no bucket created

    async def repair() -> None:
        async with S3Store(moto_s3) as store:
            await store.ensure_buckets([buckets.exports])

    await _not_ready_then_ready(gateway, problem, caplog, repair, buckets.exports)
