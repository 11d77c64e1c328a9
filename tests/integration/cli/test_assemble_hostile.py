"""``grove-export assemble`` given what is not a snapshot or not a file to write: one line, a non-zero
exit, nothing written. Seen: ``--out`` naming a FIFO or a device had the archive renamed over it (run
as root, ``--out /dev/null`` left /dev/null a regular file holding the archive, for every program on
the machine); ``--snapshot`` naming another object of the bucket (the archive itself, a part record)
ended in a UnicodeDecodeError or TypeError traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import services.cli as cli
from tests.integration.cli.test_assemble_interrupted import KEY, place  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


def _assemble(data: Path, out: Path, key: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    try:
        cli.main(["assemble", "--snapshot", key, "--out", str(out), "--data", str(data)])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("how", ["fifo", "link to a fifo"])
def test_an_out_that_is_not_a_regular_file_is_refused_and_left_as_it_was(
        place: tuple[Path, Path], how: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    data, out = place
    out.parent.mkdir()
    fifo = out.parent / "pipe"
    os.mkfifo(fifo)
    if how == "link to a fifo":
        out.symlink_to(fifo)
    else:
        out = fifo
    code, err = _assemble(data, out, KEY, capsys)
    assert (code, len(err)) == (2, 1), err
    assert "is not a regular file" in err[0] and "nothing was assembled" in err[0], err
    assert stat.S_ISFIFO(os.stat(out).st_mode)  # still the FIFO, not the archive renamed over it
    assert sorted(p.name for p in out.parent.iterdir()) == sorted({"pipe", out.name})  # no .part


@pytest.mark.parametrize("body", [b"PK\x03\x04\xad\xde\x00", b'{"part": 1, "members": []}\n', b"[1, 2]\n",
                                  b'"header"\n', b'{"header": {"export_id": 5}}\n', b"[" * 100_000 + b"\n",
                                  b'{"member": {}}\n'])
def test_an_object_that_is_not_a_snapshot_is_one_line(place: tuple[Path, Path], body: bytes,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data, out = place
    out.parent.mkdir()
    from shared.runtime.settings import Settings

    key = "exports/t1/exp_1/work/parts/00001.json"
    target = Settings().store_root / Settings().buckets.exports / key
    target.parent.mkdir(parents=True)
    target.write_bytes(body)
    code, err = _assemble(data, out, key, capsys)
    assert (code, len(err)) == (1, 1), err
    assert err[0].startswith(f"grove-export: the object at {key!r}") and "is not a snapshot" in err[0], err
    assert list(out.parent.iterdir()) == []
