"""A nats-server run as a bare process (no NatsServer wrapper): one started without JetStream (no -js, no
jetstream block), whose JetStream API nothing answers, or another binary (an older release's)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator

from services.devtools.stack.natsserver import free_port, nats_server_binary


@contextlib.contextmanager
def nats_server_process(binary: str, *args: str) -> Iterator[str]:
    """``binary -a 127.0.0.1 -p PORT ARGS`` on a free port: its URL once it listens, while it runs."""
    port = free_port()
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(f"{binary} did not listen on {port}") from None
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


@contextlib.contextmanager
def no_jetstream_server() -> Iterator[str]:
    """Its URL, on a free port, while it runs."""
    with nats_server_process(nats_server_binary()) as url:  # no -js
        yield url
