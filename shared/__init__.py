"""Grove Export shared kernel: the event contract, the state fold, settings and the ports
(event log, object store, content source) that every service builds on."""

__version__ = "0.2.0"
