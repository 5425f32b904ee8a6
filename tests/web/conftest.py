"""Fixtures of the web tests: a real Chromium (Playwright), an in-process app over a small store,
`recallwatch serve` runs and their held-out set."""

from __future__ import annotations

from tests.helpers.browser import browser, tab  # noqa: F401 - fixtures
from tests.helpers.serve import serve, synthetic  # noqa: F401 - `recallwatch serve` runs
from tests.web.helpers import small_store  # noqa: F401 - fixture
