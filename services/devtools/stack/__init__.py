"""The local stack: a nats-server from the wheel plus one supervised process per service."""
