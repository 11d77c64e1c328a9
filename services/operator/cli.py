"""The operator's subcommands of ``grove-export``: exports, show, cancel, retry, resend, unlock,
erase-tenant, backup, restore. Each prints what it did (or what it would do) and ends non-zero with
one line on stderr when the log says no.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from services.cliargs import a_path, an_age, an_id, number_in
from shared.core.events import is_valid_id
from shared.core.humanize import human_size
from shared.core.lifecycle import STATUSES
from shared.core.printable import printable
from shared.runtime.settings import Settings

if TYPE_CHECKING:  # the commands import what they use when they run: `grove-export --help` stays quick
    from services.operator import actions, inspect
    from shared.bus.connect import Bus
    from shared.objectstore import ObjectStore

STEPS = ("catalog", "assemble", "finalize", "notify", "cancel", "janitor")


def say(*lines: str, file: TextIO | None = None, flush: bool = False) -> None:
    """Print each line with its control and bidi characters as escapes (``\\x1b``, ``\\u202e``): the
    lines carry text from outside — a username or email that whoever published the ExportRequested
    chose, a failure's reason quoting it, tenant ids read from stream subjects — and ESC [2J would
    clear the operator's terminal, ESC ]0;… retitle it, U+202E reverse the line, a line break forge
    a line. Every line these commands print goes through here except ``--json``'s (JSON escapes its
    own control characters). A character the terminal's encoding cannot hold (a name in Japanese on
    a Latin-1 terminal) is its escape too: print() raised UnicodeEncodeError, a traceback."""
    encoding = getattr(file or sys.stdout, "encoding", None) or "utf-8"
    for line in lines:
        print(printable(line).encode(encoding, "backslashreplace").decode(encoding), file=file, flush=flush)


class OperatorError(Exception):
    """The log says no (no such export, a refusal): one line on stderr, exit 1. A bad argument is
    argparse's (``services.cliargs``): exit 2."""

    code = 1


class UsageError(OperatorError):
    """Arguments that argparse accepts one by one but not together: exit 2, like any bad command line."""

    code = 2


@contextlib.asynccontextmanager
async def _open(settings: Settings, store: bool = False) -> AsyncIterator[tuple[Bus, ObjectStore | None]]:
    from shared.bus.connect import connect
    from shared.objectstore.factory import open_store

    bus = await connect(settings, "operator", ensure=False, persistent=False)
    st = await open_store(settings) if store else None
    try:
        yield bus, st
    finally:
        if st is not None:
            await st.close()
        await bus.close()


def _who(args: argparse.Namespace) -> actions.Who:
    from services.operator import actions

    if not args.reason.strip():
        raise OperatorError("--reason must say why")
    return actions.Who(args.by or getpass.getuser(), args.reason.strip())


async def tenant_of(bus: Bus, settings: Settings, export_id: str, tenant: str | None = None,
                    where: str | None = None) -> str:
    """The tenant whose export ``export_id`` is: the only one whose log holds that id, or ``tenant``
    (``--tenant``) — an id two tenants use is refused rather than guessed. ``where``: the NATS server
    asked and why that one, for the message when no log holds the id."""
    from services.operator import inspect

    tenants = await inspect.locate(bus, settings, export_id)
    if tenant is not None:
        if tenant not in tenants:
            raise OperatorError(f"no events for export {export_id!r} of tenant {tenant!r}"
                                + (f" (it is {', '.join(tenants)}'s)" if tenants else ""))
        return tenant
    if not tenants:
        raise OperatorError(await _no_export(bus, settings, export_id, where))
    if len(tenants) > 1:
        raise OperatorError(f"export id {export_id!r} is used by {len(tenants)} tenants ({', '.join(tenants)}): "
                            "pass --tenant to say whose")
    return tenants[0]


async def _no_export(bus: Bus, settings: Settings, export_id: str, where: str | None) -> str:
    """The one line for an export id no log holds, from every command: the stream and server asked,
    and whether the id is a tenant's (a tenant id given by mistake)."""
    from nats.errors import NoRespondersError
    from nats.js.errors import NotFoundError

    line = f"no events for export {export_id!r} in stream {settings.stream_name}" + (f" on NATS {where}"
                                                                                    if where else "")
    if is_valid_id(export_id):
        with contextlib.suppress(NotFoundError, NoRespondersError):
            await bus.js.get_last_msg(settings.stream_name, f"{settings.subject_prefix}.{export_id}.*.>",
                                      direct=True)
            line += f"; {export_id!r} is a tenant: `grove-export exports --tenant {export_id}` lists its exports"
    return line


async def _tenant_of_export(bus: Bus, settings: Settings, an_id: str) -> str | None:
    """The tenant whose export ``an_id`` is, when a command that takes a tenant was given an export's
    id (the converse of :func:`_no_export`'s hint); None when no log names it so, or names it for
    several tenants. The tenants are :func:`inspect.locate`'s: only ids (the last message on the
    export's subjects could be a PubAck anyone aimed at ``<prefix>.*.<export>.<type>``, whose
    tenant token ``*`` the hint named)."""
    from nats.errors import NoRespondersError

    from services.operator.inspect import locate

    with contextlib.suppress(NoRespondersError):
        tenants = await locate(bus, settings, an_id)
        return tenants[0] if len(tenants) == 1 else None
    return None


def _export_not_tenant(an_id: str, tenant: str, command: str) -> str:
    if command == "erase-tenant":  # no command to paste: it would erase every export of that tenant
        return f"{an_id!r} is an export of tenant {tenant}; erase-tenant takes a tenant id and erases all its exports"
    return f"{an_id!r} is an export of tenant {tenant}: `grove-export {command} {tenant}`"


# -- see ----------------------------------------------------------------------------------------
async def _exports(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import inspect
    from services.operator.decide import human_age, parse_age

    older = parse_age(args.older_than) if args.older_than else None  # checked by argparse (an_age)
    filters = inspect.Filters(args.status, args.tenant, older, args.step)
    now = datetime.now(UTC)
    async with _open(settings) as (bus, _):
        page = await inspect.list_exports(bus, settings, filters, now, page=args.page, per_page=args.limit)
    rows = [inspect.summary(f, now) for f in page.rows]
    if args.json:
        print(json.dumps({"page": page.page, "more": page.more, "exports": rows}, indent=1))
        return
    say(f"{'EXPORT':<28} {'TENANT':<22} {'STATUS':<10} {'STEP':<9} {'ATT':>3} {'AGE':>5}  "
          f"{'LAST EVENT':<24} {'SIZE':>9}")
    for f, r in zip(page.rows, rows, strict=True):
        last = f"{r['lastEvent']} {human_age(f.last.occurred_at, now) if f.last else ''}"
        size = human_size(r["sizeBytes"]) if r["sizeBytes"] is not None else "-"
        say(f"{r['exportId']:<28} {r['tenantId']:<22} {r['status']:<10} {r['step'] or '-':<9} {r['attempt']:>3} "
              f"{human_age(f.state.created_at, now):>5}  {last:<24} {size:>9}")
    more = f"; more: --page {page.page + 1}" if page.more else " (end)"
    say(f"page {page.page}: {len(rows)} exports, newest first{more}")
    if args.tenant and not rows and page.page == 1 and not (args.status or older or args.step):
        say(f"grove-export: the log holds no export of tenant {args.tenant!r} (a typo? `grove-export seed` "
              "printed the tenant id; `grove-export exports` lists every tenant's)", file=sys.stderr)


async def _show(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import inspect

    now = datetime.now(UTC)
    async with _open(settings, store=True) as (bus, store):
        assert store is not None
        tenant = await tenant_of(bus, settings, args.export_id, args.tenant, getattr(args, "nats_where", None))
        folded = await inspect.read(bus, tenant, args.export_id)
        if not folded.state.exists:  # only forged or malformed events: the services dropped them all
            raise OperatorError(f"export {args.export_id!r} has no valid request in the log (its events are "
                                "malformed or forged; every service drops them)")
        upload = await inspect.upload_view(store, settings, folded.state)
        beat = await inspect.heartbeat(bus, settings, tenant, args.export_id, now)
    view = _view(folded, upload, beat, now)
    if args.json:
        print(json.dumps(view, indent=1, default=str))
        return
    _print_show(view, folded)


def _view(folded: inspect.Folded, upload: dict[str, Any] | None, beat: dict[str, Any] | None,
          now: datetime) -> dict[str, Any]:
    """What ``show`` says of one export (``--json`` prints it as is)."""
    from services.operator import inspect

    s = folded.state
    return inspect.summary(folded, now) | {
        "progress": s.progress, "cancelRequested": s.cancel_requested, "finalizeStarted": s.finalize_started,
        "stepAttempts": dict(s.attempts), "lastStepError": s.last_step_error,
        "failure": s.failure.reason if s.failure else None, "notification": s.notification,
        "request": inspect.event_fields(s.request) if s.request else None,
        "snapshot": inspect.snapshot_of(s), "archive": inspect.archive_of(s),
        "upload": upload, "heartbeat": beat,
        "events": [{"seq": seq, "type": e.name(), "at": inspect._iso(e.occurred_at), "producer": e.producer,
                    **inspect.event_fields(e)} for seq, e in folded.events],
    }


def _print_show(v: dict[str, Any], folded: inspect.Folded) -> None:
    from services.operator import inspect

    req = v["request"] or {}
    say(f"export     {v['exportId']}  (tenant {v['tenantId']})")
    say(f"status     {v['status']}, {v['progress']}%, step {v['step'] or '-'}, attempt {v['attempt']}"
          + (", cancel requested" if v["cancelRequested"] else ""))
    say(f"requested  {v['createdAt']} by {req.get('username')} <{req.get('user_email')}>, mode {req.get('mode')}, "
          f"images {req.get('include_images')}, delivery {req.get('delivery_method')}")
    if v["stepAttempts"]:
        say(f"retries    {v['stepAttempts']}; last error: {v['lastStepError']}")
    if v["failure"]:
        say(f"failure    {v['failure']}")
    if v["snapshot"]:
        sn = v["snapshot"]
        planned = f"{sn['members']} members, {human_size(sn['totalBytes'])}, {sn['errors']} errors"
        say(f"snapshot   {sn['key']}: " + (f"{planned} planned; no archive was made ({v['status']})"
                                           if sn["archived"] is False else planned))
    if ar := v["archive"]:
        members = f"{ar['members']} members, " if ar["members"] is not None else ""
        say(f"archive    {members}{human_size(ar['sizeBytes'])}, {ar['errors']} errors (in its errors.json), "
            f"sha256 {ar['sha256']}, expires {ar['expiresAt']}" + ("; deleted" if v["status"] == "expired" else ""))
    up = v["upload"]
    if up is None:
        say("upload     none")
    else:
        state = (f"open, {len(up['storedParts'])} parts in the store ({human_size(up['storedBytes'])})"
                 if up["open"] else "closed (completed or aborted)")
        say(f"upload     {up['uploadId']}: {state}; {len(up['loggedParts'])} parts logged "
              f"({human_size(up['loggedBytes'])})")
    hb = v["heartbeat"]
    deaths = hb.get("deaths") if hb else None
    died = f"; {deaths} earlier run{'s' if deaths != 1 else ''} died in a row" \
        if isinstance(deaths, int) and not isinstance(deaths, bool) and deaths > 0 else ""
    say(f"heartbeat  {hb['step']} on {hb['worker']}, {hb['ageSeconds']}s ago{died}"
        if hb else "heartbeat  none")
    say(f"email      {v['notification'] or '-'}")
    say(f"events     {len(folded.events)}")
    for seq, event in folded.events:
        say(inspect.event_line(seq, event))


# -- fix ----------------------------------------------------------------------------------------
async def _on_export(args: argparse.Namespace, settings: Settings,
                     act: Callable[[Bus, ObjectStore, str], Awaitable[str]]) -> None:
    async with _open(settings, store=True) as (bus, store):
        assert store is not None
        tenant = await tenant_of(bus, settings, args.export_id, args.tenant, getattr(args, "nats_where", None))
        say(await act(bus, store, tenant))


async def _cancel(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import actions

    who = _who(args)
    await _on_export(args, settings, lambda bus, _, t: actions.cancel(bus, t, args.export_id, who))


async def _retry(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import actions

    who = _who(args)
    await _on_export(args, settings, lambda bus, st, t: actions.retry(bus, st, settings, t, args.export_id, who))


async def _resend(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import actions

    who = _who(args)
    await _on_export(args, settings, lambda bus, _, t: actions.resend(bus, t, args.export_id, who))


async def _unlock(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import actions

    who = _who(args)
    if not is_valid_id(args.tenant):
        raise OperatorError(f"tenant id {args.tenant!r} must match [A-Za-z0-9_-]{{1,64}}")
    async with _open(settings) as (bus, _):
        try:
            say(await actions.unlock(bus, settings, args.tenant, who))
        except actions.Refusal as e:
            if "a typo?" in str(e) and (owner := await _tenant_of_export(bus, settings, args.tenant)):
                raise actions.Refusal(f"{e}; {_export_not_tenant(args.tenant, owner, 'unlock')}") from None
            raise


# -- erase ----------------------------------------------------------------------------------------
def _erase_places(args: argparse.Namespace, settings: Settings) -> tuple[list[Path], Path | None]:
    """The read models and outbox folder to erase from, once checked; EraseError when one is not there."""
    from services.operator.erase import EraseError, check_places, check_read_model_file

    if args.no_read_model and args.read_model:
        raise UsageError("--no-read-model and --read-model contradict each other: give one")
    if args.no_read_model:
        models: list[tuple[Path, str]] = []
    elif args.read_model:
        models = [(Path(p), "--read-model") for p in args.read_model]
        for path, where in models:  # no such file (or a folder, a FIFO) on the command line: exit 2, as `verify`'s
            try:
                check_read_model_file(path, where)
            except EraseError as e:
                raise UsageError(str(e)) from None
    else:  # GROVE_READ_MODEL_DB not there from here (another folder than the stack's): exit 1, as the store's
        models = [(Path(settings.read_model_db), "GROVE_READ_MODEL_DB")]
    check_places(settings, models)
    outbox = Path(settings.mail.outbox_dir) if settings.mail.backend == "outbox" else None
    return [p for p, _ in models], outbox


async def _erase(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator.erase import EraseError

    if not is_valid_id(args.tenant):
        raise OperatorError(f"tenant id {args.tenant!r} must match [A-Za-z0-9_-]{{1,64}}")
    try:
        await _erase_tenant(args, settings)
    except EraseError as e:
        raise OperatorError(str(e)) from None


async def _erase_tenant(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator import actions
    from services.operator.erase import Eraser

    models, outbox = _erase_places(args, settings)  # before connecting: nothing is asked or changed yet
    async with _open(settings, store=True) as (bus, store):
        assert store is not None
        eraser = Eraser(settings, bus, store, models, outbox)
        await eraser.reachable(args.tenant)
        overwrites = await eraser.overwrites()
        if args.dry_run:
            found = await eraser.holdings(args.tenant)
            # laid out as the erasure's own report, under a line naming the tenant and saying that
            # nothing was changed (the lines alone named no tenant, and the exports' ids stood
            # indented under nothing)
            say(f"tenant {args.tenant} (--dry-run: nothing was changed):")
            for line in found.lines("would remove"):
                say(f"  {line}")
            if found.events and not overwrites:
                say(f"  {_not_written_over(settings, found.events, 'would be')}")
            for export in found.exports:
                say(f"    export {export}")
            for line in _not_looked_at(args, settings, outbox):
                say(f"  {line}")
            if found.empty:
                owner = await _tenant_of_export(bus, settings, args.tenant)
                say(f"grove-export: nothing is held about tenant {args.tenant!r} (a typo? `grove-export exports "
                    "--tenant` lists a tenant's exports)"
                    + (f"; {_export_not_tenant(args.tenant, owner, 'erase-tenant')}" if owner else ""), file=sys.stderr)
            return
        still = await eraser.stop_running(args.tenant, actions.Who(args.by or getpass.getuser(),
                                                                    args.reason or "erase-tenant"), args.wait,
                                          erase_running=args.erase_running)
        if still and not args.erase_running:
            raise OperatorError(f"tenant {args.tenant}: {len(still)} exports had not stopped after {args.wait:g}s "
                                f"({', '.join(still)}; their cancel is requested in the log, or a step still works "
                                "on them, or their email is still being sent): nothing was erased. Are the services "
                                "running? Run again with a longer --wait, or pass --erase-running "
                                "to erase them while they run")
        found = await eraser.holdings(args.tenant)
        await eraser.erase(args.tenant, found)
        left = await eraser.holdings(args.tenant)
        owner = await _tenant_of_export(bus, settings, args.tenant) if found.empty and not still else None
    say(f"tenant {args.tenant}:")
    if found.empty and not still:
        say(f"grove-export: nothing was held about tenant {args.tenant!r}, so nothing was erased (a typo? "
            f"`grove-export exports --tenant` lists a tenant's exports; erasing twice also ends here)"
            + (f"; {_export_not_tenant(args.tenant, owner, 'erase-tenant')}" if owner else ""), file=sys.stderr)
    for line in found.lines("removed"):
        say(f"  {line}")
    if found.events and not overwrites:
        say(f"  {_not_written_over(settings, found.events, 'were')}")
    if still:
        say(f"  {len(still)} exports had not stopped after {args.wait:g}s (erased anyway, --erase-running): "
              f"{', '.join(still)}")
    if not left.empty:
        raise OperatorError(f"tenant {args.tenant}: something was written meanwhile: "
                            + "; ".join(line for line in left.lines("still holds") if not line.split()[2] == "0")
                            + " — run erase-tenant again")
    for line in _not_looked_at(args, settings, outbox):
        say(f"  {line}")
    places = ["the stream" if overwrites or not found.events else "the stream (to read)", "the KV buckets", "the store"]
    if models:
        places.append("the read model" if len(models) == 1 else f"the {len(models)} read models")
    if outbox is not None and outbox.is_dir():
        places.append("the outbox")
    say(f"  nothing left in {', '.join(places[:-1])} or {places[-1]}")


def _not_written_over(settings: Settings, events: int, verb: str) -> str:
    return (f"the stream {settings.stream_name} refuses message deletes (it was made with deny_delete, which "
            f"nats-server never lets an update clear): its {events} events of the tenant {verb} purged, not "
            "written over — their bytes, the requester's address among them, stay in the stream's block files "
            "until nats-server compacts or removes those blocks (see README, Erase)")


def _not_looked_at(args: argparse.Namespace, settings: Settings, outbox: Path | None) -> list[str]:
    """What erase-tenant did not clear, said rather than implied by "nothing left"."""
    lines = []
    if args.no_read_model:
        lines.append("read models: none cleared (--no-read-model); each gateway serves its rows of this tenant "
                     "until its read model is rebuilt from the log (restart it on a fresh read model, or run "
                     "`grove-export replay` with it stopped; see README, Erase)")
    if outbox is None:
        lines.append(f"emails: sent through the {settings.mail.backend} backend; copies in mailboxes and at the "
                     "mail provider are not Grove Export's to erase")
    elif not outbox.is_dir():
        lines.append(f"emails: the outbox {outbox.resolve()} (GROVE_MAIL__OUTBOX_DIR) does not exist, so no email "
                     "files were found there")
    return lines


def _run(fn: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, None]]
         ) -> Callable[[argparse.Namespace, Settings], None]:
    def run(args: argparse.Namespace, settings: Settings) -> None:
        from services.operator import actions

        try:
            asyncio.run(fn(args, settings))
        except (OperatorError, actions.Refusal) as e:
            say(f"grove-export: {e}", file=sys.stderr)
            sys.exit(e.code if isinstance(e, OperatorError) else 1)
    return run


def _utf8(text: str) -> str:
    """Text an event can carry. A byte the locale could not decode (``é`` typed in a Latin-1
    terminal) reaches Python as a lone surrogate, which no JSON event can hold: the command ended in a
    traceback at its first append."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"must be UTF-8 text, not {text!r} (is the terminal's locale UTF-8?)"
                                         ) from None
    return text


def _reason(text: str) -> str:
    """An argparse ``type``: a reason that says something."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must say why, not {text!r}")
    return _utf8(text)


def _name(text: str) -> str:
    """An argparse ``type``: the operator's name recorded in the log; a blank one would be recorded as
    nobody (or, through ``args.by or getuser()``, silently as the login name)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name who, not {text!r} (leave it out for your login name)")
    return _utf8(text)


def _actor(p: argparse.ArgumentParser, reason_required: bool = True) -> None:
    # a --reason given blank is refused even where it may be left out (erase-tenant): default None
    p.add_argument("--reason", required=reason_required, default=None, type=_reason,
                   help="why, in a few words (recorded in the log with your name)")
    p.add_argument("--by", default=None, metavar="NAME", type=_name,
                   help="the operator's name recorded in the log (default: your login name)")


TENANT_HELP = "whose export it is, when two tenants use the same export id (default: the one that does)"


def add_commands(sub: Any, data_help: str) -> None:
    """Register the operator's subcommands on ``grove-export``'s subparsers."""
    def command(name: str, text: str, fn: Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, None]],
                ) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=text)
        c.add_argument("--data", type=a_path("folder"), default="var", metavar="DIR", help=data_help)
        c.set_defaults(func=_run(fn), needs_nats=True)  # none runs without a server to ask
        return c

    x = command("exports", "list exports across tenants from the log, newest first", _exports)
    x.add_argument("--status", choices=STATUSES, help="only exports with this status")
    x.add_argument("--tenant", type=an_id, help="only this tenant's exports")
    x.add_argument("--older-than", type=an_age, metavar="AGE", help="only exports requested longer ago than this (90s, 15m, 2h, 3d)")
    x.add_argument("--step", choices=STEPS, help="only exports in this step, or that failed in it")
    x.add_argument("--page", type=number_in(1), default=1, help="which page, from 1 (default: 1)")
    x.add_argument("--limit", type=number_in(1), default=20, help="exports per page (default: 20)")
    x.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    s = command("show", "one export: state, events, open upload and parts, heartbeat", _show)
    s.add_argument("export_id", type=an_id, metavar="EXPORT_ID", help="the export's id (exp_…)")
    s.add_argument("--tenant", type=an_id, help=TENANT_HELP)
    s.add_argument("--json", action="store_true", help="one JSON document instead of text")
    for name, fn, text in (("cancel", _cancel, "operator cancel (fenced like the gateway's, recorded with who and why)"),
                           ("retry", _retry, "start a failed export again as a new attempt, from where its log allows"),
                           ("resend", _resend, "send the export's email (ready or failed) again")):
        c = command(name, text, fn)
        c.add_argument("export_id", type=an_id, metavar="EXPORT_ID", help="the export's id (exp_…)")
        c.add_argument("--tenant", type=an_id, help=TENANT_HELP)
        _actor(c)
    u = command("unlock", "free a tenant's admission slot and hourly limit when the log shows nothing active",
                _unlock)
    u.add_argument("tenant", type=an_id, metavar="TENANT", help="the tenant id")
    _actor(u)
    e = command("erase-tenant", "remove everything held about a tenant (--dry-run lists it)", _erase)
    e.add_argument("tenant", type=an_id, metavar="TENANT", help="the tenant id")
    e.add_argument("--dry-run", action="store_true", help="list what would be removed; change nothing")
    e.add_argument("--wait", type=number_in(0, 86_400, kind=float), default=30.0, metavar="SECONDS",
                   help="how long to wait for the tenant's running exports to cancel, up to a day (default: 30)")
    e.add_argument("--read-model", type=a_path("file"), action="append", metavar="PATH",
                   help="a gateway's read-model file; repeat once per replica (default: GROVE_READ_MODEL_DB); "
                        "a path that does not exist is refused before anything is erased")
    e.add_argument("--no-read-model", action="store_true",
                   help="no gateway read model is reachable from here (Kubernetes: each replica's is on an "
                        "emptyDir): erase the rest; the gateways keep their rows until rebuilt (see README)")
    e.add_argument("--erase-running", action="store_true",
                   help="erase even when exports have not stopped after --wait (default: refuse, erase nothing); "
                        "a request still being admitted is waited for until it lands or its reservation lapses")
    _actor(e, reason_required=False)
    b = command("backup", "snapshot the event stream and KV buckets into a folder", _backup)
    b.add_argument("dir", type=a_path("folder"), metavar="DIR", help="an empty folder for the backup")
    r = command("restore", "restore a backup into a server where those streams do not exist yet (checked "
                           "first: restores nothing when any is there)", _restore)
    r.add_argument("dir", type=a_path("folder"), metavar="DIR", help="the folder `grove-export backup` wrote")
    r.add_argument("--replace", action="store_true",
                   help="delete the backup's streams the server has, with what they hold, then restore")


# -- backup and restore ------------------------------------------------------------------------
def _a_folder(path: Path, must_exist: bool) -> Path:
    """A folder argument that cannot be one (no such folder to restore from, a file) is the command line's
    fault: said as such, exit 2, before any server is asked."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file, not a folder")
    if must_exist and not path.exists():
        raise UsageError(f"no such folder: {path}")
    try:  # `backup FILE/sub`: the folder to be made lies in a file (it said "Not a directory: …", exit 1)
        inside = next((p for p in path.parents if p.exists()), None)
    except OSError:  # a name too long, a folder it may not look in: left to the command
        inside = None
    if inside is not None and not inside.is_dir():
        raise UsageError(f"{path} cannot be made: {inside} is a file, not a folder")
    try:  # a link to a folder that is not there (an unmounted volume): it said "File exists: LINK", exit 1
        dangling = next((p for p in (path, *path.parents) if p.is_symlink() and not p.exists()), None)
        if dangling is not None:
            raise UsageError(f"{path} cannot be made: {dangling} is a link to {os.readlink(dangling)}, which does "
                             "not exist")
    except OSError:
        pass
    return path


async def _backup(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator.backup import BackupError, backup, not_for_backup

    folder = _a_folder(Path(args.dir), must_exist=False)
    if problem := not_for_backup(folder):  # before any server is asked: nothing written
        raise UsageError(problem)
    async with _open(settings) as (bus, _):
        try:
            saved = await backup(bus.nc, settings, Path(args.dir))
        except BackupError as e:
            raise OperatorError(str(e)) from None
    for s in saved:
        say(f"{s.stream}: {s.messages} messages, snapshot {human_size(s.bytes)} → {Path(args.dir, s.file)}")
    say(f"backup in {Path(args.dir).resolve()} (manifest.json lists the files and their SHA-256)")


async def _restore(args: argparse.Namespace, settings: Settings) -> None:
    from services.operator.backup import BackupError, check_backup, restore
    from shared.bus.connect import open_nats

    try:  # before connecting: a folder that is not a whole backup is refused without a server
        entries = check_backup(_a_folder(Path(args.dir), must_exist=True), settings)
    except BackupError as e:
        raise OperatorError(str(e)) from None
    # a bare connection: connect() binds the stream and buckets the restore needs absent
    nc = await open_nats(settings, "operator", persistent=False)
    try:  # each stream is printed as it is restored: a failure part-way leaves a record of what was
        await restore(nc, Path(args.dir), settings, entries,
                      lambda stream, messages: say(f"{stream}: restored, {messages} messages", flush=True),
                      replace=args.replace, deleted=lambda stream: say(f"{stream}: deleted (--replace)", flush=True),
                      interrupted=lambda line: say(f"grove-export: restore {line}", file=sys.stderr, flush=True),
                      data=None if args.data == "var" else str(args.data))
    except BackupError as e:
        raise OperatorError(str(e)) from None
    finally:
        await nc.drain()
    say(erased_since(Path(args.dir), None if args.data == "var" else str(args.data)), file=sys.stderr)


def erased_since(folder: Path, data: str | None = None) -> str:
    """What a restore brings back that an erasure took away: a backup holds every tenant's events as
    they were when it was taken, so a tenant erased since is back (the requester's address with it).
    ``data``: the --data the restore was given, named in the erase-tenant command as in its --replace
    one: without it that command asks ./var's stack, not the one restored into."""
    try:
        taken = json.loads((folder / "manifest.json").read_text()).get("created")
    except (OSError, ValueError, AttributeError):
        taken = None
    when = f"was taken {printable(taken)}" if isinstance(taken, str) else "is of an unknown time"
    where = f" --data {shlex.quote(data)}" if data else ""
    return (f"grove-export: note: this backup {when}; a tenant erased since then is back with it: run "
            f"`grove-export erase-tenant TENANT{where}` again for each one; and an export requested since then is not in "
            "the restored log: the janitor leaves its archive and work objects in the store and names its export "
            "in its summary (`not deleted: N objects of M exports the log does not hold …`)")
