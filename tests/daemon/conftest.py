"""Fixtures of the daemon tests: a synthetic held-out set, a store, `recallwatch serve` runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recallwatch.store import Store
from tests.helpers.browser import browser, tab  # noqa: F401 - a real Chromium
from tests.helpers.receivers import receiver  # noqa: F401 - real HTTP receivers
from tests.helpers.serve import serve, synthetic  # noqa: F401 - fixtures


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An open store under ``tmp_path/state``, closed at teardown."""
    s = Store.open(tmp_path / "state" / "rw.db")
    yield s
    s.close()
