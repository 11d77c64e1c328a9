"""The assembler is alive while its sources flow: a mark before every chunk it reads, also while a
resume re-reads the straddling member and logs no part (the worker stops a step that stops moving)."""

from __future__ import annotations

from collections.abc import Iterator

from services.assembler.service import marked


def test_every_chunk_read_is_a_mark_and_closing_early_closes_the_source() -> None:
    closed: list[bool] = []

    def source() -> Iterator[bytes]:
        try:
            yield from (b"a" * 10, b"b" * 10, b"c" * 10)
        finally:
            closed.append(True)

    marks: list[int] = []
    chunks = marked(source(), lambda: marks.append(len(marks)))
    assert next(chunks) == b"a" * 10 and next(chunks) == b"b" * 10
    assert len(marks) == 2
    chunks.close()  # a cancelled export: the source (a file, an HTTP body) is closed now
    assert closed == [True]
    assert list(marked(iter([b"x", b"y", b"z"]), lambda: marks.append(0))) == [b"x", b"y", b"z"]
    assert len(marks) == 5
