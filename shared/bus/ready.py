"""Whether JetStream answers yet: the one wait each one-shot command and service makes before it asks it anything.

A NATS server accepts connections before its JetStream API answers: a cluster's nodes that have just
started (compose's first ``up``, a Kubernetes Job beside a new NATS, a restore into a cluster brought up
for it) have JetStream on before a majority has elected the leader its API needs. A request sent then is
never answered, or meets "no responders": `setup` waited for it, but `restore` failed ("no answer in
time", "no responders available for request; nothing was restored"), and so did every other command.
:func:`open_nats <shared.bus.connect.open_nats>` therefore waits here, a bounded time, for each one-shot
connection, with one line while it does. What waiting cannot mend is said at once: a server whose INFO
says it runs no JetStream, an account without JetStream, a user refused the API.

A service's persistent connection waits here too, for as long as it takes (:func:`connect
<shared.bus.connect.connect>`, before its first bind), asking what its own user may ask: it exited on its
first bind's timeout, and under Kubernetes stayed down minutes longer than the cluster (CrashLoopBackOff).

Errors::

    JetStreamNotReady   JetStream did not answer within the wait (a nats-py error: said as NATS's)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors

ASK_S = 2.0  # each try: a leaderless cluster never answers, so a try ends on this
AGAIN_S = 0.5
AGAIN_SAID_S = 60.0  # a service waiting for good says so again this often: not a line a try
JS_NOT_ENABLED_FOR_ACCOUNT = 10039  # JetStream's err_code: the user's account has none (JSNotEnabledForAccountErr)


class JetStreamNotReady(nats.errors.Error):
    """JetStream did not answer within the wait; nothing was asked of it."""

    def __init__(self, waited: float) -> None:
        super().__init__()
        self.waited = waited

    def __str__(self) -> str:
        return (f"nats: its JetStream did not answer within {self.waited:g} s: JetStream is not ready there (a "
                "cluster without a JetStream leader: are most of its nodes up and routed to each other? Or a "
                "server still starting); nothing was done: run the command again once it answers "
                "(GROVE_NATS_JETSTREAM_WAIT_S: how long to wait)")


def not_ready_yet(error: BaseException, server_info: dict[str, Any], refused: bool) -> bool:
    """Whether ``error``, met asking JetStream for the account's info, is a JetStream not ready yet —
    worth waiting for — rather than one waiting cannot mend (raised at once). ``server_info``: the
    connection's INFO; ``refused``: whether the server refused this connection something."""
    if refused:  # a user refused the JetStream API: its request times out, and always will
        return False
    if isinstance(error, nats.errors.TimeoutError | TimeoutError):  # a cluster without a leader yet
        return True
    no_responders = isinstance(error, nats.errors.NoRespondersError) or (
        isinstance(error, nats.js.errors.ServiceUnavailableError) and error.err_code is None)
    if no_responders:  # a server without JetStream (a setting), or one whose JetStream is not up yet
        return bool(server_info.get("jetstream"))
    if isinstance(error, nats.js.errors.ServiceUnavailableError):  # "JetStream system temporarily unavailable"
        return error.err_code != JS_NOT_ENABLED_FOR_ACCOUNT  # ...unless the account has none: a setting
    return False


async def jetstream_answers(nc: Any, *, wait_s: float | None, waiting: Callable[[str], None],
                            refused: Callable[[], bool], where: str,
                            ask: Callable[[], Awaitable[object]] | None = None, again_said_s: float = AGAIN_SAID_S,
                            sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
    """Return once JetStream answers on ``nc``, waiting up to ``wait_s`` for it (a one-shot command), or
    for as long as it takes (``None``: a service), with a ``waiting`` line when it does not answer at once
    and, while waiting for good, another each ``again_said_s``. ``ask``: the request that must be
    answered (each try bounded to :data:`ASK_S`), by default the account's info (in its own account);
    a service user asks what its allow-list lets it (its own bucket's stream info). Raise
    :class:`JetStreamNotReady` when it still does not answer within ``wait_s``, and the error itself
    when waiting cannot mend it (:func:`not_ready_yet`)."""
    if ask is None:
        js = nc.jetstream(timeout=ASK_S)
        ask = js.account_info
    started = time.monotonic()
    deadline = None if wait_s is None else started + wait_s
    said_at: float | None = None
    while True:
        try:
            await ask()
            return
        except (nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError,
                nats.js.errors.ServiceUnavailableError) as e:
            if not not_ready_yet(e, getattr(nc, "_server_info", None) or {}, refused()):
                raise
            if deadline is not None and time.monotonic() >= deadline:
                raise JetStreamNotReady(wait_s or 0.0) from None
        now = time.monotonic()
        if said_at is None:
            bound = f"up to {wait_s:g} s" if wait_s is not None else "for it, asking again every few seconds"
            waiting(f"JetStream on NATS {where} does not answer yet (a cluster still electing its leader, or a "
                    f"server still starting?); waiting {bound}")
            said_at = now
        elif deadline is None and now - said_at >= again_said_s:
            waiting(f"JetStream on NATS {where} still does not answer after {now - started:.0f} s (are most of "
                    "the cluster's nodes up and routed to each other?); still waiting")
            said_at = now
        await sleep(AGAIN_S if deadline is None else min(AGAIN_S, max(0.0, deadline - now)))
