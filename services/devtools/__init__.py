"""Developer tooling, not deployed: the local stack supervisor, `make run`'s demo and the
AsyncAPI generator."""
