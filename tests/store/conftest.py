"""Fixtures of the store tests: a fresh store in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recallwatch.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A new, migrated store, closed at teardown."""
    s = Store.open(tmp_path / "rw.db")
    yield s
    s.close()
