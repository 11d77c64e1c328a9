"""The S3 store's own timestamp parser reads every timestamp a store sends as botocore's parser
does (the same moment, with a zone exactly when botocore's has one); what it does not know goes
to botocore's parser."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.utils import parse_timestamp

from shared.objectstore.s3 import _timestamp


@pytest.mark.parametrize("value", [
    "Wed, 02 Dec 2026 10:50:34 GMT",  # Last-Modified, as S3, R2, MinIO and moto send it
    "Sun, 06 Nov 1994 08:49:37 GMT",
    "2026-12-02T10:50:34.000Z",  # XML bodies (ListObjectsV2, ListParts, CompleteMultipartUpload)
    "2026-12-02T10:50:34Z",
    "2026-12-02T10:50:34.123456+02:00",
    "2026-12-02T10:50:34",  # no zone: botocore's reading (a naive datetime)
    "Wed, 02 Dec 2026 10:50:34 -0000",  # RFC 2822's unknown zone
    "Wednesday, 02-Dec-26 10:50:34 GMT",  # RFC 850, obsolete but legal in HTTP
    "1764672634",
    1764672634,
    1764672634.5,
])
def test_every_form_reads_as_botocore_reads_it(value: object) -> None:
    ours, theirs = _timestamp(value), parse_timestamp(value)  # type: ignore[arg-type]
    assert ours == theirs
    assert (ours.utcoffset() is None) == (theirs.utcoffset() is None)


def test_an_http_date_takes_the_fast_path() -> None:
    moment = _timestamp("Wed, 02 Dec 2026 10:50:34 GMT")
    assert moment == datetime(2026, 12, 2, 10, 50, 34, tzinfo=UTC)
    assert moment.tzinfo is UTC  # not dateutil's tzutc: botocore's parser was not asked


def test_what_neither_reads_is_botocores_error() -> None:
    with pytest.raises(ValueError):
        _timestamp("not a time")
