"""``grove-export``: run a service, the local stack, the janitor, and the operator's tools.

Every command ends with a one-line message and a non-zero exit on bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TextIO

from pydantic import SecretStr

from services.cliargs import Parser, a_log_level, a_path, a_sha256, an_id, complain, number_in
from shared.content.port import ContentError
from shared.core import steps
from shared.runtime.secrets import SecretError, read_local_secrets
from shared.runtime.settings import Settings, SettingsProblem

STEP_SERVICES = steps.step_services()  # from the step table, like every list of services
SERVICES = steps.service_names()


class CliError(Exception):
    """A one-line message for the user; exit code 2 (the command line is wrong), or ``code`` 1 when
    what it names is not there (no such export, no such snapshot)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# Commands that run a stack of their own; every other command reads the local stack's stack.json.
OWN_STACK = ("run", "serve", "demo")


def no_stack_to_ask(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """Why a command that needs NATS must not run (None when it may): no GROVE_NATS_URL and no local
    stack running in its data folder. Falling back to nats://127.0.0.1:4222 would read, or with
    ``setup`` create the stream and buckets on, whatever server happens to listen there. Also a running
    stack whose admin password cannot be read (a damaged nats-users.json): the server would only say
    it refused the user. ``run`` borrows no stack's server (the local stack and deploy/ set the URL):
    without one it connected a newcomer's service to whatever listened on 4222 (here an old server
    without headers, which every service needs)."""
    if not getattr(args, "needs_nats", False) or any(k.upper() == "GROVE_NATS_URL" for k in environ):
        return None
    if args.command == "run":
        return ("GROVE_NATS_URL is not set: set it to the NATS server this service is to use (as deploy/ does), "
                "or run the whole local stack with `make serve`")
    found = getattr(args, "found", None)
    if found is not None and found.running:
        return found.unreadable  # its NATS password, when this command would have borrowed it
    data = str(getattr(args, "data", "var")).rstrip("/") or "/"
    why = (" (no such folder)" if not Path(data).is_dir()
           else " (its stack.json is left from a stack that is gone)" if found is not None and found.stale
           else f" (its var/ holds one: pass --data {data.rstrip('/')}/var)" if Path(data, "var", "stack.json").is_file()
           else "")  # the clone given for its var/
    return (f"no local stack is running in {data}/{why} and GROVE_NATS_URL is not set: start one with "
            f"`make serve`, pass --data DIR, or set GROVE_NATS_URL")


def _nats_where(settings: Settings, args: argparse.Namespace) -> str:
    """Which server a command asked, and why that one: for messages that must not mislead."""
    found = getattr(args, "found", None)
    if found is not None and found.source is not None and "GROVE_NATS_URL" in found.env:
        gone = "; that stack is no longer running" if found.stale else ""
        return f"{settings.nats_url_shown} (from {found.source}{gone})"
    if "nats_url" in settings.model_fields_set:
        return f"{settings.nats_url_shown} (from GROVE_NATS_URL)"
    data = getattr(args, "data", "var")
    return (f"{settings.nats_url_shown} (the default: no running local stack in {data}/; start one with "
            f"`make serve`, pass --data, or set GROVE_NATS_URL)")


def _app(name: str, settings: Settings):
    if name not in STEP_SERVICES:
        raise CliError(f"unknown service {name!r}; choose one of: {', '.join(SERVICES)}")
    return importlib.import_module(f"services.{name}.main").create_app(settings)


def cmd_run(args: argparse.Namespace, settings: Settings) -> None:
    from shared.runtime import logs, secrets

    secrets.require_settings(settings, signing=args.service == "gateway")  # before it logs or connects

    logs.setup(args.service, args.log_level, settings.log_json)
    from shared.runtime import tracing
    from shared.runtime.alloc import tune_malloc

    tune_malloc()  # before any large buffer exists: see shared/runtime/alloc.py
    tracing.setup(args.service, settings)
    if args.service == "gateway":
        from services.gateway.main import run

        asyncio.run(run(settings))
    elif args.service == "janitor":
        import signal

        from services.janitor.main import run_forever

        # SIGTERM (docker stop, a pod deleted) stops it as Ctrl-C does, exit 0 like every other service,
        # its exit hooks run (the traces' flush); its default killed the process, exit 143. A run cut
        # short mid-way is as safe as a killed one: every act is a fenced append or an idempotent delete.
        previous = stopped_like_ctrl_c()
        try:
            asyncio.run(run_forever(settings))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    else:
        asyncio.run(_app(args.service, settings).run())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from services.devtools.stack.natsserver import NatsServerError
    from services.devtools.stack.supervisor import (
        MAX_ASSEMBLERS,
        READY_TIMEOUT_S,
        Stack,
        StackBusy,
        StackFailed,
        default_replicas,
        local_env,
        preflight,
        stopped_by_signals,
    )
    from shared.runtime import secrets

    if args.assemblers is not None and not 1 <= args.assemblers <= MAX_ASSEMBLERS:
        raise CliError(f"--assemblers must be 1 to {MAX_ASSEMBLERS}, not {args.assemblers}")
    replicas = default_replicas() if args.assemblers is None else {"assembler": args.assemblers}
    data = Path(args.data).resolve()
    with stopped_by_signals():  # SIGTERM or SIGHUP, starting or up: every child is stopped first
        try:
            preflight(data, args.port, os.environ)  # before local_env writes secrets.json: a refusal leaves no trace
            env = local_env(data, args.port)
            secrets.require_signing_env({**os.environ, **env})  # a weak or shared one set: say so, don't loop
            stack = Stack(data, port=args.port, env=env, replicas=replicas).start()
        except StackBusy as e:
            raise CliError(str(e)) from None
        except (StackFailed, NatsServerError) as e:  # stopped again by Stack.start: one line, not a traceback
            raise CliError(f"the local stack did not start: {e}", code=1) from None
        stopped_line = "grove-export: stack stopped"  # none after a failed start: its one line says it all
        try:
            logs = Path(args.data, "logs")
            try:
                ready = stack.wait_gateway()
            except StackFailed as e:  # its gateway dies at every start: nothing to serve, said in one line
                stopped_line = ""
                raise CliError(f"the local stack did not start: {e}", code=1) from None
            up = "up" if ready else (f"started, but its gateway did not answer /readyz within "
                                     f"{READY_TIMEOUT_S:g} s (see {logs / 'gateway.log'})")
            found = stack.operator_file or Path(args.data, "stack.json")
            # without --data a command reads ./var: only a stack in this folder's var/ is found from here
            given = shlex.quote(str(data))  # as a shell takes it: a folder with a space was two arguments
            finds = (f"run from this folder find it through {found} (elsewhere: --data {given})"
                     if data == Path("var").resolve() else f"find it with --data {given} (through {found})")
            print(f"grove-export: local stack {up} — gateway http://127.0.0.1:{args.port}/export, "
                  f"NATS {stack.nats.url if stack.nats else '?'}, logs in {logs}\n"
                  f"  operator commands (events, janitor, replay, …) {finds}; "
                  f"the command is {Path(sys.executable).parent / 'grove-export'}", flush=True)
            while True:  # until a signal: KeyboardInterrupt
                time.sleep(3600)
        finally:
            stack.stop()
            if stopped_line:
                print(stopped_line, flush=True)


async def _tenant_known(settings: Settings, tenant: str, guessed: bool = False) -> str | None:
    """Why the content database cannot vouch for ``tenant`` (None when it knows it, or when there is no
    database to ask). ``guessed``: nothing chose the database (no GROVE_CONTENT_DSN, no running local
    stack), so a missing default SQLite file says nothing about where the content is: the compose
    gateway mints tokens for content in PostgreSQL, which it never reads."""
    from shared.content.factory import content_source, sqlite_path

    path = sqlite_path(settings.content_dsn.get_secret_value())
    where = str(path) if path is not None else "(PostgreSQL)"  # never the DSN: it may hold a password
    if path is not None and not path.is_file():
        return None if guessed else (f"there is no content database at {path}; its exports will be empty (a typo? "
                                     f"`grove-export seed` prints a tenant id)")
    content = content_source(settings)
    try:
        row = await content.tenant(tenant)
    except ContentError as e:  # its own words name the database; the export's catalog would fail on it
        return f"{e}; exports of tenant {tenant!r} fail while it cannot be read"
    finally:
        await content.close()
    return None if row else (f"the content database {where} has no tenant {tenant!r}; its exports will be empty "
                             f"(a typo? `grove-export seed` prints a tenant id)")


def cmd_token(args: argparse.Namespace, settings: Settings) -> None:
    from services.gateway.auth import make_token
    from shared.core.events import is_valid_id

    if not is_valid_id(args.tenant):
        raise CliError(f"tenant id {args.tenant!r} must match [A-Za-z0-9_-]{{1,64}}")
    if args.ttl <= 0:
        raise CliError(f"--ttl must be a positive number of seconds, not {args.ttl}")
    if settings.jwt_secret is None:  # the local stack's own secret, from its data folder
        stored = Path(args.data, "secrets.json")
        if not stored.is_file():
            raise CliError(f"GROVE_JWT_SECRET is not set and there is no local stack in "
                           f"{str(args.data).rstrip('/') or '/'}/: pass --data DIR for a stack started in another "
                           f"folder (the clone's var/), start one with `make serve`, or set GROVE_JWT_SECRET")
        settings = settings.model_copy(update={"jwt_secret": SecretStr(
            read_local_secrets(stored).get("GROVE_JWT_SECRET", ""))})
    try:  # refused inputs (a list of addresses, a lifetime over the cap) first: one line, no warning
        token = make_token(settings, tenant=args.tenant, user=args.user, email=args.email,
                           username=args.username, ttl_s=args.ttl)
    except ValueError as e:
        raise CliError(str(e)) from None
    from shared.core.printable import left_out

    if (note := left_out(args.username)) is not None:  # the token says the name as the gateway takes it
        complain(f"note: --username {args.username!r} {note}")
    # A typo here would give an export that "succeeds" with nothing in it. Warn, but still mint:
    # tests and external tools mint tokens for tenants whose content lives elsewhere.
    found = getattr(args, "found", None)  # the data folder's own paths, with no stack running: a guess
    guessed = "content_dsn" not in settings.model_fields_set or (
        found is not None and found.source is None and "GROVE_CONTENT_DSN" in found.env)
    unknown = asyncio.run(_tenant_known(settings, args.tenant, guessed))
    if unknown:
        complain(f"warning: {unknown}")
    print(token)


async def _events(settings: Settings, export_id: str, where: str, tenant: str | None = None) -> None:
    from services.operator.cli import tenant_of
    from services.operator.inspect import event_line
    from shared.bus.connect import connect

    bus = await connect(settings, "cli", ensure=False, persistent=False)
    try:
        tenant = await tenant_of(bus, settings, export_id, tenant, where)  # the same refusals as `show`'s
        async for seq, event in bus.log.history(tenant, export_id):
            print(event_line(seq, event))  # the same lines as `show`'s
    finally:
        await bus.close()


def cmd_events(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator.cli import OperatorError

    try:
        asyncio.run(_events(settings, args.export_id, _nats_where(settings, args), args.tenant))
    except OperatorError as e:  # the log holds no such export: exit 1, as from `show` and the others
        raise CliError(str(e), code=1) from None


async def _assemble(settings: Settings, key: str, out: Path, placed: list[os.stat_result]) -> None:
    from services.archivetools.reference import assemble_to_file
    from shared.core.snapshot import NotASnapshot
    from shared.objectstore import InvalidKey, ObjectNotFound
    from shared.objectstore.factory import check_fs_store, open_store

    check_fs_store(settings, "nothing was assembled")  # run from another folder, var/store is not the stack's
    store = await open_store(settings)
    try:
        size, sha = await assemble_to_file(store, settings.buckets.exports, key, out, placed)
    except ObjectNotFound:
        raise CliError(f"no snapshot at {key!r} in bucket {settings.buckets.exports!r} (a finished export's "
                       f"snapshot is removed with its other work objects: by the canceller at once, by the janitor "
                       f"once complete, or GROVE_ARCHIVE_TTL_DAYS after it failed)", code=1) from None
    except InvalidKey as e:  # `--snapshot ''`, `a/../b`: the argument's fault, never the store's. It was "the object
        # store failed: unsafe key '' (check GROVE_STORE_ROOT)", exit 1: a setting blamed for a typo
        raise CliError(f"--snapshot {key!r} cannot name an object of the store ({e}): pass the snapshot_key that "
                       f"`grove-export events EXPORT_ID` prints; nothing was assembled", code=2) from None
    except NotASnapshot as e:  # another object of the bucket (the archive, a part record): it was a traceback
        raise CliError(f"the object at {key!r} in bucket {settings.buckets.exports!r} is not a snapshot: {e} "
                       f"(`grove-export events EXPORT_ID` names its snapshot_key); nothing was assembled",
                       code=1) from None
    finally:
        await store.close()
    print(f"{out.resolve()} {size} bytes sha256={sha}")


def cmd_assemble(args: argparse.Namespace, settings: Settings) -> None:
    from services.archivetools.reference import take_back

    out = Path(args.out)
    # Checked before the store is asked: the archive was made first, and then the write of its ".part"
    # failed, naming that file ("No such file or directory: DIR/x.zip.part", exit 1)
    if out.is_dir():
        raise CliError(f"--out {args.out} is a folder: name the archive file to write in it (like "
                       f"{out / 'archive.zip'}); nothing was assembled")
    if out.exists() and not out.is_file():  # /dev/null, a FIFO: the archive was renamed over it (as root,
        # `--out /dev/null` left /dev/null a regular file holding the archive)
        raise CliError(f"--out {args.out} is not a regular file (a device, a pipe): name a new or a regular file; "
                       f"nothing was assembled")
    if not out.parent.is_dir():
        raise CliError(f"--out {args.out}: no such folder {out.parent} (make it first); nothing was assembled")
    placed: list[os.stat_result] = []
    # An interrupt that lands once the archive is at FILE — as the line is printed, or after this has
    # returned to main() — still means the command did not finish: main() takes FILE back, then says so.
    args.on_interrupt.append(lambda: take_back(out, placed))
    asyncio.run(_assemble(settings, args.snapshot, out, placed))


async def _replay(settings: Settings) -> None:
    import sqlite3

    from services.gateway import replay
    from shared.bus.connect import connect

    path = Path(settings.read_model_db)
    if path.is_dir():  # checked first: it was rebuilt beside it, then "Is a directory: <path>.replay-…"
        raise CliError(f"the read model {path} (GROVE_READ_MODEL_DB) is a folder, not a file: nothing was replayed")
    if path.exists() and not path.is_file():  # the rebuilt file was renamed over it: /dev/null, as root
        raise CliError(f"the read model {path} (GROVE_READ_MODEL_DB) is not a regular file (a device, a pipe): "
                       f"nothing was replayed")
    if not path.parent.exists():  # run from another folder than the stack's: var/ made there, every address in it
        raise CliError(f"the read model's folder {path.parent.resolve()} does not exist (GROVE_READ_MODEL_DB {path}): "
                       f"nothing was replayed; run it in the local stack's folder or pass --data DIR, or set "
                       f"GROVE_READ_MODEL_DB to the gateway's read model (for a new one, make its folder first)", code=1)
    bus = await connect(settings, "cli", ensure=False, persistent=False)
    try:
        started = time.monotonic()
        rows = await replay(settings, bus)
    except sqlite3.Error as e:  # a folder that cannot hold it, a full disk: it was a traceback
        raise CliError(f"the read model {path} (GROVE_READ_MODEL_DB) cannot be written: {e}; nothing was "
                       f"replayed", code=1) from None
    finally:
        await bus.close()
    print(f"read model {settings.read_model_db}: {rows} exports rebuilt from the log in "
          f"{time.monotonic() - started:.1f}s")


def cmd_replay(args: argparse.Namespace, settings: Settings) -> None:
    found = getattr(args, "found", None)
    if found is not None and found.running and "GROVE_READ_MODEL_DB" in found.env:
        # A running gateway keeps the file it opened: the rebuilt one would not be served (and the swap
        # deletes the live file's -wal and -shm). Rebuilding into a file of one's own choosing is fine.
        raise CliError(f"the local stack in {found.source.parent} is running, and its gateway keeps reading the "
                       f"read model {settings.read_model_db} it opened: a rebuilt one would not be served. Stop the "
                       f"stack (Ctrl-C where `make serve` runs), delete {settings.read_model_db} (and its -wal and "
                       f"-shm, when there) and start it again: its gateway rebuilds a missing read model from the log "
                       f"as it starts (replay needs the stack's NATS, so it cannot run once the stack is stopped); or "
                       f"set GROVE_READ_MODEL_DB to rebuild into another file", code=1)
    asyncio.run(_replay(settings))


async def _setup_nats(settings: Settings) -> None:
    """The admin step: the stream, the KV buckets and every durable of the step table (idempotent)."""
    import nats.errors

    from shared.bus import topology
    from shared.bus.connect import open_nats

    # unreachable, or no JetStream there within the wait (shared/bus/ready.py): main() says so, like every command
    nc = await open_nats(settings, "setup", persistent=False)
    try:
        for line in await topology.ensure(nc.jetstream(timeout=10), settings):
            print(line)
    except nats.errors.Error as e:
        raise CliError(f"NATS set-up failed (run it as the admin user): {e or type(e).__name__}") from None
    finally:
        await nc.close()


NO_LIFECYCLE_HINT = ("run setup with --no-lifecycle on a store that purges stale multipart uploads itself "
                     "(MinIO does, after 24 h) and leave the rest to the janitor")


async def _setup(settings: Settings, days: int | None, nats_only: bool = False) -> None:
    """``days`` None: no lifecycle rule (--no-lifecycle)."""
    from shared.objectstore import StoreError
    from shared.objectstore.factory import open_store

    await _setup_nats(settings)
    if nats_only:
        return
    store = await open_store(settings, create_buckets=True)
    try:
        if settings.store != "s3":
            print(f"filesystem store at {settings.store_root}: nothing to set up (the janitor aborts "
                  f"orphan uploads)")
            return
        if days is None:
            print(f"bucket {settings.buckets.exports}: no lifecycle rule (--no-lifecycle): the store must purge "
                  "stale multipart uploads itself; the janitor aborts the orphans it can list")
            return
        from shared.objectstore.s3 import S3Store, apply_lifecycle, kept_abort_rule

        assert isinstance(store, S3Store)
        try:
            rules = await apply_lifecycle(store, settings.buckets.exports, days)
        except StoreError as e:  # MinIO before 2024 answers MalformedXML; others NotImplemented
            raise CliError(f"the object store refused the lifecycle rule on bucket {settings.buckets.exports} "
                           f"({e}): {NO_LIFECYCLE_HINT}") from None
    finally:
        await store.close()
    rule = kept_abort_rule(rules, days)
    if rule is None:  # accepted, yet not kept as sent (MinIO since 2024 drops the rule's abort field)
        raise CliError(f"the object store accepted the lifecycle rule on bucket {settings.buckets.exports} but did "
                       f"not keep its AbortIncompleteMultipartUpload after {days} days (it read back as "
                       f"{json.dumps(rules['Rules'])}): {NO_LIFECYCLE_HINT}")
    print(f"bucket {settings.buckets.exports}: rule {rule.get('ID')} "
          f"AbortIncompleteMultipartUpload after {days} days ({rule.get('Status')})")


def cmd_setup(args: argparse.Namespace, settings: Settings) -> None:
    from shared.runtime import secrets

    secrets.require_settings(settings)
    asyncio.run(_setup(settings, None if args.no_lifecycle else args.days, args.nats_only))


def cmd_janitor(args: argparse.Namespace, settings: Settings) -> None:
    from services.janitor.main import run_once
    from shared.runtime import secrets

    secrets.require_settings(settings)
    summary = asyncio.run(run_once(settings, dry_run=args.dry_run))
    if summary.stopped:  # the store did not answer: exit 1, so cron's mail (or the CronJob's status) shows it
        raise CliError(f"janitor: {summary.stopped}", code=1)
    if summary.left:  # the rest was done; cron's mail (or the CronJob's status) shows this run was not clean
        raise CliError(f"janitor: {summary.left} left for the next run after an error (the log says which and "
                       f"why)", code=1)


def cmd_seed(args: argparse.Namespace, settings: Settings) -> None:
    from services.devtools.demo import seed_cli

    width, _, height = args.image_size.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and 16 <= int(width) <= 8000 and 16 <= int(height) <= 8000):
        raise CliError(f"--image-size must be WIDTHxHEIGHT in pixels, 16 to 8000 each (like 1600x1200), "
                       f"not {args.image_size!r}")
    for name in ("posts", "images", "files"):
        if getattr(args, name) < 0:
            raise CliError(f"--{name} must be 0 or more, not {getattr(args, name)}")
    from shared.core.printable import USERNAME_RULE, name_refusal, username_problem

    if (problem := username_problem(args.username)) is not None:  # what `token --username` refuses, in its words
        raise CliError(name_refusal("--username", args.username, problem, USERNAME_RULE))
    found = getattr(args, "found", None)
    # no stack, and the folder (not the environment) chose where its database or stored files go
    if found is not None and found.source is None and ("GROVE_CONTENT_DSN" in found.env or (
            "GROVE_STORE_ROOT" in found.env and settings.store == "fs")):
        from services.devtools.stack.supervisor import unwritable_data

        if (problem := unwritable_data(Path(args.data), "seed puts the content database and the store's files "
                                                         "there")) is not None:
            raise CliError(problem)
    from shared.core.printable import left_out, shown_name

    if (note := left_out(args.username)) is not None:  # seeded as the gateway would take it in a token
        complain(f"note: --username {args.username!r} {note}")
    asyncio.run(seed_cli(settings, posts=args.posts, pages=args.pages, images=args.images, files=args.files,
                         image_size=(int(width), int(height)), username=shown_name(args.username)))
    # no stack, and the folder (not the environment: a deployment's seed job) chose the database
    if found is not None and found.source is None and "GROVE_CONTENT_DSN" in found.env:  # stdout: the id alone
        complain(f"no local stack is running in {args.data}/; seeded its folder anyway (a stack started there "
                 f"sees it; for a stack running elsewhere, run this in its folder or pass --data)")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from services.devtools.demo import run_demo

    sys.exit(run_demo(Path(args.data), args.port))


def _archive_file(archive: str) -> None:
    """ARCHIVE is a file that can be read (checked for ``verify`` and ``import``) or one line says what it is."""
    path = Path(archive)
    if path.is_dir():
        raise CliError(f"{archive} is a folder, not an archive file")
    if path.exists() and not path.is_file():  # /dev/null, a FIFO, `<(curl …)`: it said "no such file"
        raise CliError(f"{archive} is not a regular file (a device, a pipe): save the archive to a file first")
    if not path.is_file():
        raise CliError(f"no such file: {archive}")


def cmd_verify(args: argparse.Namespace, settings: Settings) -> None:
    from services.archivetools.verify import verify_archive

    if len(args.archive) > 1:  # the email's `grove-export verify grove-export-*.zip` where two archives are
        listed = ", ".join(repr(a) for a in args.archive)
        raise CliError(f"verify checks one archive, and {len(args.archive)} were given ({listed}; a wildcard such as "
                       f"grove-export-*.zip matched several?): name the one the SHA-256 is for")
    archive = args.archive[0]
    _archive_file(archive)
    report = verify_archive(Path(archive), args.sha256)
    print(report.text())
    sys.exit(0 if report.ok else 1)


def cmd_import(args: argparse.Namespace, settings: Settings) -> None:
    from services.archivetools.importer import ImportRefused, import_archive
    from shared.content.factory import content_source
    from shared.core.printable import printable
    from shared.objectstore.factory import open_store

    _archive_file(args.archive)
    from shared.content.factory import sqlite_path

    db = sqlite_path(settings.content_dsn.get_secret_value())
    if db is not None and not db.parent.is_dir():  # run outside the stack's folder: var/ is not there
        raise CliError(f"the content database {db} cannot be made: its folder {db.parent} does not exist "
                       f"(GROVE_CONTENT_DSN; for a local stack, run in its folder or pass --data DIR): nothing "
                       f"was imported")

    async def go() -> str:
        store, content = await open_store(settings), content_source(settings)
        try:
            plan = await import_archive(Path(args.archive), args.tenant, content, store,
                                        url_template=settings.media_url_template,
                                        images_bucket=settings.buckets.images, amber_bucket=settings.buckets.amber)
        finally:
            await store.close()
            await content.close()
        # a note names an id the archive chose: its control and bidi characters are escapes
        return "\n".join(printable(line) for line in [*plan.notes, f"{plan.summary()} into tenant {args.tenant}"])

    try:
        print(asyncio.run(go()))
    except ImportRefused as e:
        raise CliError(f"import refused: {e}") from None


DATA_HELP = ("the local stack's data folder (default: var); its stack.json supplies the NATS URL, user, "
             "password and paths that the environment (GROVE_*) does not set")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="grove-export", description="Grove Export: durable streaming ZIP exports.")
    p.add_argument("--data", type=a_path("folder"), dest="data_before", metavar="DIR",
                   help="the local stack's data folder, as the command's own --data (either place works)")
    from shared import __version__

    p.add_argument("--version", action="version", version=f"grove-export {__version__}",
                   help="print the version an archive's README names as its maker (\"Made by\"), and exit")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run one service in the foreground, as its container does")
    r.add_argument("service", choices=SERVICES, help="the service to run")
    r.add_argument("--log-level", type=a_log_level, default="INFO", metavar="LEVEL",
                   help="DEBUG, INFO, WARNING, ERROR or CRITICAL, in any case (default: INFO)")
    r.set_defaults(func=cmd_run, needs_nats=True)
    s = sub.add_parser("serve", help="the whole local stack until Ctrl-C")
    s.add_argument("--port", type=number_in(1, 65535), default=8080,
                   help="TCP port of the gateway and page (default: 8080)")
    s.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR",
                   help="folder for the stack's store, databases, logs and outbox "
                   "(default: var)")
    s.add_argument("--assemblers", type=int, metavar="N",
                   help="assembler processes (default: 2 on two or more cores, else 1)")
    s.set_defaults(func=cmd_serve)
    t = sub.add_parser("token", help="print a bearer token signed with this stack's secret")
    t.add_argument("--tenant", required=True, help="tenant id whose content is exported (from `grove-export seed`)")
    t.add_argument("--user", required=True, help="user id of the requester (the token's sub claim)")
    t.add_argument("--email", required=True, help="where the export-ready email goes")
    t.add_argument("--username", required=True, help="name shown on the page and in the archive's file name")
    t.add_argument("--ttl", type=number_in(1), default=3600, metavar="SECONDS",
                   help="how long the token is valid, in seconds (default: 3600 = 1 hour; at most "
                        "GROVE_TOKEN_MAX_TTL_S)")
    t.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP + " (its secrets.json signs the token)")
    t.set_defaults(func=cmd_token)
    e = sub.add_parser("events", help="one export's log, one line per event")
    e.add_argument("export_id", type=an_id, metavar="EXPORT_ID",
                   help="the export's id (exp_…), as POST /api/export answered")
    e.add_argument("--tenant", type=an_id, help="whose export it is, when two tenants use the same export id")
    e.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    e.set_defaults(func=cmd_events, needs_nats=True)
    a = sub.add_parser("assemble", help="assemble a frozen snapshot to a local file (no bus)")
    a.add_argument("--snapshot", required=True, help="snapshot key in the exports bucket")
    a.add_argument("--out", type=a_path("file"), required=True, help="the ZIP file to write")
    a.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    a.set_defaults(func=cmd_assemble)
    rp = sub.add_parser("replay", help="rebuild the gateway read model from the log")
    rp.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    rp.set_defaults(func=cmd_replay, needs_nats=True)
    j = sub.add_parser("janitor", help="one janitor run (cron: 0 3 * * *)")
    j.add_argument("--dry-run", action="store_true", help="list every item it would touch; change nothing")
    j.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    j.set_defaults(func=cmd_janitor, needs_nats=True)
    su = sub.add_parser("setup", help="as the NATS admin: create the stream, KV buckets and durables; create "
                                      "the store's buckets and apply the S3 lifecycle rule (abort stale uploads)")
    su.add_argument("--days", type=number_in(1), default=2,
                    help="abort incomplete multipart uploads this many days after they began (default: 2)")
    su.add_argument("--no-lifecycle", action="store_true",
                    help="no S3 lifecycle rule: for a store that purges stale multipart uploads itself (MinIO) "
                         "or whose rules an administrator manages")
    su.add_argument("--nats-only", action="store_true",
                    help="only the stream, KV buckets and durables (what serve runs at start)")
    su.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    su.set_defaults(func=cmd_setup, needs_nats=True)
    sd = sub.add_parser("seed", help="create a demo tenant with content; prints its id")
    sd.add_argument("--posts", type=number_in(0, 100_000), default=12,
                    help="blog posts, with front matter and tags, 0-100000 (default: 12)")
    sd.add_argument("--pages", type=int, default=3, choices=range(6), metavar="0-5",
                    help="pages: about, contact, now, uses, colophon (default: 3)")
    sd.add_argument("--images", type=number_in(0, 10_000), default=8,
                    help="images in the media library, real JPEG/PNG files, 0-10000 (default: 8)")
    sd.add_argument("--image-size", default="640x480", metavar="WxH",
                    help="pixels of each image; at 640x480 a JPEG is about 250 KB, at 1600x1200 about 1.6 MB "
                         "and a quarter of a second to make (every fifth image is a PNG, about 3.5 times that size; "
                         "default: 640x480)")
    sd.add_argument("--files", type=number_in(0, 10_000), default=6,
                    help="Amber storage files, for storage-mode exports, 0-10000 (default: 6)")
    sd.add_argument("--username", default="autumn", help="the tenant's username (default: autumn)")
    sd.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    sd.set_defaults(func=cmd_seed)
    v = sub.add_parser("verify", help="check an archive: ZIP, every checksum, every linked image; exit 0 if sound",
                       usage="grove-export verify [-h] [--sha256 HEX] ARCHIVE")
    v.add_argument("archive", type=a_path("file"), metavar="ARCHIVE", nargs="+",  # one: more are refused, saying so
                   help="the ZIP file to check")
    v.add_argument("--sha256", type=a_sha256, metavar="HEX",
                   help="the archive's SHA-256 from the email or the export page (64 hex digits)")
    v.set_defaults(func=cmd_verify)
    im = sub.add_parser("import", help="restore an archive into an empty tenant (content DB and object store)")
    im.add_argument("archive", type=a_path("file"), metavar="ARCHIVE", help="a Grove Export ZIP (it must verify)")
    im.add_argument("--tenant", required=True, type=an_id, help="the tenant to restore into; it must have no content")
    im.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=DATA_HELP)
    im.set_defaults(func=cmd_import)
    d = sub.add_parser("demo", help="what `make run` does: stack, seed, export, verify, print the ZIP path")
    d.add_argument("--port", type=number_in(1, 65535), default=8080, help="TCP port of the gateway (default: 8080)")
    d.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR",
                   help="folder for the stack's store, databases, logs, outbox and "
                   "downloads (default: var)")
    d.set_defaults(func=cmd_demo)
    from services.operator.cli import add_commands

    add_commands(sub, DATA_HELP)  # exports, show, cancel, retry, resend, unlock, erase-tenant, backup, restore
    return p


def data_before_command(args: argparse.Namespace) -> str | None:
    """``grove-export --data DIR seed`` means ``grove-export seed --data DIR``; what is wrong, if anything."""
    if args.data_before is None:
        return None
    if not hasattr(args, "data"):
        return f"{args.command} takes no --data"
    # `--data var` typed after the command is a folder like any other, not the default giving way (the
    # command's own --data is in _given_once only when typed: cliargs._Once)
    typed = "data" in getattr(args, "_given_once", {})
    if args.data != args.data_before and (typed or args.data != "var"):
        return f"two data folders given: --data {args.data_before} and --data {args.data}"
    args.data = args.data_before
    return None


def data_not_a_folder(args: argparse.Namespace) -> str | None:
    """A data folder that is a file, refused first in one line: `seed --data /dev/null` said "File exists:
    /dev/null", `serve --data FILE` "Not a directory: FILE/stack.lock" (each exit 1)."""
    data = getattr(args, "data", None)
    if data is None:
        return None
    path = Path(data)
    try:
        existing = next((p for p in (path, *path.parents) if p.exists()), None)  # `--data FILE/sub`: FILE
        if existing is None or existing.is_dir():
            return None
    except OSError:  # a name too long, a folder it may not look in: not known to be a file, left to the command
        return None
    what = "is a file" if existing == path else f"cannot be made: {existing} is a file"
    return (f"--data {data} {what}, not a folder (the local stack's data folder: its store, databases, outbox and "
            f"stack.json)")


UNTIL_CTRL_C = frozenset({"run", "serve"})  # commands that run until stopped
OWN_SIGNALS = frozenset({"run", "serve", "demo"})  # stopped by SIGTERM and SIGHUP in their own way


def stopped_like_ctrl_c() -> dict[int, Any]:
    """SIGTERM (``timeout``, systemd, a Job deleted) and SIGHUP (the ssh session or terminal closed)
    end every other command as Ctrl-C does: through SIGINT's handler, which inside ``asyncio.run``
    cancels the command's task, so its clean-up runs (a backup removes its files, a restore deletes
    the streams it made, an import the objects it put) and it ends with the interrupted line, exit
    130. Their default ended the process at once: a restore left half restored, a backup's files
    refused by the same command. The first one counts; those after it are ignored. Where SIGINT is
    ignored (a background job of a script: ``grove-export backup DIR &``), asyncio has no handler on
    it and the signal raises KeyboardInterrupt where the command is, as ``stopped_by_signals`` does."""
    import signal

    def interrupt(signum: int, _frame: object) -> None:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
            raise KeyboardInterrupt(signal.Signals(signum).name)
        signal.raise_signal(signal.SIGINT)

    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, interrupt)
    return previous  # the handlers before, for main() to put back


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if problem := data_before_command(args) or data_not_a_folder(args):
        complain(problem)
        sys.exit(2)
    found = None
    if args.command not in OWN_STACK:
        from services.devtools.stack import operator

        # This process is the composition root: what the local stack wrote fills in what the
        # environment leaves unsaid, before the one Settings() read.
        found = args.found = operator.find(Path(getattr(args, "data", "var")), os.environ)  # var/ unless --data
    if problem := no_stack_to_ask(args, os.environ):  # before the found URL joins the environment
        complain(problem)
        sys.exit(2)
    if found is not None:
        os.environ.update(found.env)
    try:
        settings = Settings()
    except Exception as e:  # noqa: BLE001 - pydantic's errors, or pydantic-settings' own: one line
        from shared.runtime.settings import explain

        complain(f"invalid settings: {explain(e)}")
        sys.exit(2)
    from shared.runtime.settings import unknown_variables

    for line in unknown_variables(os.environ):  # ignored by Settings(): a typo would run on the default
        complain(f"warning: {line}")
    args.nats_where = _nats_where(settings, args)  # for messages naming the server asked (`show`, `events`, …)
    # restored when the command returns: main() is also called in-process (tests), whose own
    # process keeps its handlers
    previous: dict[int, Any] = stopped_like_ctrl_c() if args.command not in OWN_SIGNALS else {}
    args.on_interrupt = []  # undos of what the command put in place, for an interrupt however late it lands
    stdout = sys.stdout
    if args.command not in UNTIL_CTRL_C:  # a service's output is its log's, handled by logging
        sys.stdout = _Output(stdout)  # type: ignore[assignment]
    try:
        try:
            _run_flushed(args, settings)
        except OutputFailed as e:  # before OSError below: it is the output, not NATS or the store
            _output_failed(args, stdout, e)
        except KeyboardInterrupt:
            if args.command in UNTIL_CTRL_C:
                return  # how a service in the foreground is stopped: it did what it was asked
            interrupted(args)
        except (CliError, SecretError) as e:  # a refusal may name what the log or an archive holds: escaped
            from shared.core.printable import printable

            print(printable(f"grove-export: {e}"), file=sys.stderr)
            sys.exit(e.code if isinstance(e, CliError) else 2)
        except SettingsProblem as e:  # a setting that cannot work where it is used: like an invalid one
            complain(f"invalid settings: {e}")
            sys.exit(2)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except ContentError as e:  # the content database: its own one line (it names no NATS or store)
            from shared.core.printable import printable

            # it may quote a value an imported archive chose (a unique violation's key): escaped
            print(printable(f"grove-export: {e}"), file=sys.stderr)
            sys.exit(1)
        except Exception as e:  # noqa: BLE001 - infrastructure errors: one line, not a traceback
            from nats.errors import Error as NatsError

            from shared.bus.connect import NatsUnreachable
            from shared.bus.topology import BucketMissing, TopologyMissing

            if isinstance(e, NatsUnreachable):  # the same line, and exit 2, from every command
                complain(f"cannot reach NATS at {_nats_where(settings, args)}: {e.reason}")
                sys.exit(2)
            from shared.objectstore import StoreError

            if isinstance(e, BucketMissing) and e.stream_messages is not None:
                # the stream is there: Grove is set up on this server, and "not set up there … restore
                # first" sent the operator to a restore that refuses the existing stream
                n = e.stream_messages
                complain(f"KV bucket {e.bucket} does not exist on NATS {_nats_where(settings, args)}, though Grove's "
                         f"stream {settings.stream_name} does ({n} message{'' if n == 1 else 's'}): part of the "
                         "set-up there is missing. `grove-export setup` makes what is missing again and keeps the "
                         "stream (after a restore that stopped part-way, run `grove-export restore --replace DIR` "
                         "again instead)")
                sys.exit(1)
            if isinstance(e, BucketMissing):
                # "run setup first" alone misled twice: on another server (a mistyped URL) it sets Grove
                # up there, and on a new server awaiting a restore it makes the streams restore refuses
                complain(f"KV bucket {e.bucket} does not exist on NATS {_nats_where(settings, args)}: Grove is "
                         f"not set up there (stream {settings.stream_name}). The wrong server? A new one: "
                         f"`grove-export setup` sets it up — but to restore a backup into it, run `grove-export "
                         f"restore DIR` first (setup makes the streams empty, and restore then refuses them)")
                sys.exit(1)
            if isinstance(e, TopologyMissing):  # with the server asked and why that one: maybe not ours at all
                complain(f"{e} (NATS {_nats_where(settings, args)})")
                sys.exit(1)
            if not isinstance(e, NatsError | StoreError | OSError | TimeoutError):
                raise
            from shared.core.printable import printable

            data = getattr(args, "data", None)
            if isinstance(e, OSError) and e.filename is not None and data is not None and \
                    (named := os.path.abspath(os.fsdecode(e.filename))) in _folders_made_for(data):
                # making the data folder failed: "No such file or directory: /proc/x" read as "pass one that exists";
                # a folder above it made on the way (`--data /proc/x/y`) named only that one
                on_the_way = "" if named == os.path.abspath(data) else f" (making {os.fsdecode(e.filename)})"
                print(printable(f"grove-export: cannot make the data folder {data} (--data): {e.strerror or e}"
                                f"{on_the_way}"), file=sys.stderr)
                sys.exit(1)
            # an OSError's file name can be an object key an archive chose (import): escaped, as a member name is
            line = _hint(e, settings, _nats_where(settings, args), getattr(args, "service", None), args.command)
            print(printable(f"grove-export: {line}"), file=sys.stderr)
            sys.exit(1)
    finally:
        sys.stdout = stdout
        import signal

        try:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        except KeyboardInterrupt:  # landed as the command returned: it did not finish all the same
            if args.command not in UNTIL_CTRL_C:
                interrupted(args)


def _folders_made_for(data: str) -> set[str]:
    """The --data folder and each folder above it that is not there: what making it makes (as absolute paths)."""
    made, path = set(), os.path.abspath(data)
    while True:
        made.add(path)
        parent = os.path.dirname(path)
        if parent == path or os.path.isdir(parent):
            return made
        path = parent


def _run_flushed(args: argparse.Namespace, settings: Any) -> None:
    """The command, then its output flushed while a failed write is still :class:`OutputFailed`
    (stdout to a file is block-buffered: a short output meets a full disk only at this flush, or, left
    to the interpreter, after main() — "Exception ignored … OSError", exit 120, assemble's FILE kept)."""
    try:
        args.func(args, settings)
    except SystemExit:  # verify, show and others end by exiting: their output too
        sys.stdout.flush()
        raise
    sys.stdout.flush()


class OutputFailed(OSError):
    """Writing the command's output failed (a full disk under `> FILE`, a terminal gone): said as that.
    It was taken for a server's failure: `grove-export verify A.zip > /dev/full` said "NATS at … failed:
    No space left on device"."""


class _Output:
    """``sys.stdout`` while a command runs: an OSError its writes meet is :class:`OutputFailed`
    (a reader gone away, BrokenPipeError, stays as it is: main() ends quietly on it)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputFailed(e.errno, e.strerror) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputFailed(e.errno, e.strerror) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _output_failed(args: argparse.Namespace, stdout: TextIO, e: OutputFailed) -> NoReturn:
    """The output could not be written: what the command put in place is taken back (its report is
    lost: `assemble`'s archive with its SHA-256 line), one line on stderr, exit 1."""
    for undo in reversed(args.on_interrupt):
        try:
            undo()
        except Exception:  # noqa: BLE001 - the failed output is the one line said; exit 1 says it failed
            pass
    _to_devnull(stdout)  # what it still buffers would fail again at exit (exit 120)
    try:
        print(f"grove-export: could not write the output of {args.command}: {e.strerror or e}",
              file=sys.stderr)
    except OSError:
        _to_devnull(sys.stderr)
    sys.exit(1)


def interrupted(args: argparse.Namespace) -> NoReturn:
    """A command other than ``run`` and ``serve`` cut short: what it had put in place is taken back
    (``args.on_interrupt``), and it did not finish — `import … && next-step` must not go on (exit
    130: 128 + SIGINT)."""
    lines = []
    for undo in reversed(args.on_interrupt):
        try:
            undo()
        except Exception as e:  # noqa: BLE001 - it was a traceback instead of the line and 130: say what is left
            from shared.core.printable import printable

            reason = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror and e.filename else \
                (str(e) or type(e).__name__)
            lines.append((sys.stderr, printable(f"grove-export: could not take back what {args.command} had put in "
                                                f"place: {reason}")))
    lines += [(sys.stderr, f"grove-export: interrupted; {args.command} did not finish"), (sys.stdout, "")]
    for stream, line in lines:
        try:
            if line:
                print(line, file=stream)
            stream.flush()
        except OSError:  # the terminal is gone (SIGHUP: writes fail with EIO): the undo is done, and 130 says so
            _to_devnull(stream)
    sys.exit(130)


def _to_devnull(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null: what it still buffers is flushed there at exit,
    which would fail again (EIO) and end the process with 120 instead of the code it chose."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # no file descriptor (or closed): nothing is flushed to one at exit
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _hint(e: Exception, settings: Settings, nats_where: str, service: str | None = None,
          command: str | None = None) -> str:
    """One line naming what did not work: the object store, NATS or this machine, never one for another.
    ``service`` (``run SERVICE``): the one port it binds, the gateway's GROVE_PORT or a step service's
    metrics port; ``command``: what was running when this machine's own work failed."""
    from shared.objectstore import StoreError, StoreRefused, StoreUnavailable
    from shared.objectstore.port import StoreNotThere

    if isinstance(e, StoreNotThere):  # names the folder and the setting itself
        return str(e)
    where = "GROVE_STORE_ROOT" if settings.store == "fs" else "GROVE_S3__ENDPOINT_URL and the S3 credentials"
    if isinstance(e, StoreRefused):
        return f"the object store refused: {e.reason} (check {where})"
    if isinstance(e, StoreUnavailable):
        return f"the object store did not answer: {e} (check {where})"
    if isinstance(e, StoreError):
        return f"the object store failed: {e} (check {where})"
    if isinstance(e, OSError) and e.filename is not None:  # a file or folder of ours, not a server
        return f"{e.strerror or e}: {e.filename}"
    if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:  # the gateway's or metrics' port, not NATS
        gateway = [f"{settings.port} (GROVE_PORT)"] if service in (None, "gateway") else []
        metrics = [f"{settings.metrics_port} (GROVE_METRICS_PORT)"] if settings.metrics_port and service != "gateway" \
            else []
        ports = gateway + metrics or [f"{settings.port} (GROVE_PORT)"]
        return f"{e.strerror or e}: port {' or '.join(ports)} is taken by another program"
    if _from_nats(e) or not isinstance(e, OSError):
        from shared.bus.connect import unreachable_reason

        return f"NATS at {nats_where} failed: {unreachable_reason(e, settings.nats_user)}"
    if e.errno in LOCAL_WRITE_ERRORS:  # a file of this machine's, never the server's
        return (f"{e.strerror or e}: a file on this machine could not be written (a full disk, a quota or a "
                f"read-only folder), not a failure of NATS")
    code = f" ({errno.errorcode[e.errno]})" if e.errno is not None and e.errno in errno.errorcode else ""
    return (f"{command or 'the command'} failed on this machine: a local file or device could not be read or "
            f"written: {e.strerror or e}{code}, not a failure of NATS")


def _from_nats(e: Exception) -> bool:
    """Whether ``e`` came from talking to NATS: nats-py's own errors, a wait for the bus that ran out, or a
    socket's (the bus is the one peer whose socket errors reach here: connecting wraps them in
    NatsUnreachable, the store and the content database wrap theirs). Any other OSError is this machine's:
    EIO or EINVAL reading an archive said "NATS at … failed: Invalid argument" for `verify`, which asks no NATS."""
    from nats.errors import Error as NatsError

    return isinstance(e, NatsError | TimeoutError | ConnectionError)


# A write of this machine failed (the backup's files, the filesystem store's, the output): `backup DIR`
# and `import` on a full disk said "NATS at … failed: No space left on device" / "File too large".
LOCAL_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


if __name__ == "__main__":
    main()
