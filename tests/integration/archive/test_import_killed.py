"""``grove-export import`` killed outright while it puts a large file, then run again.

Seen (filesystem store, real processes): SIGKILL while the image's multipart upload was under way left
that upload open — ``.uploads/grove-images/<id>/`` holding the parts sent so far, the person's image up
to there — and the import run again completed and left it (two kills, two such folders, 40 MiB of the
image each); on S3 such an upload is listed by no object listing, kept and billed until aborted.
import now aborts the uploads open at the keys it is about to put (it holds the tenant's claim and
the tenant is empty: they are a killed import's)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.archivetools import importer
from shared.content.factory import open_content, sqlite_dsn
from shared.objectstore.factory import open_store
from shared.runtime.settings import Settings
from tests.integration.archive.test_import_refusals import IMAGE, archive, cli

BIG = 48 * 2**20  # six 8 MiB parts


def _open_uploads(store: Path) -> list[str]:
    folder = store / ".uploads" / "grove-images"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _killed_mid_upload(path: Path, tmp_path: Path) -> None:
    env = {**os.environ, "GROVE_STORE": "fs", "GROVE_STORE_ROOT": str(tmp_path / "store"),
           "GROVE_CONTENT_DSN": sqlite_dsn(tmp_path / "content.db")}
    p = subprocess.Popen([sys.executable, "-m", "services.cli", "import", str(path), "--tenant", "tenant_dst"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "store" / ".uploads" / "grove-images").glob("*/00001.staged")):
        assert p.poll() is None, p.communicate()  # still putting the image when killed
        assert time.monotonic() < deadline, "no part was uploaded"
        time.sleep(0.001)
    p.send_signal(signal.SIGKILL)
    p.communicate()


def test_an_import_killed_mid_upload_and_run_again_leaves_no_upload_open(tmp_path: Path) -> None:
    image = (hashlib.sha256(b"seed").digest() * (BIG // 32))
    path = archive(tmp_path / "big.zip", image=image)
    _killed_mid_upload(path, tmp_path)
    assert len(_open_uploads(tmp_path / "store")) == 1  # what the kill left

    out = cli(tmp_path, "import", str(path), "--tenant", "tenant_dst")
    assert out.returncode == 0 and "restored 1 media" in out.stdout, out.stderr
    assert _open_uploads(tmp_path / "store") == []
    put = tmp_path / "store" / "grove-images" / "tenant_dst" / "media" / "a.jpg"
    assert hashlib.sha256(put.read_bytes()).digest() == hashlib.sha256(image).digest()


async def test_the_upload_a_killed_import_left_at_its_key_is_aborted_on_either_store(
        either_store_settings: Settings, tmp_path: Path) -> None:
    """The same on S3 (moto) and the filesystem store, through the store port: an upload left open at
    the image's key (as a killed import leaves it), another at a key the import does not put."""
    settings = either_store_settings
    store = await open_store(settings, create_buckets=True)
    content = open_content(sqlite_dsn(tmp_path / "content.db"), pool_max=2)
    try:
        await content.init()
        images = settings.buckets.images
        left = await store.create_multipart(images, "tenant_dst/media/a.jpg", "image/jpeg")
        await store.upload_part(images, "tenant_dst/media/a.jpg", left, 1, b"\xff" * (5 << 20))
        other = await store.create_multipart(images, "tenant_dst/media/not-in-the-archive.jpg", "image/jpeg")
        await importer.import_archive(archive(tmp_path / "a.zip"), "tenant_dst", content, store,
                                      url_template="https://cdn.example/{key}", images_bucket=images,
                                      amber_bucket=settings.buckets.amber)
        assert [(u.key, u.upload_id) for u in await store.list_uploads(images, "tenant_dst/")] == [
            ("tenant_dst/media/not-in-the-archive.jpg", other)]
    finally:
        await content.close()
        await store.close()


def test_the_temp_file_a_put_killed_midway_left_beside_its_key_is_removed_by_the_import_run_again(
        tmp_path: Path) -> None:
    """Seen (filesystem store, real processes): SIGKILL while an 8 MiB image was put in one piece left
    `.a.jpg.<32 hex>.tmp` beside its key, 2 MiB of the person's image, listed by no listing; the import
    run again put `a.jpg` and left it there for good. Here the temp file is as the kill left it, and
    another beside a key this archive does not put, which is not the import's to touch."""
    folder = tmp_path / "store" / "grove-images" / "tenant_dst" / "media"
    folder.mkdir(parents=True)
    cut = folder / f".a.jpg.{hashlib.md5(b'cut').hexdigest()}.tmp"
    cut.write_bytes(IMAGE[:100])
    other = folder / f".b.jpg.{hashlib.md5(b'other').hexdigest()}.tmp"
    other.write_bytes(b"another's write")
    out = cli(tmp_path, "import", str(archive(tmp_path / "a.zip")), "--tenant", "tenant_dst")
    assert out.returncode == 0 and "restored 1 media" in out.stdout, out.stderr
    assert sorted(os.listdir(folder)) == sorted([other.name, ".a.jpg.etag", "a.jpg"])
    assert (folder / "a.jpg").read_bytes() == IMAGE


def test_the_temp_file_a_killed_put_left_goes_when_the_store_s_folder_is_reached_through_a_link(
        tmp_path: Path) -> None:
    """GROVE_STORE_ROOT may be a link (a deployment's choice: /srv/grove → /mnt/disk1/grove; the store
    reads and lists through it). The removal took any folder whose real path differed from its own as
    one reached through a link and left it: with the root a link, every temp file of a killed put was
    kept for good, the case it was written for."""
    real = tmp_path / "disk1"
    folder = real / "grove-images" / "tenant_dst" / "media"
    folder.mkdir(parents=True)
    (tmp_path / "store").symlink_to(real, target_is_directory=True)
    cut = folder / f".a.jpg.{hashlib.md5(b'cut').hexdigest()}.tmp"
    cut.write_bytes(IMAGE[:100])
    out = cli(tmp_path, "import", str(archive(tmp_path / "a.zip")), "--tenant", "tenant_dst")
    assert out.returncode == 0 and "restored 1 media" in out.stdout, out.stderr
    assert sorted(os.listdir(folder)) == [".a.jpg.etag", "a.jpg"]


def test_a_folder_or_a_link_named_as_a_killed_put_s_temp_file_is_left_and_the_import_goes_on(
        tmp_path: Path) -> None:
    """Only a regular file so named is a put's (a put writes one; the tenant's folder is written by
    others too). A folder named `.a.jpg.<32 hex>.tmp` beside the key made every import run fail as the
    machine's error ("IsADirectoryError: [Errno 21] Is a directory", exit 1); a link so named went too."""
    folder = tmp_path / "store" / "grove-images" / "tenant_dst" / "media"
    (folder / f".a.jpg.{'0' * 32}.tmp").mkdir(parents=True)
    (folder / f".a.jpg.{'0' * 32}.tmp" / "theirs.txt").write_bytes(b"someone's")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the store's")
    (folder / f".a.jpg.{'1' * 32}.tmp").symlink_to(outside)
    out = cli(tmp_path, "import", str(archive(tmp_path / "a.zip")), "--tenant", "tenant_dst")
    assert out.returncode == 0 and "restored 1 media" in out.stdout, out.stderr
    assert sorted(os.listdir(folder)) == sorted([".a.jpg.etag", "a.jpg", f".a.jpg.{'0' * 32}.tmp",
                                                 f".a.jpg.{'1' * 32}.tmp"])
    assert (folder / f".a.jpg.{'0' * 32}.tmp" / "theirs.txt").read_bytes() == b"someone's"
    assert outside.read_bytes() == b"not the store's"
