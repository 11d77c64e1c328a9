"""Messages the server stored as its own answers: what marks them, for every reader to drop.

nats-server sends a JetStream answer (a PubAck, a direct get's copy of a stored message) to the reply
subject the requester named, and no permission checks that subject; inside the requester's account,
a stream listening there stores what arrives. A direct get's copy is the dangerous one: its body is a
stored message, which the requester may have written itself on a subject of its own. Service users
live in accounts with no streams (``SVC_<user>``, shared/bus/permissions.py), so what they aim is stored
nowhere; before that split any service user could have a body of its choosing stored on any export's
subjects or any key, and such messages may still be in a log or bucket written then (or be stored by
``admin``'s own requests, which answer inside ``STORE``). Such a copy carries the headers below, which
no publisher of ours sets; read back through a direct get, it holds each of them twice (its own, then
the server's), and the client's header parser (shared/bus/connect.py) marks that with ``STORED_ANSWER``.
"""

from __future__ import annotations

from collections.abc import Mapping

ANSWER_HEADERS = frozenset({"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp"})
STORED_ANSWER = "Grove-Stored-Answer"


def stored_answer(headers: Mapping[str, str] | None, *, direct: bool = True) -> bool:
    """Whether a message read back from the log or a bucket is one the server stored as its answer
    to a request: no reader may use it. ``direct``: read through a direct get (the copy holds the
    server's own headers too, so the parser's mark tells); else the stored headers themselves
    (``STREAM.MSG.GET``), where any of ANSWER_HEADERS tells."""
    if not headers:
        return False
    return STORED_ANSWER in headers if direct else not ANSWER_HEADERS.isdisjoint(headers)
