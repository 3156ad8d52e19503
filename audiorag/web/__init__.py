"""The sound-design web page: static HTML, JS modules and CSS served by the API's own app.

``mount_web(app)`` adds ``GET /`` (the page) and ``/web/…`` (its assets). No build step: the
browser loads the ES modules as shipped. The page talks to the same app's ``/v1`` routes with the
API key the user signs in with (kept in ``sessionStorage``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The page is small and changes with the package: always revalidate (ETag / Last-Modified).
_HEADERS = {"Cache-Control": "no-cache"}


def mount_web(app: FastAPI) -> FastAPI:
    """Serve the page at ``/`` and its assets under ``/web``; idempotent."""
    if any(getattr(r, "path", None) == "/web" for r in app.router.routes):
        return app

    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=_HEADERS)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/web", _NoCacheStatic(directory=STATIC), name="web")
    return app


class _NoCacheStatic(StaticFiles):
    async def get_response(self, path, scope):  # type: ignore[override]
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response
