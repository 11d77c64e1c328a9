"""What a one-shot command waits for before its first JetStream call (shared/bus/ready.py), and what it
says at once: a JetStream not ready yet is waited for; a server or an account without JetStream, or a user
refused the API, is not (waiting would blame a forming cluster for a setting, the wait long)."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from shared.bus.ready import JS_NOT_ENABLED_FOR_ACCOUNT, jetstream_answers, not_ready_yet

WITH_JS, WITHOUT_JS = {"jetstream": True}, {}


@pytest.mark.parametrize(("error", "info", "refused", "waited"), [
    (nats.errors.TimeoutError(), WITH_JS, False, True),  # a cluster without a leader never answers
    (TimeoutError(), WITH_JS, False, True),
    (nats.errors.NoRespondersError(), WITH_JS, False, True),  # JetStream on, its API not up yet
    (nats.js.errors.ServiceUnavailableError(), WITH_JS, False, True),  # the same, as nats-py's JetStream says it
    (nats.js.errors.ServiceUnavailableError(code=503, err_code=10008), WITH_JS, False, True),  # "temporarily unavailable"
    (nats.errors.NoRespondersError(), WITHOUT_JS, False, False),  # no -js: a setting
    (nats.js.errors.ServiceUnavailableError(), WITHOUT_JS, False, False),
    (nats.js.errors.ServiceUnavailableError(code=503, err_code=JS_NOT_ENABLED_FOR_ACCOUNT), WITH_JS, False, False),
    (nats.errors.TimeoutError(), WITH_JS, True, False),  # refused the API: it times out, and always will
    (nats.js.errors.APIError(code=400, err_code=10003), WITH_JS, False, False),  # an answer: not waited on
])
def test_only_a_jetstream_not_ready_yet_is_waited_for(error: Exception, info: dict[str, bool], refused: bool,
                                                       waited: bool) -> None:
    assert not_ready_yet(error, info, refused) is waited


class _Conn:
    _server_info = WITH_JS


@pytest.mark.parametrize(("again_said_s", "lines"), [(3600.0, 1), (0.0, 3)])
async def test_a_service_waits_for_good_and_says_so_again_only_at_its_interval(again_said_s: float,
                                                                            lines: int) -> None:
    """A service's wait (``wait_s=None``) never gives up: one WARNING line, then one each ``again_said_s``."""
    unanswered, said, slept = 3, [], []

    async def ask() -> None:
        nonlocal unanswered
        if unanswered:
            unanswered -= 1
            raise nats.errors.TimeoutError

    async def sleep(s: float) -> None:
        slept.append(s)

    await jetstream_answers(_Conn(), wait_s=None, waiting=said.append, refused=lambda: False, where="nats://n1",
                            ask=ask, again_said_s=again_said_s, sleep=sleep)
    assert len(said) == lines and len(slept) == 3, said
    assert "does not answer yet" in said[0] and "waiting for it" in said[0] and "up to" not in said[0]
    assert all("still does not answer" in line for line in said[1:])
