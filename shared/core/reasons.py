"""What a person is told when a step fails: what failed and what to do, never internals.

Exception class names, hosts, bucket names, keys and paths go to the logs (with the export id);
events, the status API and the failure email carry only these sentences. A :class:`StepError`'s
message is written for people already; a refused store call carries its own readable reason.
"""

from __future__ import annotations

import nats.errors

from shared.content.port import ContentUnavailable
from shared.eventlog.jetstream import LogUnavailable
from shared.objectstore import (
    NoSuchUpload,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    StoreRefused,
    StoreUnavailable,
)

TRY_AGAIN = "Please try again later; if it keeps failing, contact support with the export id."


def public_reason(error: BaseException, step_error: type[Exception]) -> str:
    """A sentence for the person whose export this is (no class names, hosts or paths)."""
    if isinstance(error, step_error):
        return str(error)
    if isinstance(error, StoreRefused):
        return f"The storage service refused the request: {error.reason}."
    if isinstance(error, StoreUnavailable):
        return "The storage service did not answer."
    if isinstance(error, ObjectNotFound | NoSuchUpload | PreconditionFailed):
        return "A file this export needs changed or disappeared from storage."
    if isinstance(error, StoreError):
        return "The storage service returned an error."
    if isinstance(error, LogUnavailable | nats.errors.Error | TimeoutError):
        return "Our event log did not answer."
    if isinstance(error, ContentUnavailable):  # its message names the database's path or host: logs only
        return "The content database could not be read."
    return "An internal error occurred."


def is_permanent(error: BaseException) -> bool:
    """Retrying cannot help: fail the export at once instead of after every retry. A store's refusal,
    or a step's own error that says so (``permanent = True`` on its class: the finalizer's upload
    that was aborted in the store)."""
    return isinstance(error, StoreRefused) or getattr(error, "permanent", False) is True
