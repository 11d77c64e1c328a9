"""The local stack gives the signing keys, current and previous, to its gateway alone."""

from services.devtools.stack.supervisor import gateway_only


def test_the_signing_keys_current_and_previous_reach_the_gateway_alone() -> None:
    env = {"GROVE_JWT_SECRET": "j" * 48, "GROVE_LINK_SECRET": "l" * 48, "GROVE_JWT_SECRET_PREVIOUS": "p" * 48,
           "GROVE_LINK_SECRET_PREVIOUS": "", "GROVE_PORT": "8080"}
    keys = {"GROVE_JWT_SECRET": "j" * 48, "GROVE_LINK_SECRET": "l" * 48}
    shared, gateway = gateway_only(env, keys)
    assert shared == {"GROVE_PORT": "8080"}  # an empty previous key is unset: left out of both
    assert gateway == {"GROVE_JWT_SECRET": "j" * 48, "GROVE_LINK_SECRET": "l" * 48,
                       "GROVE_JWT_SECRET_PREVIOUS": "p" * 48}
