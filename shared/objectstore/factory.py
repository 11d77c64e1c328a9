"""Builds the configured object store: the composition roots call :func:`open_store` once."""

from __future__ import annotations

from shared.objectstore.fs import FilesystemStore, UrlSigner
from shared.objectstore.port import ObjectStore, StoreNotThere
from shared.runtime.settings import Settings


async def open_store(
    settings: Settings, url_signer: UrlSigner | None = None, *, create_buckets: bool = False
) -> ObjectStore:
    """The filesystem store (``store="fs"``, under ``store_root``) or the S3 store (``store="s3"``).

    ``url_signer`` makes the filesystem store's download links (the gateway serves them); S3 signs
    its own. ``create_buckets`` creates the S3 buckets named in ``settings.buckets`` when missing:
    for local stacks and tests; production buckets are provisioned with their lifecycle rules.
    The caller owns the store and must ``await store.close()``.
    """
    if settings.store == "fs":
        return FilesystemStore(settings.store_root, url_signer)
    if settings.store == "s3":
        # Imported here: botocore and aiobotocore add about 36 MB to every process that loads them,
        # and a service on the filesystem store never calls them.
        from shared.objectstore.s3 import S3Store

        store = await S3Store.open(settings.s3)
        if create_buckets:
            b = settings.buckets
            try:
                await store.ensure_buckets([b.exports, b.images, b.amber])
            except BaseException:
                await store.close()
                raise
        return store
    raise ValueError(f"unknown store {settings.store!r}")


def check_fs_store(settings: Settings, consequence: str) -> None:
    """The filesystem store's root and exports bucket folder exist (S3 answers for its own buckets);
    else :class:`StoreNotThere`, whose line ends with ``consequence`` (what was therefore not done).
    A relative ``GROVE_STORE_ROOT`` (the default, ``var/store``) run from another folder — a cron job's
    is the home folder — names a store that is not there: every key in it looks deleted already."""
    if settings.store != "fs":
        return
    root = settings.store_root.resolve()
    if not root.is_dir():  # a file there is no store either: it said "does not exist" of it
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise StoreNotThere(f"the filesystem store {root} {what} (GROVE_STORE_ROOT; for a local stack, run "
                            f"in its folder or pass --data DIR): {consequence}")
    if not (root / settings.buckets.exports).is_dir():
        raise StoreNotThere(f"the filesystem store {root} has no {settings.buckets.exports}/ bucket folder "
                            f"(GROVE_STORE_ROOT, GROVE_BUCKETS__EXPORTS): is it the stack's store? {consequence} "
                            "(if no export was ever stored there, create that folder)")
