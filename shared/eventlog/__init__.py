"""The event log: its JetStream adapter (fenced appends, batched direct-get reads) and
its in-memory twin, held to each other by one contract test (the port is shared/ports.py)."""
