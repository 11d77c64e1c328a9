"""NATS itself: connecting as a service user, the stream/KV/durable topology, and the
allow-list permissions generated from the step table."""
