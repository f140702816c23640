"""The review page: static files (HTML, CSS, ES modules) from server/web, no build step. They
hold no data, so they are read without the token (the page asks for it and sends it to the
API); everything they show comes from /api/v1."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.security import PublicPaths

WEB = Path(__file__).resolve().parent / "web"
STATIC_PREFIX = "/static"
PAGE_PATHS = PublicPaths(exact=("/",), prefixes=(f"{STATIC_PREFIX}/",))

# The page's document: only this server's own scripts, styles, API and media (blob: for
# clips fetched with the token, and the browser's own recordings); no inline script, no frames.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def page_routes() -> list[BaseRoute]:
    async def index(request: Request) -> Response:
        return FileResponse(WEB / "index.html", media_type="text/html; charset=utf-8",
                            headers=SECURITY_HEADERS)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Mount(STATIC_PREFIX, app=StaticFiles(directory=WEB), name="static"),
    ]
