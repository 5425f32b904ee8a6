"""Fixtures of the view tests: a small store with runs, checkpoints and alerts."""

from __future__ import annotations

from tests.web.helpers import small_store  # noqa: F401 - fixture
