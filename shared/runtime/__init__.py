"""What runs a step service: settings, the step worker, the FastStream runtime, logs,
metrics, tracing, fault points, allocator set-up and secrets."""
