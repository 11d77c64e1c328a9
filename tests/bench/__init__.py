"""``make bench``: speed and memory of Grove Export, measured side by side (not a test).

Run with ``.venv/bin/python -m tests.bench.run`` (``--only 1,2`` for some sections, ``--help``).
Every module here is one measurement; :mod:`tests.bench.common` holds what they share.
"""
