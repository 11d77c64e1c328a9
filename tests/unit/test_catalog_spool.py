"""The catalog's spool: bytes in memory up to its limit, then in an unlinked temporary file, read
back by range either way."""

from __future__ import annotations

import os

import pytest

from services.catalog.spool import Spool


def test_a_spool_reads_back_every_range_before_and_after_it_moves_to_disk() -> None:
    spool, written = Spool(in_memory=100), b""
    for i in range(30):
        data = os.urandom(i)
        assert spool.write(data) == len(written)
        written += data
        assert spool.on_disk == (len(written) > 100)
        assert spool.read(0, len(written)) == written
        assert spool.read(len(written) - i, i) == data
    assert b"".join(spool.chunks()) == written
    with pytest.raises(ValueError):
        spool.getvalue()  # on disk: read by range
    with pytest.raises(ValueError):
        spool.read(len(written) - 1, 2)
    spool.close()
    spool.close()
    with pytest.raises(ValueError):
        spool.read(0, 1)


def test_a_small_spool_stays_in_memory_and_gives_its_bytes_at_once() -> None:
    spool = Spool()
    spool.write(b"# README\n")
    spool.write(b"post")
    assert not spool.on_disk and spool.getvalue() == b"# README\npost" and spool.read(9, 4) == b"post"
