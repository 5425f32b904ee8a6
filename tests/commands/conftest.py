"""Fixtures of the command tests: a small BEIR corpus, a simulated mined set, HTTP receivers,
`recallwatch serve` runs and their held-out set."""

from __future__ import annotations

from tests.helpers.browser import browser, tab  # noqa: F401 - a real Chromium
from tests.helpers.mining import simulated, small_corpus  # noqa: F401 - fixtures
from tests.helpers.receivers import receiver  # noqa: F401 - real HTTP receivers
from tests.helpers.serve import serve, synthetic  # noqa: F401 - `recallwatch serve` runs
