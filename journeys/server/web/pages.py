"""Routes of the web pages: `/` → `/ui/`, the flags dashboard, the journey page, `/ui/static/…`.

The HTML is served as files; everything a page shows comes from the JSON API, fetched by the
page's own script with the token kept in the browser's session storage.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

_STATIC = Path(__file__).resolve().parent / "static"

UI_PREFIX = "/ui"
"""Where the pages live; the JSON API stays under `/v1`."""

_SECURITY_HEADERS = {
    # Everything comes from this origin: no inline script or style, no framing, no referrer.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


_ASSET_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
"""What may be served from `/ui/static/`, with its type (module scripts need a JavaScript type,
which the platform's MIME table does not always give)."""


def static_dir() -> Path:
    """The directory holding the pages' HTML, CSS and JavaScript."""
    return _STATIC


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(_STATIC / name, headers=_SECURITY_HEADERS)


async def _root(request: web.Request) -> web.StreamResponse:
    query = f"?{request.query_string}" if request.query_string else ""
    raise web.HTTPFound(f"{UI_PREFIX}/{query}")


async def _asset(request: web.Request) -> web.StreamResponse:
    path = (_STATIC / request.match_info["name"]).resolve()
    content_type = _ASSET_TYPES.get(path.suffix)
    if content_type is None or not path.is_relative_to(_STATIC) or not path.is_file():
        raise web.HTTPNotFound()
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    return web.FileResponse(path, headers=headers)


async def _dashboard(_request: web.Request) -> web.StreamResponse:
    return _page("index.html")


async def _journey(_request: web.Request) -> web.StreamResponse:
    return _page("journey.html")


def add_pages(app: web.Application) -> None:
    """Register the pages on an application that also serves the JSON API under `/v1`.

    `GET /` and `GET /ui` redirect to `/ui/`; `GET /ui/` is the flags dashboard;
    `GET /ui/journey?customer_id=…` (or `?identifier=kind:value`) is the journey page;
    `GET /ui/static/…` serves the assets.
    """
    app.router.add_get("/", _root)
    app.router.add_get(UI_PREFIX, _root)
    app.router.add_get(f"{UI_PREFIX}/", _dashboard)
    app.router.add_get(f"{UI_PREFIX}/journey", _journey)
    app.router.add_get(f"{UI_PREFIX}/static/{{name:.+}}", _asset)
