"""Only an error that came from talking to NATS names NATS. Seen: `grove-export verify` of a file whose
read fails (EINVAL, EIO: an OSError with no file name) said "NATS at nats://… failed: Invalid argument",
exit 1 — verify asks no NATS at all: main() took every OSError without a file name for the server's."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.devtools.stack.natsserver import NatsServer, free_port
from tests.integration.cli.test_cli import bare


def _unreadable_regular_file() -> Path:
    """A regular file of this machine whose read fails with no file name in the error: a network device's
    speed in sysfs, read while the link has none (the loopback's): EINVAL from read(2), after open(2) worked."""
    for path in sorted(Path("/sys/class/net").glob("*/speed")):
        try:
            with open(path, "rb") as f:
                f.read()
        except OSError as e:
            if e.filename is None and path.is_file():
                return path
    pytest.skip("no sysfs file here whose read fails")


def test_a_local_read_that_fails_names_this_machine_not_nats(tmp_path: Path) -> None:
    archive = _unreadable_regular_file()
    out = bare("verify", str(archive), cwd=tmp_path)
    assert (out.returncode, out.stderr.count("\n")) == (1, 1), out.stderr
    assert out.stderr == ("grove-export: verify failed on this machine: a local file or device could not be read "
                          "or written: Invalid argument (EINVAL), not a failure of NATS\n"), out.stderr


def test_a_nats_that_fails_or_is_down_is_still_named(tmp_path: Path) -> None:
    """The other side: a server without JetStream fails the command's first JetStream call (nats-py's own
    error), and a server that is not there is not reached: both name NATS and the address asked."""
    server = NatsServer(tmp_path / "nats", extra_args=["-js=false"]).start()
    try:
        out = bare("events", "exp_x", cwd=tmp_path, GROVE_NATS_URL=server.url)
    finally:
        server.stop()
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"grove-export: NATS at {server.url} (from GROVE_NATS_URL) failed: "), out.stderr
    dead = f"nats://127.0.0.1:{free_port()}"
    out = bare("events", "exp_x", cwd=tmp_path, GROVE_NATS_URL=dead)
    assert (out.returncode, out.stderr) == (2, f"grove-export: cannot reach NATS at {dead} (from GROVE_NATS_URL): "
                                               "connection refused (is nats-server running there?)\n")
