"""The janitor's entry points and composition root: ``grove-export janitor`` (:func:`run_once`: one run,
for cron ``0 3 * * *`` or a Kubernetes CronJob) or ``grove-export run janitor`` (:func:`run_forever`:
long-running, one run every ``janitor_interval_s``). Each run builds its bus and store here, hands them
to a :class:`~services.janitor.run.Janitor`, closes them, and prints what the run did.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from services.janitor.run import Janitor
from services.janitor.summary import Summary, log, told
from shared.bus.connect import NatsUnreachable, connect
from shared.bus.ready import JetStreamNotReady
from shared.core.keys import without_usernames
from shared.core.printable import printable
from shared.objectstore.factory import open_store
from shared.objectstore.port import StoreNotThere
from shared.runtime.settings import Settings


async def run_once(settings: Settings, dry_run: bool = False, now: datetime | None = None) -> Summary:
    bus = await connect(settings, "janitor", persistent=False)
    try:  # the bus is closed whatever comes after it: a store that does not open, a close that raises, a cancel
        store = await open_store(settings)
        try:
            summary = await Janitor(settings, bus, store, dry_run).run(now)
        finally:
            await store.close()
    finally:
        await bus.close()
    for action in summary.actions:  # keys from the store's listings: anyone who may write the bucket chose them;
        print(printable(without_usernames(told(action, dry_run))))  # an archive's name is its requester's username
    print(summary.line(dry_run), flush=True)
    return summary


async def run_forever(settings: Settings) -> None:
    this = asyncio.current_task()
    while True:
        try:
            summary = await run_once(settings)
            if summary.stopped:  # one line; the next run (an interval on) does the rest
                log.warning("janitor run stopped: %s", summary.stopped)
        except NatsUnreachable as e:  # said in one line; the next run tries again
            log.warning("janitor run skipped: cannot reach NATS at %s: %s", settings.nats_url_shown, e.reason)
        except JetStreamNotReady as e:  # the same: its JetStream did not answer within the wait (no leader yet)
            log.warning("janitor run skipped: JetStream on NATS at %s did not answer within %g s (a cluster without "
                        "a JetStream leader yet?)", settings.nats_url_shown, e.waited)
        except StoreNotThere as e:  # the same: one line, not a traceback each run
            log.warning("janitor run skipped: %s", e)
        except Exception:
            log.exception("janitor run failed")
        # Cancelled (SIGTERM) during the run, yet the run returned or raised something else: an await
        # in it ate the CancelledError (nats-py's drain; Python 3.11's wait_for, as a NATS answer lands
        # with the cancel). The service stops here all the same, not an interval on and for good.
        if this is not None and this.cancelling():
            raise asyncio.CancelledError
        await asyncio.sleep(settings.janitor_interval_s)
