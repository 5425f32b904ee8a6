"""Fixtures of the command tests: a small BEIR corpus, a simulated mined set, HTTP receivers."""

from __future__ import annotations

from tests.helpers.mining import simulated, small_corpus  # noqa: F401 - fixtures
from tests.helpers.receivers import receiver  # noqa: F401 - real HTTP receivers
