"""``grove-export restore DIR`` refuses a folder that is not a whole backup in one line, before it
connects and before any stream is restored: a manifest.json that is not JSON (it was a
JSONDecodeError traceback; one nested thousands deep, a RecursionError traceback), of the wrong shape, naming a stream that is not a stream name or a file
outside the folder, a snapshot whose checksum does not match; and one that is not a backup of this
deployment's streams: a stream listed twice, one missing, none at all, another deployment's (its stream
names or subjects), a config that names another stream (each restored the first streams, then failed
part-way, or restored what the services never read, and said nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.operator.backup import BackupError, check_backup
from services.operator.restorable import setup_configs
from shared.runtime.settings import Settings
from tests.support.backups import backup_folder

SETTINGS = Settings(stream_name="EXPORTS", subject_prefix="exports", kv_prefix="grove")


def _second(**kw: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda m: m["streams"][1].update(kw)


CASES: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "streams not a list": (lambda m: m.update(streams={"a": 1}), "no list of streams"),
    "an entry not an object": (lambda m: m["streams"].append("x"), "streams[3] is not an object"),
    "an entry without sha256": (lambda m: m["streams"][0].pop("sha256"), "streams[0] is not an object with"),
    "a stream name with a dot": (_second(stream="EXPORTS.>"), "streams[1].stream 'EXPORTS.>' is not a stream name"),
    "a file outside the folder": (_second(file="../elsewhere"), "streams[1].file '../elsewhere' is not a file name"),
    "a checksum that does not match": (_second(sha256="0" * 64), "KV_grove_heartbeats.tar.s2 does not match"),
    "a missing snapshot": (_second(file="gone.tar.s2"), "gone.tar.s2: cannot be read"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_folder_that_is_not_a_whole_backup_is_refused_before_restoring(case: str, tmp_path: Path) -> None:
    edit, says = CASES[case]
    with pytest.raises(BackupError) as refused:
        check_backup(backup_folder(tmp_path / "bk", edit), SETTINGS)
    assert says in str(refused.value), str(refused.value)


def test_whole_backup_entries_come_with_their_config(tmp_path: Path) -> None:
    entries = check_backup(backup_folder(tmp_path / "bk"), SETTINGS)
    assert [e["stream"] for e in entries] == ["EXPORTS", "KV_grove_heartbeats", "KV_grove_admission"]
    assert entries[0]["meta"]["config"] == setup_configs(SETTINGS)["EXPORTS"]


NOT_OURS: dict[str, tuple[Callable[[dict[str, Any]], Any] | None, Callable[[str, dict[str, Any]], Any] | None,
                          str]] = {
    "a stream listed twice": (lambda m: m["streams"].insert(1, m["streams"][0]), None,
                              "streams[1]: EXPORTS is listed twice"),
    "a stream missing": (lambda m: m["streams"].pop(), None,
                         "it holds no KV_grove_admission: not a whole backup of this deployment"),
    "no streams at all": (lambda m: m.update(streams=[]), None,
                          "it holds no EXPORTS, KV_grove_heartbeats, KV_grove_admission"),
    "another deployment's stream": (lambda m: m["streams"][0].update(stream="OTHER_EXPORTS"), None,
                                    "streams[0].stream 'OTHER_EXPORTS' is not one of this deployment's streams "
                                    "(EXPORTS, KV_grove_heartbeats, KV_grove_admission"),
    "a config naming another stream": (None, lambda name, c: c.update(name="OTHER") if name.endswith("admission")
                                       else None, "KV_grove_admission.json: its config names stream 'OTHER'"),
    "another deployment's subjects": (None, lambda name, c: c.update(subjects=["other.>"]) if name == "EXPORTS"
                                      else None, "EXPORTS.json: its stream holds subjects ['other.>'], "
                                                 "this deployment's ['exports.>']"),
    "a config without subjects": (None, lambda name, c: c.pop("subjects") if name == "EXPORTS" else None,
                                  "EXPORTS.json: its stream holds subjects None"),
    # settings the set-up never makes, restored as they were: the log copied to a subject anyone reads...
    "a config that republishes the log": (None, lambda name, c: c.update(republish={"src": ">", "dest": "x.>"})
                                          if name == "EXPORTS" else None,
                                          "EXPORTS.json: its config holds republish as this deployment's "
                                          "set-up never makes them"),
    "a config that takes in another stream and is sealed": (
        None, lambda name, c: c.update(sources=[{"name": "OTHER"}], sealed=True) if name.endswith("heartbeats")
        else None, "KV_grove_heartbeats.json: its config holds sealed, sources as"),
    "a config that mirrors": (None, lambda name, c: c.update(mirror={"name": "OTHER"}, subject_transform={
        "src": ">", "dest": "y.>"}) if name.endswith("admission") else None,
        "KV_grove_admission.json: its config holds mirror, subject_transform as"),
}


@pytest.mark.parametrize("case", NOT_OURS)
def test_a_backup_that_is_not_one_of_this_deployments_streams_is_refused(case: str, tmp_path: Path) -> None:
    edit, config, says = NOT_OURS[case]
    with pytest.raises(BackupError) as refused:
        check_backup(backup_folder(tmp_path / "bk", edit, config), SETTINGS)
    assert says in str(refused.value), str(refused.value)


@pytest.mark.parametrize(("manifest", "says"), [
    ("{", "manifest.json: not readable JSON (JSONDecodeError)"),
    ("[1]", "manifest.json: not a grove-export backup manifest"),
    ("[" * 100_000 + "]" * 100_000, "manifest.json: not readable JSON (nested too deep)"),
    (None, "has no manifest.json; it is not a grove-export backup"),
])
def test_the_cli_refuses_in_one_line_without_a_server(tmp_path: Path, manifest: str | None, says: str) -> None:
    folder = tmp_path / "bk"
    folder.mkdir()
    if manifest is not None:
        (folder / "manifest.json").write_text(manifest)
    env = {**os.environ, "GROVE_NATS_URL": "nats://127.0.0.1:1"}  # nothing listens: it must not be asked
    out = subprocess.run([sys.executable, "-m", "services.cli", "restore", str(folder)], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def _huge(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(65 << 20)  # sparse: no disk taken


NOT_FILES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "a snapshot that is a FIFO": ("EXPORTS.tar.s2", _fifo, "EXPORTS.tar.s2: cannot be read (not a regular file"),
    "a snapshot linked to /dev/zero": ("EXPORTS.tar.s2", _zero, "EXPORTS.tar.s2: cannot be read (not a regular file"),
    "a config that is a FIFO": ("KV_grove_admission.json", _fifo,
                                "KV_grove_admission.json: not readable JSON (not a regular file"),
    "a config linked to /dev/zero": ("EXPORTS.json", _zero, "EXPORTS.json: not readable JSON (not a regular file"),
    "a config of 65 MiB": ("EXPORTS.json", _huge, "EXPORTS.json: not a backup's JSON (over 64 MiB)"),
}


@pytest.mark.parametrize("case", NOT_FILES)
def test_a_backup_file_that_is_no_regular_file_is_refused_at_once(tmp_path: Path, case: str) -> None:
    """A FIFO was opened and waited on for a writer, /dev/zero read for ever, in the event loop's
    thread: neither Ctrl-C nor SIGTERM ended the command (`timeout 20 grove-export restore DIR` ran
    on until killed)."""
    name, make, says = NOT_FILES[case]
    folder = backup_folder(tmp_path / "bk")
    make(folder / name)
    env = {**os.environ, "GROVE_NATS_URL": "nats://127.0.0.1:1"}  # nothing listens: it must not be asked
    out = subprocess.run([sys.executable, "-m", "services.cli", "restore", str(folder)], env=env,
                         capture_output=True, text=True, timeout=20, check=False)  # killed at the deadline
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
