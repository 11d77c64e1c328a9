"""``grove-export serve``: nats-server plus supervised OS processes, one per service (two
assemblers on two or more cores: :func:`default_replicas`).

Each service runs as ``grove-export run NAME`` — exactly what its container runs — and is
restarted when it dies, so killing one in a test is a container crash in production.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from services.devtools.stack import operator, running
from services.devtools.stack.natsserver import NatsServer, NatsServerError, die_with_parent
from shared.bus.permissions import ADMIN, STORE_ACCOUNT, USERS, render_accounts
from shared.core import steps
from shared.runtime.cpus import usable_cpus
from shared.runtime.secrets import (
    DATA_DIR_MODE,
    PREVIOUS_NAMES,
    SECRET_NAMES,
    SECRETS_FILE,
    local_secrets,
    previous,
    read_local_passwords,
    read_local_secrets,
    require,
    write_private,
)
from shared.runtime.settings import Settings, SettingsProblem

SERVICES = steps.service_names()  # every service of the step table
LOCK_FILE = "stack.lock"
PASSWORDS_FILE = "nats-users.json"  # NATS user → password of the stack's own nats-server (0600)
MAX_ASSEMBLERS = 16  # `serve --assemblers N`: more processes than that on one machine only compete
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
QUICK_DEATH_S = 10.0  # a service that dies this soon after it started is failing to start, not crashing
MAX_RESTART_DELAY_S = 30.0


def restart_delay(quick_deaths: int) -> float:
    """Seconds before a dead service is started again, after ``quick_deaths`` deaths in a row each soon
    after its start: none for the first two (a kill, a crash), then 0.5 s doubling to 30 s. A service that
    fails at every start (a setting only it refuses, a port already taken) was restarted every 0.2 s for
    ever, a whole Python start each time, on a machine the rest of the stack shares."""
    return 0.0 if quick_deaths < 3 else min(MAX_RESTART_DELAY_S, 0.5 * 2 ** (quick_deaths - 3))


def _say(line: str) -> None:
    """One line on stderr, if anyone still reads it (a closed pipe must not end the supervision)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def how_it_ended(returncode: int) -> str:
    """A dead service's return code as a person reads it: ``exited with code 1``, ``was killed by
    SIGKILL`` (Popen's ``-9``, which read "code -9")."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"was killed by signal {-returncode}"


READY_TIMEOUT_S = 60.0  # a gateway not ready by then is failing to start (its log says why)
GIVE_UP_DEATHS = 3  # a gateway dead this many times in a row, each soon after its start, will not come up


def gateway_ready(port: int, timeout: float = READY_TIMEOUT_S, failing: Callable[[], str | None] = lambda: None) -> bool:
    """True once the local gateway on ``port`` answers ``/readyz`` with 200 (NATS and the store answer),
    False when ``timeout`` seconds pass first; :class:`StackFailed` as soon as ``failing()`` says why it
    cannot come up (:meth:`Stack.gateway_failing`: dead at every start). ``serve`` said "local stack up —
    gateway http://…" as its processes were started, about 2.4 s before the gateway listened: the link it
    printed was refused. And a gateway refusing a setting at every start was waited on for the whole 60 s,
    then `serve` went on as "started". Asked directly, never through an ``http_proxy`` of the environment."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        if (why := failing()) is not None:
            raise StackFailed(why)
        try:
            with opener.open(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:  # not listening yet, or a 503 (HTTPError): NATS or the store not answering yet
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def default_replicas(cpus: int | None = None) -> dict[str, int]:
    """Processes per service when none are asked for: two assemblers on a machine with two or more
    cores, one of everything else. The assembler is the one step whose work is mostly Python
    (ZIP framing, records) and so holds one core at most per process: in a burst of 2,000 small
    exports on two cores it ran at 100 % of one while 40 % of the machine sat idle, and a second
    replica on the same durable consumer took that (38.7 → 43.0–47.7 exports/s measured)."""
    return {"assembler": 2} if (cpus if cpus is not None else usable_cpus()) >= 2 else {}


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Inside, Ctrl-C, SIGTERM (``timeout``, systemd, ``docker stop``) and SIGHUP (its terminal closed) all
    end a local stack's command as Ctrl-C does, with a KeyboardInterrupt wherever it is, starting or up:
    :meth:`Stack.start`'s clean-up or the command's ``finally: stack.stop()`` then stops every child.
    The children run in sessions of their own and get none of these signals: SIGTERM mid-start or
    SIGHUP used to end the command outright, leaving nats-server and every service running. Signals
    after the first are ignored, so none cuts the stop short (by a Python handler, not SIG_IGN, which
    a child started meanwhile would inherit)."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def interrupt(signum: int, _frame: object) -> None:
        hold_stop_signals()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(*_: object) -> None:
    pass


def hold_stop_signals() -> None:
    """Inside :func:`stopped_by_signals`, from now on the stop signals change nothing: the stack is being
    stopped (after the first signal, or as the command ends by itself). A Ctrl-C landing in ``demo``'s own
    ``finally: stack.stop()`` raised KeyboardInterrupt there and cut the stop short: stack.json was left,
    the services and nats-server were left to the kernel's parent-death signal, and an export that was
    downloaded and verified ended "interrupted", exit 130, without its path."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _ignore)


class StackBusy(Exception):
    """The data folder already has a running local stack or cannot be written, or the gateway's port is
    taken: one line."""


def _lock(data_dir: Path, *, probe: bool = False) -> int:
    """Hold ``<data>/stack.lock`` while the stack runs (the kernel lets go if the process dies): a
    second stack on the same folder would share its nats-server store and remove its stack.json.
    With ``probe``, only say whether another stack holds it (:class:`StackBusy`), writing nothing:
    the file is not made, and the lock is let go at once (-1)."""
    try:
        fd = os.open(data_dir / LOCK_FILE, os.O_RDONLY if probe else os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        if probe:  # no stack ever ran here, so none runs now
            return -1
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        body = running.read_stack_file(data_dir)
        where = "" if body is None else \
            f" (pid {body.get('pid')}, gateway {body.get('env', {}).get('GROVE_PUBLIC_URL', '?')})"
        # without --data a command reads ./var: only a stack in this folder's var/ is found from here
        finds = ("run from this folder find it" if data_dir.resolve() == Path("var").resolve()
                 else f"find it with --data {shlex.quote(str(data_dir))}")  # as a shell takes it: a space
        raise StackBusy(f"a local stack already runs in {data_dir}{where}: use it (operator commands and "
                        f"`grove-export seed` {finds}), stop it first, or pass "
                        f"--data with another folder (with make, whose `make run` and `make serve` use var/: "
                        f"`.venv/bin/grove-export demo --data DIR`, `… serve --data DIR`)") from None
    if probe:
        os.close(fd)
        return -1
    return fd


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def preflight(data_dir: Path, port: int | None, given: Mapping[str, str]) -> None:
    """Every refusal a start of a local stack in ``data_dir`` can make before it writes anything, so a
    refused ``serve`` or ``demo`` leaves the folder as it was: another stack holds the folder, the
    gateway's ``port`` (None: no gateway) is taken (:class:`StackBusy`); GROVE_METRICS_PORT is set, one port for
    every service (:class:`SettingsProblem`); a signing secret ``given`` in
    the environment (a previous key too) is unusable, or the folder's secrets.json or nats-users.json is damaged
    (:class:`SecretError`). :meth:`Stack.start` still takes the lock itself: this only says no early."""
    if int(given.get("GROVE_METRICS_PORT") or 0):  # valid: Settings() has read it
        raise SettingsProblem("GROVE_METRICS_PORT: the local stack runs every step service on this machine, and "
                              "each would bind that one port (all but the first then die at each start): unset it "
                              "for `serve` and `demo`")
    _lock(data_dir, probe=True)
    if (problem := unwritable_data(data_dir, "the stack keeps its secrets, log, store and databases there")) is not None:
        raise StackBusy(problem)
    if port is not None and _port_taken(port):
        raise StackBusy(f"port {port} is in use by another program: pass --port with a free one "
                        f"(with make: `make run PORT=N`, `make serve PORT=N`)")
    for name, var in SECRET_NAMES.items():
        if var in given:
            require(name, SecretStr(given[var]))
        previous(name, given.get(PREVIOUS_NAMES[name]))  # the gateway inherits it from this environment
    if (data_dir / SECRETS_FILE).exists() and not all(var in given for var in SECRET_NAMES.values()):
        read_local_secrets(data_dir / SECRETS_FILE)
    if (data_dir / PASSWORDS_FILE).exists():
        read_local_passwords(data_dir / PASSWORDS_FILE)


def unwritable_data(data_dir: Path, kept: str) -> str | None:
    """Why files cannot be made or kept in ``data_dir`` — the folder that stops it (it, or the nearest folder
    above it that exists, when it is not there yet) — in one line ending with what ``kept`` there, or None.
    Seen: ``serve --data`` on a read-only folder said ``Permission denied: <data>/secrets.json.tmp``, a file
    nobody had asked for, exit 1; ``seed --data`` said ``the content database …/content.db cannot be used:
    unable to open database file``."""
    here = data_dir
    while not here.exists() and here.parent != here:
        here = here.parent
    if os.access(here, os.W_OK | os.X_OK):
        return None
    return (f"the data folder {data_dir} cannot be written here ({here} is not writable by this user): pass --data "
            f"with a folder you may write ({kept})")


def gateway_only(env: Mapping[str, str], keys: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(what every service's environment holds, what only the gateway's adds): the signing keys
    (``keys``, the stack's current ones) and the previous keys of a rotation set in ``env`` are the
    gateway's alone — no other service signs or checks with them (a user's ``…_PREVIOUS`` reached
    the catalog, the assembler, the notifier…)."""
    previous_keys = {var: env[var] for var in PREVIOUS_NAMES.values() if env.get(var)}
    shared = {k: v for k, v in env.items() if k not in keys and k not in PREVIOUS_NAMES.values()}
    return shared, {**keys, **previous_keys}


def local_env(data: Path, port: int) -> dict[str, str]:
    """Settings of a local stack kept under ``data`` and served on ``port`` (what the user did not
    set in the environment themselves): links, the store, databases and the outbox all follow."""
    env = {"GROVE_PORT": str(port), "GROVE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "GROVE_MAIL__DOWNLOAD_PAGE_URL": f"http://127.0.0.1:{port}/export",
           # the janitor runs long-running here too, so a local stack cleans up like production
           "GROVE_JANITOR_INTERVAL_S": os.environ.get("GROVE_JANITOR_INTERVAL_S", "300")}
    for key, value in operator.folder_paths(data).items():
        env[key] = os.environ.get(key, value)
    return env | stack_secrets(data, os.environ)


def stack_secrets(data: Path, given: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The signing secrets of a local stack: those set in the environment, else random ones kept in
    ``data/secrets.json`` (where ``grove-export token`` finds them). A set but weak value is not
    replaced here: the gateway refuses it, with a line saying which."""
    if all(var in given for var in SECRET_NAMES.values()):
        return {var: given[var] for var in SECRET_NAMES.values()}
    made = local_secrets(data)
    return {var: given.get(var, made[var]) for var in SECRET_NAMES.values()}


def local_passwords(path: Path) -> dict[str, str]:
    """Random passwords per NATS user for the local stack, kept (0600) beside its data. A damaged
    file is refused (:class:`SecretError`, one line naming it), never replaced."""
    users = read_local_passwords(path) if path.exists() else {}
    if all(u.name in users for u in USERS) and ADMIN in users:
        return users
    # a user added since this folder was made (the canceller) gets a password too; the rest stay
    users = {u.name: secrets.token_urlsafe(18) for u in USERS} | {ADMIN: secrets.token_urlsafe(18)} | users
    write_private(path, json.dumps(users, indent=1))
    return users


class StackFailed(RuntimeError):
    """The local stack did not start (its set-up failed): one line saying why, for ``serve`` and ``demo``."""


def run_setup(env: dict[str, str], log_path: Path, timeout: float = 60.0) -> None:
    """``grove-export setup --nats-only`` (stream, buckets, durables) before any service starts:
    services may only bind to what it created. A failure is :class:`StackFailed` with setup's own last
    line (it was a traceback ending in "see setup.log", the reason only in that file)."""
    with open(log_path, "ab") as log:
        start = log.tell()
        done = subprocess.run([sys.executable, "-m", "services.cli", "setup", "--nats-only"], env=env, stdout=log, stderr=log,
                              timeout=timeout, check=False)
    if done.returncode != 0:
        why = last_line(log_path, start) or f"exit code {done.returncode}"
        raise StackFailed(f"grove-export setup failed: {why} (see {log_path})")


def last_line(log_path: Path, start: int = 0) -> str | None:
    """The last line a process wrote to ``log_path`` from offset ``start`` on (its reason, when it
    refused to run: ``grove-export: `` taken off), or None when it wrote nothing there."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(start, log.seek(0, os.SEEK_END) - 8192))
            lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1].removeprefix("grove-export: ") if lines else None


@dataclass
class Child:
    name: str  # unique in its stack: the service, then "-2", "-3"… for further replicas
    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    service: str = ""  # the service this process runs (a replica's too)
    started: float = 0.0  # time.monotonic() of the last start
    quick_deaths: int = 0  # deaths in a row, each within QUICK_DEATH_S of its start
    due: float | None = None  # found dead: when it is started again
    log_from: int = 0  # where the last start's lines begin in its log
    last_end: str = ""  # how it last ended, with its last line: "exited with code 2: invalid settings: …"
    stopped_why: str = ""  # why the supervisor stopped this start as failing (it counts as a quick death)

    def start(self) -> None:
        self.started = time.monotonic()
        self.stopped_why = ""
        log = open(self.log_path, "ab")
        self.log_from = log.tell()
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log, start_new_session=True,
                                     preexec_fn=die_with_parent())  # even when `serve` is killed with SIGKILL

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


RESTART_LISTEN_S = 15.0  # a restarted nats-server may take as long to listen as a first start (NatsServer's)


def listen_timeout(failures: int, first: float = RESTART_LISTEN_S) -> float:
    """Seconds a restarted nats-server may run without listening on its port before it is stopped and
    started again, after ``failures`` failed starts in a row: ``first``, doubling each time, without a
    cap: a hung one is replaced; one only slow to listen (a big store to recover first) gets longer each
    try — capped at 2 min, a store taking longer to recover was stopped at that mark at every restart."""
    return first * 2 ** min(failures, 20)


@dataclass
class ServerChild(Child):
    """The stack's own nats-server, watched like a service: found dead (SIGKILL, the out-of-memory
    killer) it is started again on its port and store, where the services reconnect. It was left dead:
    `serve` said nothing and went on, every service retrying a server that would never come back and
    the gateway answering 503 until Ctrl-C. A restart that runs but does not listen is stopped after its
    :func:`listen_timeout` and started again like a service failing to start (backoff, a line each
    time): it was said once ("did not start again") and then taken as alive for ever."""
    server: NatsServer | None = None
    listen_s: float = RESTART_LISTEN_S  # :func:`listen_timeout`'s first
    listening: bool = True  # False from a restart until it answers on its port

    def start(self) -> None:
        self.started = time.monotonic()
        self.stopped_why = ""
        assert self.server is not None
        try:
            self.server.start(timeout=1.0)  # most restarts listen within this; the rest: stop_if_hung
            self.listening = True
        except NatsServerError:  # dead again at once: the next round says so; running: not listening yet
            self.listening = False
        finally:
            self.proc = self.server.proc

    def stop_if_hung(self, now: float) -> None:
        """A restart that runs but does not listen on its port: said once it does; stopped (SIGKILL: it
        answers nothing) once its :func:`listen_timeout` has passed, for the next round to start again."""
        if self.listening or self.proc is None or self.server is None:
            return
        try:
            socket.create_connection(("127.0.0.1", self.server.port), timeout=0.2).close()
        except OSError:
            pass
        else:
            self.listening = True
            _say(f"grove-export serve: nats-server (pid {self.proc.pid}) listens on port {self.server.port}, "
                 f"{now - self.started:.0f} s after its start")
            return
        limit = listen_timeout(self.quick_deaths, self.listen_s)
        if now - self.started >= limit:
            self.stopped_why = f"did not listen on port {self.server.port} within {limit:g} s and was stopped"
            self.proc.kill()
            self.proc.wait(5)


def move_to_store_account(store_dir: Path) -> bool:
    """A folder whose server ran before the accounts split keeps the stream and the buckets under the
    global account (``jetstream/$G``); the server now looks for them under ``STORE``. Moved while no
    server runs (the folder's lock is held): the log, the buckets and every durable's position come
    back as they were. A ``STORE`` folder holding no stream yet (a server of this release started on
    the folder before) gives way; one holding streams beside a ``$G`` that does too stops the start
    (:class:`StackFailed`), both left as they are. True when it moved them."""
    old, new = store_dir / "jetstream" / "$G", store_dir / "jetstream" / STORE_ACCOUNT
    if not _holds_streams(old):
        return False
    if _holds_streams(new):
        raise StackFailed(f"both {old} (the log before the accounts split) and {new} hold streams: keep the one "
                          "to use and move the other out of the folder")
    if new.exists():
        shutil.rmtree(new)
    old.rename(new)
    return True


def _holds_streams(account_dir: Path) -> bool:
    streams = account_dir / "streams"
    return streams.is_dir() and any(streams.iterdir())


@dataclass
class Stack:
    """The local stack. ``env`` is passed to every service (GROVE_* settings)."""

    data_dir: Path
    port: int = 8080
    env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = SERVICES
    replicas: dict[str, int] = field(default_factory=default_replicas)
    nats: NatsServer | None = None
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _watch: threading.Thread | None = None
    operator_file: Path | None = None
    _lock_fd: int | None = None
    nats_users: dict[str, str] = field(default_factory=dict)  # a given server's users → passwords (ours: generated)
    _server: ServerChild | None = None  # our own nats-server (none when given a server's URL), restarted like a service

    def start(self, nats_url: str | None = None) -> Stack:
        """Start the services; without ``nats_url``, also a nats-server of our own, locked down with
        one NATS user per service (the same permissions as production, see shared/bus/permissions.py).
        A start that fails part way stops what it started and lets the folder's lock go: the
        children run in sessions of their own, so a nats-server left behind would outlive the
        command that failed."""
        try:
            return self._start(nats_url)
        except BaseException:
            self.stop()
            raise

    def _start(self, nats_url: str | None) -> Stack:
        users: dict[str, str] = dict(self.nats_users)  # each service as its own user, setup as admin
        if nats_url is None:  # a stack of its own in this folder: one at a time, on a free port
            preflight(self.data_dir, self.port if "gateway" in self.services else None, {**os.environ, **self.env})
        self.data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)  # when made here: owner's only
        (self.data_dir / "logs").mkdir(exist_ok=True)
        if nats_url is None:
            self._lock_fd = _lock(self.data_dir)
            users = local_passwords(self.data_dir / PASSWORDS_FILE)
            config = self.data_dir / "nats.conf"
            # the names the services will use: they read them from this environment too (permissions on
            # the defaults alone refused every service of a stack started with GROVE_STREAM_NAME set)
            given, field = {**os.environ, **self.env}, Settings.model_fields
            prefix = given.get("GROVE_SUBJECT_PREFIX", field["subject_prefix"].default)
            kv_prefix = given.get("GROVE_KV_PREFIX", field["kv_prefix"].default)
            stream = given.get("GROVE_STREAM_NAME", field["stream_name"].default)
            write_private(config, render_accounts(users, prefix=prefix, kv_prefix=kv_prefix, stream=stream))
            if move_to_store_account(self.data_dir / "nats"):
                print(f"grove-export serve: moved the log and buckets of {self.data_dir / 'nats'} into the "
                      f"{STORE_ACCOUNT} account (the accounts split)", file=sys.stderr, flush=True)
            self.nats = NatsServer(self.data_dir / "nats", config_file=config,
                                   log_file=self.data_dir / "logs" / "nats.log", with_parent=True)
            self.nats.start()  # assigned first: a server that starts but never answers is stopped too
            self._server = ServerChild("nats-server", [], {}, self.data_dir / "logs" / "nats.log",
                                       proc=self.nats.proc, started=time.monotonic(), server=self.nats)
            nats_url = self.nats.url
            # Operator commands (events, janitor, replay) read this instead of a stale exported URL.
            # With the names too: a new shell without them asked the default stream ("no events").
            names = {"GROVE_SUBJECT_PREFIX": prefix, "GROVE_KV_PREFIX": kv_prefix, "GROVE_STREAM_NAME": stream}
            self.operator_file = operator.write(self.data_dir, nats_url=nats_url, nats_user=ADMIN,
                                                credentials_file=self.data_dir / PASSWORDS_FILE,
                                                env=names | {k: v for k, v in self.env.items()
                                                             if k not in SECRET_NAMES.values()
                                                             and k not in PREVIOUS_NAMES.values()})  # secrets.json has those
        env = {**os.environ, "GROVE_NATS_URL": nats_url, "GROVE_PORT": str(self.port),
               "PYTHONUNBUFFERED": "1", **self.env}
        env, keys = gateway_only(env, stack_secrets(self.data_dir, env))
        admin = {"GROVE_NATS_USER": ADMIN, "GROVE_NATS_PASSWORD": users[ADMIN]} if users else {}
        run_setup({**env, **admin}, self.data_dir / "logs" / "setup.log")
        exe = [sys.executable, "-m", "services.cli", "run"]
        for name in self.services:
            for i in range(self.replicas.get(name, 1)):
                tag = name if i == 0 else f"{name}-{i + 1}"
                own = {"GROVE_NATS_USER": name, "GROVE_NATS_PASSWORD": users[name]} if name in users else {}
                own |= keys if name == "gateway" else {}
                child = Child(tag, [*exe, name], {**env, **own}, self.data_dir / "logs" / f"{tag}.log", service=name)
                self.children.append(child)  # first: a signal between the two must not lose a started child
                child.start()
        self._watch = threading.Thread(target=self._supervise, daemon=True)
        self._watch.start()
        return self

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            for child in [*([self._server] if self._server else []), *self.children]:
                if not child.proc or self._stop.is_set():
                    continue
                try:
                    if child.proc.poll() is None:
                        if isinstance(child, ServerChild):
                            child.stop_if_hung(time.monotonic())  # then found dead in the next round
                        continue
                    self._look_after(child)
                except Exception as e:  # noqa: BLE001 - this thread must outlive any one child's trouble
                    # Its end stopped every child it had started again (their parent-death signal is tied
                    # to the thread that started them), and `serve` went on saying the stack was up.
                    child.last_end = f"could not be started again ({type(e).__name__}: {e})"
                    child.quick_deaths += 1  # retried less and less often, as a child dying at every start
                    delay = max(0.5, restart_delay(child.quick_deaths))
                    child.due = time.monotonic() + delay
                    _say(f"grove-export serve: could not start {child.name} again ({type(e).__name__}: {e}); "
                         f"trying again in {delay:g} s — see {child.log_path}")

    def _look_after(self, child: Child) -> None:
        """A dead ``child``: say so once, and start it again when its delay is over."""
        assert child.proc is not None
        now = time.monotonic()
        if child.due is None:  # just found dead: said every time, an operator's only sign of it
            words = last_line(child.log_path, child.log_from)
            child.last_end = child.stopped_why or how_it_ended(child.proc.returncode) + (f": {words}" if words else "")
            quick = now - child.started < QUICK_DEATH_S or bool(child.stopped_why)  # stopped: it failed to start
            child.quick_deaths = child.quick_deaths + 1 if quick else 0
            delay = restart_delay(child.quick_deaths)
            child.due = now + delay
            ended = f"{child.name} (pid {child.proc.pid}) {child.stopped_why or how_it_ended(child.proc.returncode)}"
            again = (f", {child.quick_deaths} times in a row soon after starting; starting it again in "
                     f"{delay:g} s") if delay else "; starting it again now"
            _say(f"grove-export serve: {ended}{again} — see {child.log_path}")
        if now >= child.due:
            child.due = None
            child.restarts += 1
            child.start()

    def gateway_failing(self) -> str | None:
        """Why the gateway will not come up, in one line (None while it may): dead :data:`GIVE_UP_DEATHS`
        times in a row, each soon after its start — a setting only it refuses, an address it cannot
        listen on — with how it ended and its last line."""
        gateway = next((c for c in self.children if c.service == "gateway"), None)
        if gateway is None or gateway.quick_deaths < GIVE_UP_DEATHS:
            return None
        return (f"the gateway died {gateway.quick_deaths} times in a row soon after starting; it "
                f"{gateway.last_end} (see {gateway.log_path})")

    def wait_gateway(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """:func:`gateway_ready` for this stack's gateway: :class:`StackFailed` as soon as it is
        :meth:`gateway_failing`."""
        return gateway_ready(self.port, timeout, self.gateway_failing)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill one service process (the supervisor restarts it)."""
        child = self.child(name)
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            # a restart it is making now ends before the children are stopped, or that one is missed
            # (its old process already dead) and left running in its own session
            self._watch.join(timeout)
        for child in self.children:
            if child.proc and child.proc.poll() is None:
                child.proc.terminate()
        deadline = time.monotonic() + timeout
        for child in self.children:
            if child.proc:
                try:
                    child.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait(5)
        if self.nats:
            if self.operator_file and self._lock_fd is not None:  # ours only while we hold the folder
                operator.remove(self.data_dir)
            self.nats.stop()
        self.operator_file = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
