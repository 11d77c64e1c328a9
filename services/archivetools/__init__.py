"""Operator tools on finished archives: verify one, import one into an empty tenant."""
