"""The HTTP gateway: admission, status, cancel, history, downloads, OpenAPI, and the read model.

For the CLI: :func:`make_token` (``grove-export token``), :func:`run` (serve),
:func:`replay` (``grove-export replay``: rebuild the read model from the log).
"""

from services.gateway.app import init_app
from services.gateway.auth import make_token
from services.gateway.main import run
from services.gateway.projector import replay

__all__ = ["init_app", "make_token", "replay", "run"]
