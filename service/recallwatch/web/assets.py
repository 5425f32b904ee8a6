"""Static assets served from installed packages (never a CDN), and the offline API docs.

- ``/static/web/NAME``: this package's ``static/`` (stylesheet, page scripts);
- ``/static/vendor/plotly.min.js``: plotly.js as bundled in the ``plotly`` Python package;
- ``/static/vendor/swagger-ui/NAME``: Swagger UI 5 as bundled in ``fastapi-offline``.

``/docs`` (Swagger UI) is FastAPI's own page pointed at those files, so it renders with no network
access (FastAPI's default loads it from a CDN). There is no ``/redoc``: ReDoc's bundle loads its
logo from its own CDN whatever it is told.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from recallwatch.web.security import csp_allowing

__all__ = ["asset", "mount_assets"]

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
#: URL folder -> (package, folder in it, the files served from it).
_FOLDERS: dict[str, tuple[str, str, frozenset[str] | None]] = {
    "web": ("recallwatch.web", "static", None),
    "vendor": ("plotly", "package_data", frozenset({"plotly.min.js"})),
    "vendor/swagger-ui": (
        "fastapi_offline",
        "static",
        frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
    ),
}


def asset(folder: str, name: str) -> Traversable:
    """The file behind ``/static/{folder}/{name}`` (``KeyError`` when none is served there)."""
    package, sub, allowed = _FOLDERS[folder]
    base = resources.files(package) / sub
    if allowed is not None and name not in allowed:
        raise KeyError(name)
    if allowed is None and name not in {p.name for p in base.iterdir() if p.is_file()}:
        raise KeyError(name)
    return base / name


def _serve(folder: str, name: str) -> Response:
    try:
        data = asset(folder, name).read_bytes()
    except (KeyError, FileNotFoundError, ModuleNotFoundError):
        raise HTTPException(status_code=404, detail=f"no static file {folder}/{name}") from None
    suffix = name[name.rfind(".") :]
    return Response(
        data,
        media_type=_TYPES.get(suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=3600"},
    )


def mount_assets(app: FastAPI) -> None:
    """Add ``/static/...`` and ``/docs`` (call with FastAPI's own docs turned off)."""

    @app.get("/static/vendor/swagger-ui/{name}", include_in_schema=False)
    def swagger_asset(name: str) -> Response:
        return _serve("vendor/swagger-ui", name)

    @app.get("/static/{folder}/{name}", include_in_schema=False)
    def static(folder: str, name: str) -> Response:
        if folder not in {"web", "vendor"}:
            raise HTTPException(status_code=404, detail=f"no static folder {folder}")
        return _serve(folder, name)

    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        # Swagger UI starts from one inline script: allow exactly it (by hash), nothing else.
        inline = re.findall(r"<script>(.*?)</script>", bytes(page.body).decode(), re.DOTALL)
        page.headers["Content-Security-Policy"] = csp_allowing(inline)
        return page
