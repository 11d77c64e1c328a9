"""Helpers shared by the tests: settings in a temp dir, a stack of real service processes, waits."""
