"""Service processes with an environment of their own each, and NATS helpers for clusters.

``tests.support.stack.start_stack`` passes one environment to every service; these tests need a
NATS user per service, or a fault directory per replica (to count what each replica did), so they
launch ``python -m services.cli run <service>`` themselves: the same command a container runs
(``grove-export run <service>``).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats

from services.devtools.stack.natsserver import NatsServer, NatsServerError, env_without_proxies, free_port
from services.devtools.stack.supervisor import Child
from shared.bus import topology
from shared.bus.connect import Bus, kv_names
from shared.eventlog.jetstream import EventLog
from shared.runtime.settings import Settings

LAUNCH = [sys.executable, "-m", "services.cli"]


@dataclass
class Procs:
    """Service processes, each with its own extra environment; no automatic restarts."""

    log_dir: Path
    base_env: Mapping[str, str]
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, tag: str, command: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        full_env = {**env_without_proxies(), "PYTHONUNBUFFERED": "1", **self.base_env, **(env or {})}
        child = Child(tag, [*LAUNCH, *command], full_env, self.log_dir / f"{tag}.log")
        child.start()
        self.children[tag] = child
        return child

    def run(self, tag: str, service: str, env: Mapping[str, str] | None = None) -> Child:
        return self.start(tag, ["run", service], env)

    def assert_alive(self) -> None:
        for child in self.children.values():
            assert child.proc and child.proc.poll() is None, f"{child.name} died; see {child.log_path}\n{self.tail(child.name)}"

    def kill(self, tag: str) -> None:
        child = self.children[tag]
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGKILL)
            child.proc.wait(5)

    def tail(self, tag: str, chars: int = 3000) -> str:
        try:
            return self.children[tag].log_path.read_text()[-chars:]
        except FileNotFoundError:
            return ""

    def logs(self) -> str:
        return "\n".join(f"--- {tag} ---\n{self.tail(tag)}" for tag in self.children)

    def stop(self, timeout: float = 10.0) -> None:
        for child in self.children.values():
            if child.proc and child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            if child.proc:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(5)


def _distinct_free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def log_text(path: Path | None) -> str:
    try:
        return path.read_text(errors="replace") if path else ""
    except FileNotFoundError:
        return ""


async def connect_bus(settings: Settings, servers: Sequence[str], producer: str = "test", *,
                      user: str | None = None, password: str | None = None) -> Bus:
    """Like ``shared.bus.connect.connect(ensure=True)`` (the admin set-up: stream, buckets, durables), but with a
    list of servers."""
    opts: dict[str, object] = {"user": user, "password": password} if user else {}
    nc = await nats.connect(servers=list(servers), name=f"grove-{producer}", max_reconnect_attempts=-1,
                            reconnect_time_wait=0.5, connect_timeout=5, allow_reconnect=True, **opts)  # type: ignore[arg-type]
    js = nc.jetstream(timeout=10)
    log = EventLog(js, settings.stream_name, settings.subject_prefix, producer)
    await topology.ensure(js, settings)
    hb, adm = kv_names(settings)
    return Bus(nc, js, log, await js.key_value(hb), await js.key_value(adm))


@dataclass
class Cluster:
    """Three (or n) nats-server processes clustered on loopback, each with a monitoring port."""

    root: Path
    size: int = 3
    config_file: Path | None = None  # e.g. the generated accounts block (tests/cluster/secured.py)
    nodes: list[NatsServer] = field(default_factory=list)
    http_ports: list[int] = field(default_factory=list)

    def start(self) -> Cluster:
        """Start a new cluster on ports free a moment ago, all different. One can still be taken before its
        node binds it (a free port is an ephemeral one, and any outgoing connection may take it as its source
        port); then the nodes started are stopped — a node left running kept dialing its routes for an hour
        after its test failed — their new storage removed, and the cluster started again on other ports,
        twice at most."""
        for attempt in range(3):
            # all different: a free port is free until bound, so two calls could hand out the same one (seen:
            # n1's and n2's monitor ports were both 54719; n2 then failed to start, and n1 was left running)
            ports = _distinct_free_ports(3 * self.size)  # routes, monitors, clients
            routes = ports[:self.size]
            self.nodes, self.http_ports = [], []
            for i in range(self.size):
                http = ports[self.size + i]
                self.http_ports.append(http)
                node = NatsServer(self.root / f"n{i + 1}", port=ports[2 * self.size + i], name=f"n{i + 1}",
                                  cluster=("grove", routes[i], routes),
                                  log_file=self.root / f"n{i + 1}.log", extra_args=["-m", str(http)],
                                  config_file=self.config_file)
                self.nodes.append(node)
            fresh = [not node.store_dir.exists() for node in self.nodes]
            try:
                for node in self.nodes:
                    node.start()
                return self
            except NatsServerError:
                taken = any("address already in use" in log_text(node.log_file) for node in self.nodes)
                for node, new in zip(self.nodes, fresh, strict=True):
                    node.stop(kill=True)
                    if new:
                        shutil.rmtree(node.store_dir, ignore_errors=True)
                if not taken or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> NatsServer:
        return next(n for n in self.nodes if n.name == name)

    def jsz(self, name: str) -> dict:
        """This node's own view of its JetStream state (monitoring endpoint, no leader involved)."""
        port = self.http_ports[self.nodes.index(self.node(name))]
        url = f"http://127.0.0.1:{port}/jsz?streams=true&consumer=false&config=false"
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read())

    def local_stream_state(self, name: str, stream: str) -> dict | None:
        for account in self.jsz(name).get("account_details") or []:
            for s in account.get("stream_detail") or []:
                if s.get("name") == stream:
                    return s.get("state") or {}
        return None

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


async def wait_for_jetstream(servers: Sequence[str], timeout: float = 30.0, **opts: object) -> None:
    """Until the cluster has a JetStream meta leader that every node answers for (account info
    answers on each, asked alone). Seen: account info answered on one node while a restore, its
    connection on another, met "no responders" a moment after a new cluster started."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    waiting = list(servers)
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(servers=[waiting[0]], connect_timeout=2, max_reconnect_attempts=0, **opts)  # type: ignore[arg-type]
            try:
                await nc.jetstream(timeout=2).account_info()
            finally:
                await nc.close()
            waiting.pop(0)
            if not waiting:
                return
        except Exception as e:  # not ready yet
            last = e
            await asyncio.sleep(0.3)
    raise AssertionError(f"JetStream not ready on {waiting} after {timeout}s: {last!r}")


def count_lines(path: Path) -> int:
    try:
        return len(path.read_text().split())
    except FileNotFoundError:
        return 0
