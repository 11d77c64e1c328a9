"""The notifier service: tells the person when their export is ready (or failed)."""
