"""Fixtures of the web tests: a real Chromium (Playwright), an in-process app over a small store."""

from __future__ import annotations

from tests.helpers.browser import browser, tab  # noqa: F401 - fixtures
from tests.web.helpers import small_store  # noqa: F401 - fixture
