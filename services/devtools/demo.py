"""``make run``: start the local stack, seed a fresh tenant, export it through the gateway, verify
the archive, stop, and print the archive's absolute path as the last line."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import aiohttp

from services.devtools.stack.natsserver import NatsServerError
from services.devtools.stack.supervisor import (
    READY_TIMEOUT_S,
    Stack,
    StackBusy,
    StackFailed,
    hold_stop_signals,
    local_env,
    preflight,
    stopped_by_signals,
)
from shared.content.factory import content_source
from shared.content.seed import seed_tenant
from shared.core.lifecycle import is_terminal
from shared.objectstore.factory import open_store
from shared.runtime import secrets
from shared.runtime.settings import Settings


async def seed_cli(settings: Settings, *, posts: int, pages: int, images: int, files: int,
                   image_size: tuple[int, int] = (640, 480), username: str = "autumn") -> None:
    store = await open_store(settings, create_buckets=True)
    content = content_source(settings)
    try:
        r = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                              amber_bucket=settings.buckets.amber, posts=posts, pages=pages, images=images,
                              files=files, image_size=image_size, username=username)
    finally:
        await content.close()
        await store.close()
    print(r.tenant_id)


def _bar(progress: int, width: int = 30) -> str:
    filled = width * progress // 100
    return "[" + "#" * filled + "." * (width - filled) + "]"


async def _export(settings: Settings, port: int, data: Path) -> Path:
    from services.gateway.auth import make_token

    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        store = await open_store(settings, create_buckets=True)
        content = content_source(settings)
        try:
            seeded = await seed_tenant(content, store, images_bucket=settings.buckets.images,
                                       amber_bucket=settings.buckets.amber)
        finally:
            await content.close()
            await store.close()
        print(f"seeded tenant {seeded.tenant_id}: {seeded.posts} posts, {seeded.pages} pages, "
              f"{seeded.images} images", flush=True)
        token = make_token(settings, tenant=seeded.tenant_id, user="u_demo", email=seeded.email,
                           username=seeded.username, ttl_s=3600)
        headers = {"Authorization": f"Bearer {token}"}
        started = time.monotonic()
        async with http.post(f"{base}/api/export", json={"mode": "blog", "includeImages": True}, headers=headers) as r:
            body = await r.json()
            if r.status != 201:
                raise RuntimeError(f"POST /api/export answered {r.status}: {body}")
        export_id = body["exportId"]
        print(f"export {export_id} requested", flush=True)
        tty, shown = sys.stdout.isatty(), None
        while True:
            async with http.get(f"{base}/api/export/status/{export_id}", headers=headers) as r:
                status = await r.json()
            line = f"  {status['status']:<11} {_bar(status.get('progress', 0))} {status.get('progress', 0):>3}%"
            if tty:
                print(f"\r{line}", end="", flush=True)
            elif line != shown:  # a log file gets one line per change, not carriage returns
                print(line, flush=True)
            shown = line
            if is_terminal(status["status"]):
                if tty:
                    print(flush=True)
                break
            if time.monotonic() - started > 300:
                raise RuntimeError("the export did not finish within 5 minutes")
            await asyncio.sleep(0.25)
        if status["status"] != "complete":
            raise RuntimeError(f"export ended {status['status']}: {status.get('error')}")
        took = time.monotonic() - started
        out_dir = data / "downloads"
        out_dir.mkdir(parents=True, exist_ok=True)
        async with http.get(status["downloadUrl"]) as r:
            if r.status != 200:
                raise RuntimeError(f"download answered {r.status}")
            name = r.content_disposition.filename if r.content_disposition else None
            out = out_dir / (name or f"{export_id}.zip")
            # Written beside it and renamed in once verified: written in place, a Ctrl-C as it downloaded (or
            # an archive that failed the checks) left a cut-off ZIP under the archive's name, over the
            # whole one an earlier run that day had put there
            part = out.with_name(f".{out.name}.part")
            try:
                with open(part, "wb") as f:
                    async for chunk in r.content.iter_chunked(1 << 20):
                        f.write(chunk)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
    try:
        members = _verify(part, status["sha256"])
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    print(f"complete in {took:.1f}s: {status['fileSize']}, {members} members, sha256 {status['sha256']}")
    outbox = sorted(Path(settings.mail.outbox_dir).glob(f"{export_id}*.eml"))
    if outbox:
        print(f"email: {outbox[0].resolve()}")
    return out.resolve()


def _verify(path: Path, sha256: str) -> int:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"downloaded archive sha256 {digest} != {sha256}")
    with zipfile.ZipFile(path) as zf:
        if zf.testzip() is not None:
            raise RuntimeError("the archive failed zipfile.testzip()")
        manifest = json.loads(zf.read("manifest.json"))
        for m in manifest["members"]:
            if hashlib.sha256(zf.read(m["path"])).hexdigest() != m["sha256"]:
                raise RuntimeError(f"{m['path']} does not match manifest.json")
        names = zf.namelist()
    print(f"verified: zipfile.testzip() ok, {len(manifest['members'])} manifest checksums match")
    return len(names)


def run_demo(data: Path, port: int) -> int:
    with stopped_by_signals():  # SIGTERM or SIGHUP as Ctrl-C: the stack is stopped, never left running
        return _run_demo(data, port)


def _run_demo(data: Path, port: int) -> int:
    data = data.resolve()
    try:
        preflight(data, port, os.environ)  # before local_env writes secrets.json: a refusal leaves no trace
    except StackBusy as e:
        print(f"grove-export: {e}", file=sys.stderr)
        return 2
    env = local_env(data, port)
    secrets.require_signing_env({**os.environ, **env})  # a weak or shared one set: say so, don't loop
    os.environ.update(env)
    settings = Settings()
    stack = Stack(data, port=port, env=env)
    print(f"starting the local stack in {data} (logs in {data / 'logs'})", flush=True)
    try:
        stack.start()
    except StackBusy as e:
        print(f"grove-export: {e}", file=sys.stderr)
        return 2
    except (StackFailed, NatsServerError) as e:  # stopped again by Stack.start: one line, not a traceback
        print(f"grove-export: the local stack did not start: {e}", file=sys.stderr)
        return 1
    try:
        if not stack.wait_gateway():  # StackFailed as soon as it dies at every start: its line says why
            raise RuntimeError(f"the gateway at http://127.0.0.1:{port} did not become ready within "
                               f"{READY_TIMEOUT_S:g} s (see {data / 'logs' / 'gateway.log'})")
        path = asyncio.run(_export(settings, port, data))
    except KeyboardInterrupt:
        print("\ngrove-export demo: interrupted; stopping the local stack", file=sys.stderr)
        return 130
    except Exception as e:
        print(f"\ngrove-export demo failed: {e}", file=sys.stderr)
        return 1
    finally:
        hold_stop_signals()  # a Ctrl-C as the stack stops would cut the stop short: it is under way
        stack.stop()
    print(path)
    return 0
