"""The daemon's web pages: server-rendered HTML over the store, read-only, optional read token.

``mount(app, store, settings)`` adds the pages, the static assets (``/static/...``, served from
installed packages: no CDN) and the offline API docs (``/docs``) to the FastAPI app of
``server.create_app``. Pages are Jinja2 templates (package data, autoescaped) extending
``base.html``; charts are plotly figures drawn by the bundled ``plotly.min.js``. See docs/web.md.
"""

from __future__ import annotations

from recallwatch.web.app import WebSettings, mount

__all__ = ["WebSettings", "mount"]
