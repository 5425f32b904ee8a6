"""The web layer's mounting: pages, static assets from installed packages, the read token, /docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recallwatch.config import parse_config
from recallwatch.errors import ConfigError
from recallwatch.store import Store
from recallwatch.web import WebSettings
from tests.helpers.browser import Tab, live_app
from tests.web.helpers import app_over


def test_runs_page_lists_the_runs_and_escapes(small_store: Store) -> None:
    small_store.queue.ensure_run("<b>bold</b>", "/runs/x", 1.0)
    client = TestClient(app_over(small_store))
    page = client.get("/runs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'href="/runs/demo"' in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold</b>" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/", follow_redirects=False).headers["location"] == "runs"


def test_static_assets_come_from_installed_packages(small_store: Store) -> None:
    client = TestClient(app_over(small_store))
    css = client.get("/static/web/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    plotly = client.get("/static/vendor/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    # Only the named files are served: no path walking, no other file of those packages.
    assert client.get("/static/vendor/__init__.py").status_code == 404
    assert client.get("/static/web/..%2F__init__.py").status_code == 404
    assert client.get("/static/elsewhere/web.css").status_code == 404


def test_the_read_token_guards_the_pages(small_store: Store) -> None:
    client = TestClient(app_over(small_store, WebSettings(token="s3cret")))
    refused = client.get("/runs")
    assert refused.status_code == 401 and "s3cret" not in refused.text
    assert client.get("/runs?token=wrong").status_code == 401
    moved = client.get("/runs?token=s3cret&x=1", follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/runs?x=1"
    assert "httponly" in moved.headers["set-cookie"].lower()
    assert client.get("/runs").status_code == 200  # the cookie the redirect set
    fresh = TestClient(app_over(small_store, WebSettings(token="s3cret")))
    assert fresh.get("/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert fresh.get("/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    # Assets and docs hold no data: they stay open (the API: tests/web/test_surface.py).
    assert fresh.get("/static/web/web.css").status_code == 200


def test_docs_render_offline(small_store: Store, tab: Tab) -> None:
    with live_app(app_over(small_store)) as url:
        tab.page.goto(f"{url}/docs")
        tab.page.wait_for_selector(".opblock-summary-description >> text=The watched runs")
        assert tab.page.locator(".swagger-ui .info .title").inner_text().startswith("recallwatch")
        tab.page.goto(f"{url}/runs")
        tab.page.wait_for_selector("#runs")
    assert tab.requests, "the browser made no request"
    assert tab.off_host() == []
    assert tab.errors == []


def test_the_token_comes_from_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {
        "heldout": [{"name": "synth", "path": str(tmp_path)}],
        "runs": [{"name": "demo", "directory": str(tmp_path)}],
        "http": {"web_token_env": "RW_WEB_TOKEN"},
    }
    with pytest.raises(ConfigError, match="RW_WEB_TOKEN is not set"):
        parse_config(doc)
    monkeypatch.setenv("RW_WEB_TOKEN", " t0k ")
    settings = WebSettings.from_config(parse_config(doc))
    assert settings.token == "t0k" and settings.heldouts == {"synth": tmp_path}
    (tmp_path / "tok").write_text("f1le\n")
    both = {
        **doc,
        "http": {"web_token_env": "RW_WEB_TOKEN", "web_token_file": str(tmp_path / "tok")},
    }
    with pytest.raises(ConfigError, match="not both"):
        parse_config(both)
    assert (
        parse_config({**doc, "http": {"web_token_file": str(tmp_path / "tok")}}).http.web_token()
        == "f1le"
    )
    assert parse_config({**doc, "http": {}}).http.web_token() is None
