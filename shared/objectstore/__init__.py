"""The object-store port and its adapters (filesystem, S3)."""

from shared.objectstore.port import (
    CompletedPart,
    InvalidKey,
    MultipartUpload,
    NoSuchUpload,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    PartsTooSmall,
    PreconditionFailed,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    UploadedPart,
    upload_open,
)

__all__ = [
    "CompletedPart",
    "InvalidKey",
    "MultipartUpload",
    "NoSuchUpload",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "PartsTooSmall",
    "PreconditionFailed",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
    "UploadedPart",
    "upload_open",
]
