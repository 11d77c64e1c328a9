"""serve's move of a local stack's folder into the STORE account (``move_to_store_account``): only
what holds a log moves, a STORE folder with nothing in it gives way, and two logs stop the start with
both left where they are. (tests/cluster/test_upgrade.py moves a real server's folder.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.devtools.stack.supervisor import StackFailed, move_to_store_account


def _account(root: Path, name: str, *streams: str) -> Path:
    folder = root / "jetstream" / name
    (folder / "streams").mkdir(parents=True)
    for stream in streams:
        (folder / "streams" / stream).mkdir()
        (folder / "streams" / stream / "meta.inf").write_text(stream)
    return folder


def test_the_old_accounts_log_moves(tmp_path: Path) -> None:
    _account(tmp_path, "$G", "EXPORTS", "KV_grove_heartbeats")
    assert move_to_store_account(tmp_path)
    assert not (tmp_path / "jetstream" / "$G").exists()
    assert (tmp_path / "jetstream" / "STORE" / "streams" / "EXPORTS" / "meta.inf").read_text() == "EXPORTS"
    assert not move_to_store_account(tmp_path)  # once


def test_a_store_folder_with_no_stream_gives_way(tmp_path: Path) -> None:
    _account(tmp_path, "$G", "EXPORTS")
    _account(tmp_path, "STORE")  # a server of this release started on the folder first: nothing in it
    assert move_to_store_account(tmp_path)
    assert (tmp_path / "jetstream" / "STORE" / "streams" / "EXPORTS").is_dir()


def test_two_logs_stop_the_start_and_stay(tmp_path: Path) -> None:
    _account(tmp_path, "$G", "EXPORTS")
    _account(tmp_path, "STORE", "EXPORTS")
    with pytest.raises(StackFailed, match=r"both .* hold streams"):
        move_to_store_account(tmp_path)
    assert (tmp_path / "jetstream" / "$G" / "streams" / "EXPORTS").is_dir()
    assert (tmp_path / "jetstream" / "STORE" / "streams" / "EXPORTS").is_dir()


def test_nothing_to_move(tmp_path: Path) -> None:
    assert not move_to_store_account(tmp_path)
    _account(tmp_path, "$G")  # an old account with no stream: nothing of it is needed
    assert not move_to_store_account(tmp_path)
