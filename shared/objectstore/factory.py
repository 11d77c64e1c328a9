"""Builds the configured object store: the composition roots call :func:`open_store` once."""

from __future__ import annotations

from shared.objectstore.fs import FilesystemStore, UrlSigner
from shared.objectstore.port import ObjectStore
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
