"""The closest known field for an unknown one (pure)."""

import pytest

from services.gateway.didyoumean import closest

KNOWN = ("mode", "includeImages", "deliveryMethod")


@pytest.mark.parametrize(("unknown", "meant"), [
    ("include_images", "includeImages"), ("include-images", "includeImages"), ("INCLUDEIMAGES", "includeImages"),
    ("includeImage", "includeImages"), ("delivery_method", "deliveryMethod"), ("deliveryMetod", "deliveryMethod"),
    ("mod", "mode"), ("colour", None), ("x", None), ("", None),
])
def test_closest_suggests_only_a_name_that_is_close(unknown: str, meant: str | None) -> None:
    assert closest(unknown, KNOWN) == meant
