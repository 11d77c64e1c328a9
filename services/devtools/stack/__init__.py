"""The local stack: a nats-server from the wheel plus supervised processes: one per service, two
assemblers on two or more cores."""
