"""A gateway replica taken down by a rollout (or a scale-down, a node drain) is sent no new connection
it refuses. On SIGTERM the gateway stops listening at once (aiohttp closes its socket, then finishes the
requests under way), but a terminating pod leaves the Service's endpoints only as kube-proxy and the
ingress learn of it, a few seconds on: each connection sent to it meanwhile was refused, on every
rollout. The Deployment delays SIGTERM (a ``preStop`` sleep) by that much, inside the grace period."""

from __future__ import annotations

from tests.integration.deploy.test_manifests import of_kind

DRAIN_S = 5  # seconds the endpoints are given to let go of a terminating pod


def test_a_terminating_gateway_keeps_listening_while_it_leaves_the_endpoints() -> None:
    (gateway,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "grove-gateway"]
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    assert pre_stop.get("exec", {}).get("command") == ["sleep", str(DRAIN_S)], pre_stop
    # what is left of the grace period after the sleep is the requests under way's to finish
    assert pod["terminationGracePeriodSeconds"] >= DRAIN_S + 20


def test_the_gateway_drains_and_closes_inside_what_the_grace_period_leaves_after_the_sleep() -> None:
    """The gateway's drain on SIGTERM (aiohttp's, for the requests under way: a download) was aiohttp's
    default 60 s, longer than the 25 s the 30 s grace leaves after the 5 s sleep: the kubelet's SIGKILL
    came first, and the gateway never closed its NATS connection or logged its stop. Its drain is bounded
    so that it ends, and the app's clean-up after it (bus, store, read model), inside the grace."""
    import secrets

    from services.gateway.main import runner_for
    from shared.runtime.settings import Settings

    (gateway,) = [d for d in of_kind("Deployment") if d["metadata"]["name"] == "grove-gateway"]
    pod = gateway["spec"]["template"]["spec"]
    settings = Settings(jwt_secret=secrets.token_urlsafe(48), link_secret=secrets.token_urlsafe(48))
    drain = runner_for(settings)._shutdown_timeout  # what runner.cleanup() waits for the requests under way
    assert DRAIN_S + drain + 5 <= pod["terminationGracePeriodSeconds"], (drain, pod["terminationGracePeriodSeconds"])
