"""The HTTP surface: security headers on every answer, the read token on the API and /metrics."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from recallwatch.store import Store
from recallwatch.web import WebSettings
from recallwatch.web.security import HEADERS
from tests.web.helpers import app_over

#: One path of each route family, and the status it answers over the small store.
FAMILIES = [
    ("/runs", 200),
    ("/runs/nope", 404),
    ("/api/v1/runs", 200),
    ("/api/v1/runs/nope", 404),
    ("/metrics", 200),
    ("/healthz", 200),
    ("/readyz", 200),
    ("/openapi.json", 200),
    ("/docs", 200),
    ("/static/web/web.css", 200),
    ("/static/web/nothing.css", 404),
    ("/no/such/route", 404),
]


@pytest.mark.parametrize(("path", "status"), FAMILIES)
def test_every_route_family_answers_with_the_security_headers(
    small_store: Store, path: str, status: int
) -> None:
    answer = TestClient(app_over(small_store)).get(path)
    assert answer.status_code == status
    for name, value in HEADERS.items():
        if name == "content-security-policy" and path == "/docs":
            continue
        assert answer.headers.get(name) == value, name


def test_docs_allow_only_their_own_inline_script(small_store: Store) -> None:
    policy = TestClient(app_over(small_store)).get("/docs").headers["content-security-policy"]
    assert (
        "frame-ancestors 'none'" in policy
        and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    )
    assert "script-src 'self' 'sha256-" in policy


def test_a_refused_page_and_a_refused_api_call_carry_the_headers(small_store: Store) -> None:
    client = TestClient(app_over(small_store, WebSettings(token="s3cret")))
    for path in ("/runs", "/api/v1/runs"):
        refused = client.get(path)
        assert refused.status_code == 401
        assert refused.headers["x-content-type-options"] == "nosniff"


def test_the_read_token_guards_the_api(small_store: Store) -> None:
    client = TestClient(app_over(small_store, WebSettings(token="s3cret")))
    refused = client.get("/api/v1/runs")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in refused.json()["detail"] and "s3cret" not in refused.text
    assert client.get("/api/v1/runs/demo/checkpoints").status_code == 401
    assert client.get("/api/v1/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/api/v1/runs", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()[0]["name"] == "demo"
    # A query token is for pages (it moves into the cookie); the API never takes one in its URL.
    assert client.get("/api/v1/runs?token=s3cret").status_code == 401
    # The pages' cookie opens the API for the pages' own scripts.
    assert client.get("/runs?token=s3cret").status_code == 200
    assert client.get("/api/v1/runs").status_code == 200
    # Probes, metrics (no metrics token set) and the schema stay open; the schema declares the 401.
    fresh = TestClient(app_over(small_store, WebSettings(token="s3cret")))
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
        assert fresh.get(path).status_code == 200, path
    schema = fresh.get("/openapi.json").json()
    assert "401" in schema["paths"]["/api/v1/runs"]["get"]["responses"]


def test_an_open_api_declares_no_401(small_store: Store) -> None:
    schema = TestClient(app_over(small_store)).get("/openapi.json").json()
    assert "401" not in schema["paths"]["/api/v1/runs"]["get"]["responses"]


def test_metrics_take_their_own_bearer_token(small_store: Store) -> None:
    client = TestClient(app_over(small_store, WebSettings(token="pages", metrics_token="scrape")))
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["x-content-type-options"] == "nosniff"
    # The pages' token is not the scrape token.
    assert client.get("/metrics", headers={"Authorization": "Bearer pages"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape"})
    assert ok.status_code == 200 and "recallwatch_" in ok.text
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
