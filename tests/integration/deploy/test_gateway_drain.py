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
