"""What this server offers: the review page adapts to it (the live tab, the upload cap)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from tools.context import App
from tools.exports import MIME_TYPES
from tools.models import InfoOut

SERVER_NAME = "speaker-memory"


def server_info(app: App, live: bool) -> InfoOut:
    """`live`: whether the transport serves the live WebSocket (the transport knows)."""
    try:
        installed = version(SERVER_NAME)
    except PackageNotFoundError:  # run from a checkout that was never installed
        installed = "unknown"
    return InfoOut(server=SERVER_NAME, version=installed, live=live,
                   max_upload_bytes=app.settings.max_upload_bytes,
                   export_formats=list(MIME_TYPES))
